"""The widget in a real browser: Debian's chromium driven by Playwright, against the stack
behind nginx (the same nginx template as the frontend container)."""
from __future__ import annotations


import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import async_playwright, expect

from scripts import frontend
from scripts.seed import add_knowledge
from tests.conftest import ROOT
from scripts.loopback import FakeProvider, Slow, openai_app

pytestmark = pytest.mark.e2e
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu-sandbox", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
                 # software WebGL, so the three.js avatar renders on machines without a GPU
                 "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]


@pytest.fixture
async def browser():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        instance = await p.chromium.launch(executable_path=frontend.ensure_browser(), headless=True,
                                           args=CHROMIUM_ARGS)
        yield instance
        await instance.close()


async def demo_page(browser, site: str, embed_id: str, *, viewport=None, page_name="test-demo.html", **context):
    path = frontend.set_demo_embed_id(embed_id, page_name)
    ctx = await browser.new_context(viewport=viewport or {"width": 1280, "height": 800}, **context)
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    await page.goto(site + path)
    return page


def widget(page):
    return page.locator("#avatarchat-widget")


def chat(page):
    return page.frame_locator("#avatarchat-widget iframe")


async def open_chat(page):
    await widget(page).locator("button.launcher").click()
    await expect(chat(page).locator("#input")).to_be_visible()


async def test_a_visitor_asks_the_demo_page_and_sees_a_grounded_answer_while_the_avatar_plays(
        api, stack, site, browser, bot):
    await add_knowledge(api.http, stack.gateway, {"api_key": bot["key"], "chatbot_id": bot["chatbot"]["id"]})
    page = await demo_page(browser, site, bot["embed_id"])
    await expect(page.locator("h1")).to_contain_text("City bikes")
    await open_chat(page)
    frame = chat(page)
    # the avatar is the real three.js one (software WebGL here), idling
    await expect(frame.locator("#avatar canvas")).to_be_visible(timeout=20_000)
    await expect(frame.locator("#avatar")).to_have_attribute("data-clip", "idle")
    chat_frame = page.frames[1]
    assert await chat_frame.evaluate("window.__avatarchat.avatar") == "3d"
    # watch every clip it plays from now on
    await chat_frame.evaluate("""() => { window.__clipLog = [];
        new MutationObserver(() => window.__clipLog.push(document.getElementById('avatar').dataset.clip))
          .observe(document.getElementById('avatar'), {attributes: true, attributeFilter: ['data-clip']}); }""")
    await frame.locator("#input").fill("What are your opening hours on Saturday?")
    await frame.locator("#input").press("Enter")
    answer = frame.locator(".message.assistant:not(.greeting)").last
    await expect(answer.locator(".text")).to_contain_text("Saturday from 10:00 to 17:00")
    await expect(answer.locator(".citations")).to_contain_text("Northwind Bikes FAQ")
    await expect(frame.locator(".message.visitor .text")).to_have_text("What are your opening hours on Saturday?")
    await expect(answer.locator("button[aria-label='Helpful']")).to_be_visible()
    await expect(frame.locator("#avatar")).to_have_attribute("data-clip", "idle", timeout=15_000)  # and back
    clips = await chat_frame.evaluate("window.__clipLog")
    assert "talk" in clips, clips  # it talked while the answer streamed
    assert [c for c in clips if c not in ("talk", "idle")], clips  # then played the reply's animation
    await page.screenshot(path=str(ARTIFACTS / "desktop.png"))
    assert page.errors == []


async def test_host_page_css_does_not_reach_the_widget_and_ours_does_not_leak_out(site, browser, bot):
    page = await demo_page(browser, site, bot["embed_id"])
    before = await page.evaluate("document.styleSheets.length")
    cta = page.locator(".cta")
    host_button = await cta.evaluate("e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).fontFamily]")
    launcher = widget(page).locator("button.launcher")
    await expect(launcher).to_be_visible()
    style = await launcher.evaluate("""e => { const s = getComputedStyle(e);
        return {bg: s.backgroundColor, font: s.fontFamily, border: s.borderTopStyle, transform: s.textTransform}; }""")
    assert "Georgia" not in style["font"] and style["border"] == "none" and style["transform"] == "none"
    assert style["bg"] == "rgb(79, 70, 229)"  # the chatbot's primary colour, not the page's red
    await launcher.click()
    iframe_border = await widget(page).locator("iframe").evaluate("e => getComputedStyle(e).borderTopWidth")
    assert iframe_border == "0px"
    send_font = await chat(page).locator("#send").evaluate("e => getComputedStyle(e).fontFamily")
    assert "Georgia" not in send_font
    assert await page.evaluate("document.styleSheets.length") == before  # nothing added to the page
    assert await cta.evaluate("e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).fontFamily]") == host_button


