"""The avatar in a real browser (Debian's chromium through Playwright, software WebGL): framing
any model, the chatbot's avatar layout, lip-sync. Models come from tests/support/models.py."""
from __future__ import annotations

import re

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import expect

from tests.e2e.test_widget_browser import ARTIFACTS, browser  # noqa: F401 - the browser fixture
from tests.support.fake_tts import FakeTts
from tests.support.models import SampleModel, third_party_models
from scripts.loopback import FakeProvider, Slow, openai_app

pytestmark = pytest.mark.e2e

DESKTOP_PANEL = {"width": 400, "height": 640}  # the chat frame's size on a desktop
PHONE = {"width": 375, "height": 667}
PHONE_CONTEXT = {"is_mobile": True, "has_touch": True, "device_scale_factor": 2}


def model_form(model: SampleModel) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("name", model.name)
    form.add_field("file", model.glb, filename=f"{model.name}.glb", content_type="model/gltf-binary")
    return form


async def show(api, bot, model: SampleModel) -> None:
    status, avatar = await api.call("POST", "/api/v1/avatars", key=bot["key"], data=model_form(model))
    assert status == 201, avatar
    status, body = await api.call("PUT", f"/api/v1/chatbots/{bot['chatbot']['id']}/avatar", key=bot["key"],
                                  json={"avatar_id": avatar["id"]})
    assert status == 200, body


async def chat_frame(browser, site, bot, viewport, **context):  # noqa: F811 - fixture passed in
    ctx = await browser.new_context(viewport=viewport, **context)
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    await page.goto(f"{site}/widget/?embed_id={bot['embed_id']}")
    await expect(page.locator("#avatar canvas")).to_be_visible(timeout=20_000)
    await page.wait_for_function("window.__avatarchat && window.__avatarchat.framing")
    return page


def assert_inside(head: dict, what: str) -> None:
    """The head's projected box is wholly on the canvas, and big enough to read a face."""
    assert head["left"] >= 0 and head["top"] >= 0, (what, head)
    assert head["right"] <= head["width"] and head["bottom"] <= head["height"], (what, head)
    assert head["bottom"] - head["top"] >= 0.12 * head["height"], (what, head)


async def test_the_default_robot_is_framed_with_its_head_in_view(api, stack, site, browser, bot):  # noqa: F811
    for name, viewport in (("desktop", DESKTOP_PANEL), ("phone", PHONE)):
        page = await chat_frame(browser, site, bot, viewport, **(PHONE_CONTEXT if name == "phone" else {}))
        head = await page.evaluate("window.__avatarchat.projectObject('Head')")
        assert_inside(head, f"default robot, {name}")
        assert await page.evaluate("window.__avatarchat.framing.up") == "+y"
        assert page.errors == []
        await page.context.close()


@pytest.mark.parametrize("model", third_party_models(), ids=lambda m: m.name)
async def test_third_party_models_are_framed_with_the_head_fully_in_view(api, stack, site, browser, bot,  # noqa: F811
                                                                         model):
    await show(api, bot, model)
    for name, viewport in (("desktop", DESKTOP_PANEL), ("phone", PHONE)):
        page = await chat_frame(browser, site, bot, viewport, **(PHONE_CONTEXT if name == "phone" else {}))
        head = await page.evaluate("corners => window.__avatarchat.project(corners)", model.head_corners())
        assert_inside(head, f"{model.name}, {name}")
        await page.screenshot(path=str(ARTIFACTS / f"framing-{model.name}-{name}.png"))
        assert page.errors == []
        await page.context.close()


async def test_avatar_layout_is_a_chatbot_setting_with_stage_by_default(api, stack, bot):
    key, chatbot_id = bot["key"], bot["chatbot"]["id"]
    assert bot["chatbot"]["avatar_layout"] == "stage"
    status, body = await api.call("PATCH", f"/api/v1/chatbots/{chatbot_id}", key=key, json={"avatar_layout": "huge"})
    assert status == 422 and body["error"]["code"] == "validation_error", body
    status, body = await api.call("PATCH", f"/api/v1/chatbots/{chatbot_id}", key=key, json={"avatar_layout": "compact"})
    assert status == 200 and body["avatar_layout"] == "compact", body
    status, body = await api.call("PATCH", f"/api/v1/chatbots/{chatbot_id}", key=key, json={"name": "Renamed"})
    assert body["avatar_layout"] == "compact"  # other changes keep it
    status, config = await api.call("GET", f"/api/widget/v1/{bot['embed_id']}/config")
    assert config["avatar_layout"] == "compact"
    status, doc = await api.call("GET", "/api/v1/openapi.json")
    schema = doc["components"]["schemas"]["ChatbotPatch"]["properties"]["avatar_layout"]
    assert "stage" in str(schema) and "hidden" in str(schema), schema


