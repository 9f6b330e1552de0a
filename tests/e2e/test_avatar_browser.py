"""The avatar in a real browser (Debian's chromium through Playwright, software WebGL): framing
any model, the chatbot's avatar layout, lip-sync. Models come from tests/support/models.py."""
from __future__ import annotations

import aiohttp
import pytest
from playwright.async_api import expect

from tests.e2e.test_widget_browser import ARTIFACTS, browser  # noqa: F401 - the browser fixture
from tests.support.models import SampleModel, third_party_models

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
