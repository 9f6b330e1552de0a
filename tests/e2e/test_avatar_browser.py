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
        page = await chat_frame(browser, site, bot, viewport)
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
        page = await chat_frame(browser, site, bot, viewport)
        head = await page.evaluate("corners => window.__avatarchat.project(corners)", model.head_corners())
        assert_inside(head, f"{model.name}, {name}")
        await page.screenshot(path=str(ARTIFACTS / f"framing-{model.name}-{name}.png"))
        assert page.errors == []
        await page.context.close()