@pytest.mark.parametrize("layout", ["stage", "compact", "hidden"])
async def test_each_avatar_layout_at_desktop_and_phone(api, stack, site, browser, bot, layout):  # noqa: F811
    status, body = await api.call("PATCH", f"/api/v1/chatbots/{bot['chatbot']['id']}", key=bot["key"],
                                  json={"avatar_layout": layout})
    assert status == 200, body
    for name, viewport in (("desktop", DESKTOP_PANEL), ("phone", PHONE)):
        ctx = await browser.new_context(viewport=viewport, **(PHONE_CONTEXT if name == "phone" else {}))
        page = await ctx.new_page()
        await page.goto(f"{site}/widget/?embed_id={bot['embed_id']}")
        await expect(page.locator(".message.greeting")).to_be_visible()
        avatar = page.locator("#avatar")
        if layout == "hidden":
            await expect(avatar).to_be_hidden()
            assert await page.locator("#avatar canvas").count() == 0
        else:
            await expect(page.locator("#avatar canvas")).to_be_visible(timeout=20_000)
            await page.wait_for_function("window.__avatarchat && window.__avatarchat.framing")
            share = (await avatar.bounding_box())["height"] / viewport["height"]
            if layout == "compact":
                assert share < 0.2, share  # the header thumbnail
            elif name == "desktop":
                assert 0.35 <= share <= 0.45, share  # about 40% of the panel
            else:
                assert 0.2 <= share < 0.35, share  # smaller on a phone, room for the messages
            head = await page.evaluate("window.__avatarchat.projectObject('Head')")
            assert_inside(head, f"{layout}, {name}")
        assert await page.locator("body").evaluate("b => b.scrollWidth") <= viewport["width"]
        await expect(page.locator("#input")).to_be_visible()
        await page.screenshot(path=str(ARTIFACTS / f"layout-{layout}-{name}.png"))
        await ctx.close()


# --- lip-sync ---------------------------------------------------------------------------------

STORY = ("Thanks for asking! Our workshop is open from Monday to Friday, nine to six, and on Saturday from "
         "ten until five. Bring your bike in for a quick check of the brakes, gears and tyres; most repairs "
         "are done the same day, and we will phone you when it is ready to collect.")


@pytest.fixture
async def story_openai():
    """An OpenAI-compatible model on loopback that tells STORY a few words at a time."""
    words = STORY.split(" ")
    pieces = [" ".join(words[i:i + 2]) + " " for i in range(0, len(words), 2)]
    fake = FakeProvider(script=[Slow(pieces, gap_s=0.12)] * 4)
    server = TestServer(openai_app(fake), host="127.0.0.1")
    await server.start_server()
    fake.server = server
    yield fake
    await server.close()


SAMPLER = """() => { window.__mouthLog = []; const t0 = performance.now();
    window.__sampler = setInterval(() => {
      const answer = [...document.querySelectorAll('.message.assistant:not(.greeting)')].at(-1);
      window.__mouthLog.push({t: performance.now() - t0, weights: window.__avatarchat.mouth().weights,
        text: answer ? answer.querySelector('.text').textContent.length : 0,
        ended: Boolean(answer && answer.querySelector('.actions'))});
    }, 25); }"""


async def slow_bot(api, stack, provider) -> dict:
    tenant = await api.tenant(stack.admin_key)
    key = tenant["api_key"]["key"]
    await api.call("PUT", "/api/v1/provider-keys/openai", key=key,
                   json={"api_key": "sk-test-0000000000", "base_url": provider.url + "/v1"})
    chatbot = await api.chatbot(key, ai={"provider": "openai", "model": "gpt-4o-mini"})
    return {"key": key, "chatbot": chatbot, "embed_id": chatbot["embed_id"]}


async def ask_and_record(page, question: str) -> list[dict]:
    await page.evaluate(SAMPLER)
    await page.locator("#input").fill(question)
    await page.locator("#input").press("Enter")
    answer = page.locator(".message.assistant:not(.greeting)").last
    await expect(answer.locator(".actions")).to_be_visible(timeout=30_000)  # message.end arrived
    await page.wait_for_timeout(700)
    return await page.evaluate("clearInterval(window.__sampler) || window.__mouthLog")