async def test_keyboard_only(site, browser, bot):
    page = await demo_page(browser, site, bot["embed_id"])
    launcher = widget(page).locator("button.launcher")
    await expect(launcher).to_be_visible()
    for _ in range(12):  # tab through the page until the launcher has focus
        await page.keyboard.press("Tab")
        if await launcher.evaluate("e => e.getRootNode().activeElement === e"):
            break
    else:
        raise AssertionError("the launcher cannot be reached with Tab")
    assert await launcher.get_attribute("aria-expanded") == "false"
    await page.keyboard.press("Enter")
    await expect(launcher).to_have_attribute("aria-expanded", "true")
    frame = chat(page)
    await expect(frame.locator("#input")).to_be_focused()
    await page.keyboard.type("hello")
    await page.keyboard.press("Enter")
    await expect(frame.locator(".message.assistant:not(.greeting) .text").last).to_have_text("Hello from Acme!")
    await expect(frame.locator("#stop")).to_be_hidden()  # the reply has ended: no Stop button any more
    await expect(frame.locator("#input")).to_be_focused()
    await page.keyboard.press("Tab")
    active = await page.frames[1].evaluate("document.activeElement && (document.activeElement.id || document.activeElement.outerHTML.slice(0, 80))")
    assert active == "send", active
    await page.keyboard.press("Escape")
    await expect(launcher).to_have_attribute("aria-expanded", "false")
    assert await launcher.evaluate("e => e.getRootNode().activeElement === e")  # focus came back
    # labels for screen readers
    assert await launcher.get_attribute("aria-label") == "Open chat with Helper"
    assert await frame.locator("#messages").get_attribute("role") == "log"
    assert await frame.locator("label[for=input]").count() == 1


async def test_usable_on_a_phone(site, browser, bot):
    page = await demo_page(browser, site, bot["embed_id"], viewport={"width": 375, "height": 667},
                           is_mobile=True, has_touch=True, device_scale_factor=2)
    await open_chat(page)
    box = await widget(page).locator(".panel").bounding_box()
    assert box["width"] == 375 and box["height"] == 667  # full screen on a phone
    frame = chat(page)
    await frame.locator("#input").fill("hello")
    await frame.locator("#send").tap()
    await expect(frame.locator(".message.assistant:not(.greeting) .text").last).to_have_text("Hello from Acme!")
    scroll_width = await frame.locator("body").evaluate("b => b.scrollWidth")
    assert scroll_width <= 375
    await page.screenshot(path=str(ARTIFACTS / "phone.png"))


async def test_unknown_embed_id_or_wrong_origin_says_so_quietly(api, stack, site, browser):
    page = await demo_page(browser, site, "no-such-embed-id", page_name="test-unknown.html")
    await widget(page).locator("button.launcher").click()
    await expect(widget(page).locator(".notice")).to_have_text("This chat isn't available right now.")
    await expect(page.locator("h1")).to_contain_text("City bikes")  # the page itself is intact
    assert page.errors == []

    tenant = await api.tenant(stack.admin_key)
    locked = await api.chatbot(tenant["api_key"]["key"], allowed_origins=["https://shop.example"])
    # a website the chatbot does not list: another origin pasting our script tag
    foreign = web.Application()
    shop_page = (f'<!doctype html><html lang="en"><title>Another shop</title><h1>Another shop</h1>'
                 f'<script src="{site}/embed.js" data-embed-id="{locked["embed_id"]}" defer></script></html>')

    async def serve(request: web.Request) -> web.Response:
        return web.Response(text=shop_page, content_type="text/html")

    foreign.router.add_get("/", serve)
    server = TestServer(foreign, host="127.0.0.1")
    await server.start_server()
    try:
        ctx = await browser.new_context()
        page = await ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(str(server.make_url("/")))
        await widget(page).locator("button.launcher").click()
        await expect(widget(page).locator(".notice")).to_contain_text("isn't available")
        await expect(page.locator("h1")).to_have_text("Another shop")
        assert errors == []
        await ctx.close()
    finally:
        await server.close()
    # and the chat frame itself refuses to be framed by a site the chatbot doesn't allow
    resp = await (await browser.new_context()).request.get(f"{site}/widget/?embed_id={locked['embed_id']}")
    assert "frame-ancestors 'self' https://shop.example" in resp.headers["content-security-policy"]
    # our own pages (the demo page, the console's preview) may show it: the frame's calls are
    # same-origin, and its embedding is the frame-ancestors policy's job
    page = await demo_page(browser, site, locked["embed_id"], page_name="test-locked.html")
    await open_chat(page)
    assert page.errors == []


@pytest.fixture
async def slow_openai():
    fake = FakeProvider(script=[Slow([f"Part {i} of a long answer. " for i in range(1, 13)], gap_s=0.25)])
    server = TestServer(openai_app(fake), host="127.0.0.1")
    await server.start_server()
    fake.server = server
    yield fake
    await server.close()


async def test_a_dropped_connection_mid_reply_resumes_with_nothing_lost_or_doubled(api, stack, site, browser,
                                                                                    slow_openai):
    tenant = await api.tenant(stack.admin_key)
    key = tenant["api_key"]["key"]
    await api.call("PUT", "/api/v1/provider-keys/openai", key=key,
                   json={"api_key": "sk-test-0000000000", "base_url": slow_openai.url + "/v1"})
    bot = await api.chatbot(key, ai={"provider": "openai", "model": "gpt-4o-mini"})
    page = await demo_page(browser, site, bot["embed_id"], page_name="test-reconnect.html")
    await open_chat(page)
    frame = chat(page)
    await frame.locator("#input").fill("Tell me a long story")
    await frame.locator("#input").press("Enter")
    answer = frame.locator(".message.assistant:not(.greeting) .text").last
    await expect(answer).to_contain_text("Part 2 of")
    # the network drops in the middle of the reply: the gateway holding the stream goes away
    stack.ctl("restart", "gateway")
    expected = "".join(f"Part {i} of a long answer. " for i in range(1, 13))
    await expect(answer).to_have_text(expected, timeout=30_000)
    await page.wait_for_timeout(500)  # a doubled message.end would show up here
    assert await answer.inner_text() == expected.strip() or await answer.inner_text() == expected
    assert await frame.locator(".message.assistant:not(.greeting)").count() == 1
    stack.wait_healthy(30)