def dominant(weights: dict) -> str | None:
    name, weight = max(weights.items(), key=lambda kv: kv[1], default=(None, 0))
    return name if weight > 0.5 else None


async def test_the_default_robot_lip_syncs_a_streamed_reply_and_stops_when_it_ends(api, stack, site, browser,  # noqa: F811
                                                                                   story_openai):
    bot = await slow_bot(api, stack, story_openai)
    page = await chat_frame(browser, site, bot, DESKTOP_PANEL)
    assert await page.evaluate("window.__avatarchat.mouth().mode") == "visemes"
    log = await ask_and_record(page, "Tell me a long story")
    streaming = [s for s in log if s["text"] > 0 and not s["ended"]]
    assert len(streaming) > 40, len(log)  # the reply streamed for a few seconds
    shapes = [dominant(s["weights"]) for s in streaming]
    assert len({s for s in shapes if s}) >= 6, shapes  # many different mouth shapes, not one loop
    changes = sum(1 for a, b in zip(shapes, shapes[1:]) if a != b)
    # and they keep changing with the words (a busy machine draws fewer frames, so fewer are seen)
    assert changes >= 10, shapes
    assert sum(1 for s in shapes if s) >= len(shapes) / 3, shapes  # the mouth is mostly moving
    ended_at = next(s["t"] for s in log if s["ended"])
    after = [s for s in log if s["t"] > ended_at + 300]
    assert after and all(max(s["weights"].values()) < 0.02 for s in after), after[:3]  # closed and still
    assert page.errors == []


async def test_prefers_reduced_motion_keeps_the_mouth_still(api, stack, site, browser, story_openai):  # noqa: F811
    bot = await slow_bot(api, stack, story_openai)
    page = await chat_frame(browser, site, bot, DESKTOP_PANEL, reduced_motion="reduce")
    log = await ask_and_record(page, "Tell me a long story")
    assert any(s["text"] for s in log)
    assert all(max(s["weights"].values()) == 0 for s in log)


async def test_a_model_with_nothing_to_move_its_mouth_idles_and_shows_the_text(api, stack, site, browser, bot):  # noqa: F811
    await show(api, bot, third_party_models()[0])  # no visemes, no jaw, no clips
    page = await chat_frame(browser, site, bot, DESKTOP_PANEL)
    assert await page.evaluate("window.__avatarchat.mouth().mode") == "none"
    await page.locator("#input").fill("hello")
    await page.locator("#input").press("Enter")
    await expect(page.locator(".message.assistant:not(.greeting) .text").last).to_have_text("Hello from Acme!")
    assert page.errors == []


async def test_viseme_events_follow_the_text_offsets(api, stack, bot):
    conv = await api.conversation(bot["embed_id"])
    stream = await api.stream(bot["embed_id"], conv)
    status, _ = await api.say(bot["embed_id"], conv, "hello there, how are you today?", "c1")
    assert status == 202
    events = await stream.until("message.end")
    stream.response.close()
    text = next(e.data["text"] for e in events if e.event == "message.end")
    delivered = 0
    covered: set[int] = set()
    for event in events:
        if event.event == "message.delta":
            delivered = max(delivered, event.data["offset"] + len(event.data["text"]))
        elif event.event == "avatar.visemes":
            assert event.id is None  # a reconnect resumes from the text, not from these
            for viseme, offset, ms in event.data["visemes"]:
                assert offset < len(text) and ms > 0
                assert offset < delivered  # never ahead of the text
                if viseme != "sil":
                    assert text[offset].isalnum(), (offset, text)  # a word's first letter
                    covered.add(offset)
    word_starts = {m.start() for m in re.finditer(r"\w+", text)}
    assert word_starts <= covered, (word_starts - covered, text)


# --- the voice --------------------------------------------------------------------------------

@pytest.fixture
async def fake_tts():
    fake = FakeTts()
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("/v1"))
    yield fake
    await server.close()


async def voiced_bot(api, stack, tts: FakeTts) -> dict:
    tenant = await api.tenant(stack.admin_key)
    key = tenant["api_key"]["key"]
    status, body = await api.call("PUT", "/api/v1/provider-keys/openai", key=key,
                                  json={"api_key": "sk-test-0000000000", "base_url": tts.url})
    assert status == 200, body
    chatbot = await api.chatbot(key, voice="provider", voice_name="nova")
    return {"key": key, "chatbot": chatbot, "embed_id": chatbot["embed_id"]}


async def test_voice_is_a_chatbot_setting_and_local_is_refused_with_the_reason(api, stack, bot):
    chatbot_id = bot["chatbot"]["id"]
    assert bot["chatbot"]["voice"] == "none"
    status, body = await api.call("PATCH", f"/api/v1/chatbots/{chatbot_id}", key=bot["key"], json={"voice": "local"})
    assert status == 422 and "GPL" in str(body["error"]["details"]), body
    status, body = await api.call("PATCH", f"/api/v1/chatbots/{chatbot_id}", key=bot["key"],
                                  json={"voice_name": "../etc"})
    assert status == 422, body
    status, body = await api.call("PATCH", f"/api/v1/chatbots/{chatbot_id}", key=bot["key"], json={"voice": "provider"})
    assert status == 200 and body["voice"] == "provider"
    status, config = await api.call("GET", f"/api/widget/v1/{bot['embed_id']}/config")
    assert config["voice"] is True


async def until(page, expression: str, seconds: float = 15) -> None:
    """Poll ``expression`` in the page (the frame's CSP forbids wait_for_function's eval)."""
    for _ in range(int(seconds * 10)):
        if await page.evaluate(expression):
            return
        await page.wait_for_timeout(100)
    raise AssertionError(f"never true: {expression}")


VOICE_SAMPLER = """() => { window.__voiceLog = [];
    window.__voiceSampler = setInterval(() => {
      const v = window.__avatarchat.voice();
      const w = window.__avatarchat.mouth().weights;
      window.__voiceLog.push({...v, open: Math.max(0, ...Object.values(w))});
    }, 8); }"""


async def test_with_voice_on_the_mouth_follows_the_audio_word_by_word(api, stack, site, browser, fake_tts):  # noqa: F811
    bot = await voiced_bot(api, stack, fake_tts)
    page = await chat_frame(browser, site, bot, DESKTOP_PANEL)
    voice = page.locator("#voice")
    await expect(voice).to_have_attribute("aria-pressed", "false")  # starts muted
    await voice.click()
    await expect(voice).to_have_attribute("aria-pressed", "true")
    await page.evaluate(VOICE_SAMPLER)
    await page.locator("#input").fill("hello")
    await page.locator("#input").press("Enter")
    await expect(page.locator(".message.assistant:not(.greeting) .text").last).to_have_text("Hello from Acme!")
    await until(page, "window.__voiceLog.some(s => s.playing)")
    await until(page, "!window.__avatarchat.voice().playing")
    log = await page.evaluate("clearInterval(window.__voiceSampler) || window.__voiceLog")
    assert fake_tts.requests[-1]["input"] == "Hello from Acme!" and fake_tts.requests[-1]["voice"] == "nova"
    assert len(fake_tts.words) == 3
    # every frame drawn while the voice played, with the audio time it was drawn for: the word
    # the mouth shows must be the word heard then, give or take 100 ms (a busy machine may draw
    # few frames, but never a wrong one)
    frames = {(f["time"], f["offset"]) for s in log if s["playing"] and (f := s["frame"])}
    assert len(frames) >= 10, frames

    def heard(t: float) -> set:
        return {offset for offset, start, end in fake_tts.words if start - 0.1 <= t <= end + 0.1}

    for t, offset in sorted(frames):
        if offset is not None:
            assert offset in heard(t), (t, offset, fake_tts.words)
        elif t > fake_tts.words[0][1]:  # at rest: only in a pause, or within 100 ms of one
            assert not {o for o, start, end in fake_tts.words if start + 0.1 <= t <= end - 0.1}, (t, fake_tts.words)
    shown = [offset for _, offset in sorted(frames) if offset is not None]
    words = [o for n, o in enumerate(shown) if n == 0 or o != shown[n - 1]]
    assert len(words) >= 2 and words == sorted(words), words  # word after word, in order
    assert max(s["open"] for s in log if s["playing"]) > 0.5  # the mouth really opens
    assert page.errors == []


@pytest.mark.parametrize("mode", ["fail", "slow"])
async def test_a_failing_or_slow_voice_never_holds_up_the_text(api, stack, site, browser, fake_tts, mode):  # noqa: F811
    fake_tts.mode = mode
    bot = await voiced_bot(api, stack, fake_tts)
    page = await chat_frame(browser, site, bot, DESKTOP_PANEL)
    await page.locator("#voice").click()
    await page.locator("#input").fill("hello")
    await page.locator("#input").press("Enter")
    answer = page.locator(".message.assistant:not(.greeting)").last
    await expect(answer.locator(".text")).to_have_text("Hello from Acme!")
    await expect(answer.locator(".voice-note")).to_have_text("Voice unavailable", timeout=25_000)
    assert page.errors == []
