"""The tenant console (/console/) in a real browser: Debian's chromium through Playwright, against
the stack behind nginx (the container's template). People sign in with the real session API;
every page is screenshotted at desktop and phone sizes into test-artifacts/console/ and checked
with axe-core (no serious or critical violations)."""
from __future__ import annotations

import re
import uuid

import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from aiohttp import web
from playwright.async_api import expect

from scripts.seed import add_knowledge
from tests.conftest import ROOT
from tests.e2e.test_widget_browser import browser  # noqa: F401 - the browser fixture
from tests.integration.knowledge.samples import make_pdf
from tests.unit.avatar.avatar_samples import default_glb, with_clip_names

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / "test-artifacts" / "console"
AXE = ROOT / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PASSWORD = "correct horse battery"
COOKIE = "__Host-avatarchat_session"


# --- helpers ---------------------------------------------------------------------------------

async def new_tenant(api, stack, name: str, owner_email: str) -> dict:
    status, body = await api.call("POST", "/api/v1/admin/tenants", key=stack.admin_key,
                                  json={"name": name, "owner_email": owner_email})
    assert status == 201, body
    return body


async def invite(api, key: str, email: str, role: str) -> str:
    status, body = await api.call("POST", "/api/v1/invites", key=key, json={"email": email, "role": role})
    assert status == 201, body
    return body["token"]


async def open_console(browser, site, hash_: str = "", viewport=None, **context):  # noqa: F811
    ctx = await browser.new_context(viewport=viewport or DESKTOP, **context)
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    await page.goto(f"{site}/console/{hash_}")
    return page


async def accept_invite(page, site, token: str, password: str = PASSWORD) -> None:
    await page.goto(f"{site}/console/#/invite/{token}")
    await page.get_by_label("Choose a password").fill(password)
    await page.get_by_label("Repeat the password").fill(password)
    await page.get_by_role("button", name=re.compile("^Join")).click()
    await expect(page.get_by_role("heading", level=1, name="Chatbots")).to_be_visible()


async def sign_in(page, site, email: str, password: str = PASSWORD) -> None:
    await page.goto(f"{site}/console/#/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.get_by_role("heading", level=1, name="Chatbots")).to_be_visible()


async def in_page(page, method: str, path: str, body: dict | None = None) -> dict:
    """A fetch from the signed-in page, as the console makes it (cookie + CSRF token)."""
    return await page.evaluate("""async ([method, path, body]) => {
        const session = await (await fetch('/api/v1/auth/session')).json();
        const r = await fetch(path, {method, credentials: 'same-origin',
            headers: {'Content-Type': 'application/json', 'X-CSRF-Token': session.csrf_token},
            body: body === null ? undefined : JSON.stringify(body)});
        let data = null; try { data = await r.json(); } catch {}
        return {status: r.status, data};
    }""", [method, path, body])


async def axe_check(page, what: str) -> None:
    await page.evaluate(AXE.read_text())
    found = await page.evaluate("""async () => {
        const result = await axe.run(document, {resultTypes: ['violations']});
        return result.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    assert found == [], f"{what}: {found}"


async def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


# --- the journeys ------------------------------------------------------------------------

async def test_an_owner_invites_an_editor_who_builds_a_chatbot_feeds_it_a_pdf_and_asks_in_the_preview(
        api, stack, site, browser):  # noqa: F811
    tag = uuid.uuid4().hex[:8]
    tenant = await new_tenant(api, stack, f"Northwind {tag}", f"owner-{tag}@northwind.example")
    owner = await open_console(browser, site)
    await accept_invite(owner, site, tenant["owner_invite"]["token"])
    # the owner invites an editor from Settings and copies the link shown
    await owner.get_by_role("link", name="Settings").click()
    await owner.get_by_label("Email to invite").fill(f"editor-{tag}@northwind.example")
    await owner.get_by_label("Role", exact=True).select_option("editor")
    await owner.get_by_role("button", name="Create invitation").click()
    link = await owner.get_by_label("Invitation link").input_value()
    assert link.startswith(f"{site}/console/#/invite/"), link
    await expect(owner.locator(".invites")).to_contain_text(f"editor-{tag}@northwind.example (editor)")

    editor = await open_console(browser, site)
    await editor.goto(link)
    await expect(editor.locator(".intro")).to_contain_text("as editor")
    await editor.get_by_label("Choose a password").fill(PASSWORD)
    await editor.get_by_label("Repeat the password").fill(PASSWORD)
    await editor.get_by_role("button", name=re.compile("^Join")).click()
    await expect(editor.get_by_role("heading", level=1, name="Chatbots")).to_be_visible()
    # sign out and back in with the new password
    await editor.get_by_role("button", name="Sign out").click()
    await sign_in(editor, site, f"editor-{tag}@northwind.example")

    # creates a chatbot; the live preview shows the real widget and follows the form
    await editor.get_by_label("New chatbot's name").fill("Bike helper")
    await editor.get_by_role("button", name="Create chatbot").click()
    await expect(editor.get_by_role("heading", level=1, name="Bike helper")).to_be_visible()
    preview = editor.frame_locator("iframe[title='Chat preview']")
    await expect(preview.locator("#bot-name")).to_have_text("Bike helper")
    await expect(preview.locator("#avatar canvas")).to_be_visible(timeout=30_000)  # the real three.js avatar
    await editor.get_by_label("Welcome message").fill("Welcome to Northwind bike rental!")
    await expect(preview.locator(".message.greeting .text")).to_have_text("Welcome to Northwind bike rental!")
    await editor.get_by_label("Suggested questions").fill("When do you close?\nDo you rent e-bikes?")
    await expect(preview.locator("#suggestions button")).to_have_text(["When do you close?", "Do you rent e-bikes?"])
    await editor.get_by_role("button", name="Save changes").click()
    await expect(editor.get_by_role("status").filter(has_text="Saved")).to_be_visible()
    await expect(editor.get_by_label("Embed snippet")).to_have_value(re.compile(r'<script src=".*/embed\.js" data-embed-id='))

    # uploads a PDF and watches it index
    chatbot_id = editor.url.rsplit("/", 1)[-1]
    await editor.get_by_role("link", name="Knowledge").first.click()
    await expect(editor.get_by_role("heading", level=2, name="Upload files")).to_be_visible()
    await editor.evaluate("""() => { window.__sawProgress = false;
        new MutationObserver(() => { if (document.querySelector('progress[aria-label^="Indexing"]')) window.__sawProgress = true; })
          .observe(document.body, {childList: true, subtree: true}); }""")
    pages = [f"Rental rules page {i}: bikes are checked and cleaned every morning at the depot." for i in range(40)]
    pages[7] = "Returns: Northwind rental bikes can be returned at any station until 22:00 every day."
    await editor.set_input_files("#document-files", files=[{
        "name": "rental-rules.pdf", "mimeType": "application/pdf", "buffer": make_pdf(pages)}])
    row = editor.locator("table.documents tbody tr").filter(has_text="rental-rules")
    await expect(row.locator(".doc-status .badge")).to_have_text("indexed", timeout=120_000)
    assert await editor.evaluate("window.__sawProgress"), "no progress bar was shown while it indexed"

    # the search box shows what the bot would retrieve, with scores
    await editor.get_by_label("A visitor's question").fill("Until when can I return a bike?")
    await editor.get_by_role("button", name="Search", exact=True).click()
    await expect(editor.locator(".passages li").first).to_contain_text("22:00")
    await expect(editor.locator(".passages .score").first).to_contain_text("score")

    # asks in the preview and sees the grounded answer with its citation
    await editor.goto(f"{site}/console/#/chatbots/{chatbot_id}")
    preview = editor.frame_locator("iframe[title='Chat preview']")
    # the frame's script has run (the textarea is in its HTML before that, and an Enter
    # pressed then would go nowhere)
    await expect(preview.locator("#bot-name")).to_have_text("Bike helper")
    await preview.locator("#input").fill("Until when can I return a rental bike?")
    await preview.locator("#input").press("Enter")
    answer = preview.locator(".message.assistant:not(.greeting)").last
    await expect(answer.locator(".text")).to_contain_text("22:00", timeout=60_000)
    await expect(answer.locator(".citations")).to_contain_text("rental-rules")
    await shoot(editor, "journey-preview-answer")
    assert owner.errors == [] and editor.errors == []


async def test_an_editor_uploads_a_glb_maps_greet_to_a_clip_and_sees_it_play(api, stack, site, browser):  # noqa: F811
    tag = uuid.uuid4().hex[:8]
    tenant = await new_tenant(api, stack, f"Avatars {tag}", f"owner-{tag}@avatars.example")
    token = await invite(api, tenant["api_key"]["key"], f"editor-{tag}@avatars.example", "editor")
    page = await open_console(browser, site)
    await accept_invite(page, site, token)
    await page.get_by_role("link", name="Avatars").click()
    # clips named the way an exporter might: nothing maps "greet" by name
    glb = with_clip_names(default_glb(), ["idle", "talk", "Hello_Wave", "Nod_Yes"])
    await page.get_by_label("Name", exact=True).fill("Robo")
    await page.set_input_files("#avatar-file", files=[{"name": "robo.glb", "mimeType": "model/gltf-binary", "buffer": glb}])
    await page.get_by_role("button", name="Upload", exact=True).click()
    await expect(page.get_by_role("heading", level=2, name="Robo")).to_be_visible()
    viewer = page.locator("#avatar-viewer")
    await expect(viewer.locator("canvas")).to_be_visible(timeout=30_000)
    await expect(viewer).to_have_attribute("data-clip", "idle")
    await expect(page.get_by_role("button", name="Play clip Hello_Wave")).to_be_visible()
    # map greet -> Hello_Wave, save, and play the behaviour
    await page.get_by_label("greet", exact=True).select_option("Hello_Wave")
    await page.get_by_role("button", name="Save the map").click()
    await expect(page.get_by_role("status").filter(has_text="map is saved")).to_be_visible()
    await page.evaluate("""() => { window.__clips = [];
        new MutationObserver(() => window.__clips.push(document.getElementById('avatar-viewer').dataset.clip))
          .observe(document.getElementById('avatar-viewer'), {attributes: true, attributeFilter: ['data-clip']}); }""")
    await page.get_by_role("button", name="Play behaviour greet").click()
    await expect(viewer).to_have_attribute("data-clip", "idle", timeout=15_000)  # it played, then went back
    assert "Hello_Wave" in await page.evaluate("window.__clips")
    status, body = await api.call("GET", "/api/v1/avatars", key=tenant["api_key"]["key"])
    robo = next(a for a in body["data"] if a["name"] == "Robo")
    assert robo["animation_map"]["greet"] == "Hello_Wave"
    assert page.errors == []


async def _tenant_with_a_conversation(api, stack, tag: str) -> dict:
    tenant = await new_tenant(api, stack, f"Readers {tag}", f"owner-{tag}@readers.example")
    key = tenant["api_key"]["key"]
    bot = await api.chatbot(key)
    await add_knowledge(api.http, stack.gateway, {"api_key": key, "chatbot_id": bot["id"]})  # waits until indexed
    conv = await api.conversation(bot["embed_id"])
    stream = await api.stream(bot["embed_id"], conv)
    status, body = await api.say(bot["embed_id"], conv, "What are your opening hours on Saturday?", "m1")
    assert status == 202, body
    await stream.until("message.end", timeout=60)
    stream.response.close()
    return {"tenant": tenant, "key": key, "bot": bot, "conversation": conv}


async def test_a_viewer_reads_conversations_and_analytics_without_edit_controls_and_the_api_refuses_edits(
        api, stack, site, browser):  # noqa: F811
    tag = uuid.uuid4().hex[:8]
    data = await _tenant_with_a_conversation(api, stack, tag)
    token = await invite(api, data["key"], f"viewer-{tag}@readers.example", "viewer")
    page = await open_console(browser, site)
    await accept_invite(page, site, token)
    await expect(page.get_by_role("link", name=data["bot"]["name"])).to_be_visible()
    await expect(page.get_by_label("New chatbot's name")).to_have_count(0)
    await page.get_by_role("link", name=data["bot"]["name"]).click()
    await expect(page.get_by_role("heading", level=1, name=data["bot"]["name"])).to_be_visible()
    await expect(page.get_by_role("button", name="Save changes")).to_have_count(0)
    await expect(page.get_by_label("Name", exact=True)).to_be_disabled()
    await page.get_by_role("link", name="Knowledge").first.click()
    await expect(page.get_by_text("Northwind Bikes FAQ")).to_be_visible()
    await expect(page.get_by_role("heading", name="Upload files")).to_have_count(0)
    await expect(page.get_by_role("button", name=re.compile("^Delete"))).to_have_count(0)
    # the conversation and its transcript
    await page.get_by_role("link", name="Conversations").click()
    first = page.locator("table tbody tr").first
    await expect(first).to_be_visible()
    await first.get_by_role("link").click()
    await expect(page.locator(".turn.visitor .text")).to_have_text("What are your opening hours on Saturday?")
    await expect(page.locator(".turn.assistant .citations")).to_contain_text("Northwind Bikes FAQ")
    # analytics: charts drawn, exports offered
    await page.get_by_role("link", name="Analytics").click()
    await expect(page.locator("#chart-conversations-title")).to_be_visible()
    await expect(page.locator(".chart canvas")).to_have_count(5)
    await expect(page.get_by_role("link", name="Export conversations (CSV)")).to_be_visible()
    await expect(page.get_by_role("link", name="Settings")).to_be_visible()
    await page.get_by_role("link", name="Settings").click()
    await expect(page.get_by_role("heading", name="API keys")).to_have_count(0)
    # the API refuses what the UI does not offer
    edit = await in_page(page, "PATCH", f"/api/v1/chatbots/{data['bot']['id']}", {"name": "Hijacked"})
    assert edit["status"] == 403 and edit["data"]["error"]["code"] == "insufficient_role", edit
    create = await in_page(page, "POST", "/api/v1/chatbots", {"name": "Another"})
    assert create["status"] == 403, create
    assert page.errors == []


async def test_logout_ends_the_session_on_the_server(api, stack, site, browser):  # noqa: F811
    tag = uuid.uuid4().hex[:8]
    tenant = await new_tenant(api, stack, f"Leavers {tag}", f"owner-{tag}@leavers.example")
    page = await open_console(browser, site)
    await accept_invite(page, site, tenant["owner_invite"]["token"])
    cookie = next(c["value"] for c in await page.context.cookies() if c["name"] == COOKIE)
    status, body = await api.call("GET", "/api/v1/auth/session", headers={"Cookie": f"{COOKIE}={cookie}"})
    assert status == 200 and body["user"]["email"] == f"owner-{tag}@leavers.example", body
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", level=1, name="Sign in")).to_be_visible()
    # the old cookie, replayed as if it had been stolen, opens nothing any more
    status, body = await api.call("GET", "/api/v1/auth/session", headers={"Cookie": f"{COOKIE}={cookie}"})
    assert status == 401, body
    status, body = await api.call("GET", "/api/v1/chatbots", headers={"Cookie": f"{COOKIE}={cookie}"})
    assert status == 401, body
    await page.goto(f"{site}/console/#/settings")
    await expect(page.get_by_role("heading", level=1, name="Sign in")).to_be_visible()


async def test_a_session_of_tenant_a_cannot_read_tenant_b_through_the_ui_or_the_api(api, stack, site, browser):  # noqa: F811
    tag = uuid.uuid4().hex[:8]
    a = await new_tenant(api, stack, f"Alpha {tag}", f"owner-{tag}@alpha.example")
    b = await _tenant_with_a_conversation(api, stack, f"b{tag}")
    page = await open_console(browser, site)
    await accept_invite(page, site, a["owner_invite"]["token"])
    await page.goto(f"{site}/console/#/chatbots/{b['bot']['id']}")
    await expect(page.get_by_role("alert")).to_have_text("There is no such chatbot in this workspace.")
    await expect(page.get_by_text(b["bot"]["name"])).to_have_count(0)
    await page.goto(f"{site}/console/#/conversations/{b['bot']['id']}/{b['conversation']['conversation_id']}")
    await expect(page.get_by_role("alert")).to_be_visible()
    await expect(page.get_by_text("What are your opening hours on Saturday?")).to_have_count(0)
    for method, path in [("GET", f"/api/v1/chatbots/{b['bot']['id']}"),
                         ("GET", f"/api/v1/conversations/{b['conversation']['conversation_id']}"),
                         ("GET", f"/api/v1/chatbots/{b['bot']['id']}/knowledge/documents"),
                         ("PATCH", f"/api/v1/chatbots/{b['bot']['id']}")]:
        result = await in_page(page, method, path, {"name": "x"} if method == "PATCH" else None)
        assert result["status"] == 404, (method, path, result)
    # switching to a tenant one does not belong to is refused
    result = await in_page(page, "POST", "/api/v1/auth/switch-tenant", {"tenant_id": b["tenant"]["tenant"]["id"]})
    assert result["status"] == 403, result


async def test_a_cross_site_form_post_is_refused(api, stack, site, browser):  # noqa: F811
    tag = uuid.uuid4().hex[:8]
    tenant = await new_tenant(api, stack, f"Target {tag}", f"owner-{tag}@target.example")
    page = await open_console(browser, site)
    await accept_invite(page, site, tenant["owner_invite"]["token"])
    # another origin on the same host (same site, so the Lax cookie does go along): only the
    # CSRF defence stands between its form and the API
    evil = web.Application()
    form = (f'<!doctype html><title>Win a bike</title><form id="f" method="post" action="{site}/api/v1/api-keys" '
            'enctype="text/plain"><input name=\'{"name":"stolen","scope":"full","x":"\' value=\'"}\'></form>'
            '<script>document.getElementById("f").submit()</script>')

    async def attacker_page(request: web.Request) -> web.Response:
        return web.Response(text=form, content_type="text/html")

    evil.router.add_get("/", attacker_page)
    server = TestServer(evil, host="127.0.0.1")
    await server.start_server()
    try:
        attacker = await page.context.new_page()
        await attacker.goto(str(server.make_url("/")))
        await attacker.wait_for_url(f"{site}/api/v1/api-keys")
        assert "csrf_failed" in await attacker.content()
    finally:
        await server.close()
    status, body = await api.call("GET", "/api/v1/api-keys", key=tenant["api_key"]["key"])
    assert [k["name"] for k in body["data"]] == ["default"], body


# --- bad input -----------------------------------------------------------------------------------

async def test_bad_input_gets_a_clear_message_and_keeps_what_was_typed(api, stack, site, browser):  # noqa: F811
    tag = uuid.uuid4().hex[:8]
    email = f"owner-{tag}@careful.example"
    tenant = await new_tenant(api, stack, f"Careful {tag}", email)
    page = await open_console(browser, site)
    await accept_invite(page, site, tenant["owner_invite"]["token"])
    await page.get_by_role("button", name="Sign out").click()

    # a wrong password: the same answer as an unknown email, and the email stays
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill("not my password")
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.get_by_role("alert")).to_have_text("the email or password is not right")
    await expect(page.get_by_label("Email")).to_have_value(email)
    await sign_in(page, site, email)

    # an expired invitation
    token = await invite(api, tenant["api_key"]["key"], f"late-{tag}@careful.example", "viewer")
    pool = await asyncpg.connect(stack.env["GATEWAY_DATABASE_URL"])
    try:
        await pool.execute("UPDATE invites SET expires_at = now() - interval '1 minute' WHERE email = $1",
                           f"late-{tag}@careful.example")
    finally:
        await pool.close()
    late = await open_console(browser, site, f"#/invite/{token}")
    await expect(late.get_by_role("alert")).to_contain_text("has expired")
    await late.context.close()

    # a reset link works once; the second time it says so
    status, users = await api.call("GET", "/api/v1/users", key=tenant["api_key"]["key"])
    status, reset = await api.call("POST", f"/api/v1/users/{users['data'][0]['id']}/reset-link",
                                   key=tenant["api_key"]["key"])
    assert status == 201, reset
    other = await open_console(browser, site, f"#/reset/{reset['token']}")
    await other.get_by_label("New password", exact=True).fill("a brand new password")
    await other.get_by_label("Repeat the new password").fill("a brand new password")
    await other.get_by_role("button", name="Save the new password").click()
    await expect(other.get_by_role("status")).to_contain_text("Your password is changed")
    await other.goto(f"{site}/console/#/reset/{reset['token']}")
    await other.reload()
    await expect(other.get_by_role("alert")).to_contain_text("already been used")
    await other.context.close()
    await sign_in(page, site, email, "a brand new password")

    # oversized and unsupported knowledge files
    bot = await api.chatbot(tenant["api_key"]["key"])
    await page.goto(f"{site}/console/#/knowledge/{bot['id']}")
    await page.set_input_files("#document-files", files=[
        {"name": "huge.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4\n" + b"0" * (21 * 1024 * 1024)},
        {"name": "setup.exe", "mimeType": "application/octet-stream", "buffer": b"MZ\x90\x00"}])
    problems = page.get_by_role("alert")
    await expect(problems).to_contain_text("huge.pdf is 21.0 MB: files can be at most 20.0 MB")
    await expect(problems).to_contain_text("setup.exe: this kind of file is not supported")
    # an unsupported avatar file: the message, and the name typed stays
    await page.goto(f"{site}/console/#/avatars")
    await page.get_by_label("Name", exact=True).fill("My mascot")
    await page.set_input_files("#avatar-file", files=[{"name": "mascot.fbx", "mimeType": "application/octet-stream",
                                                        "buffer": b"Kaydara FBX Binary"}])
    await page.get_by_role("button", name="Upload", exact=True).click()
    await expect(page.get_by_role("alert")).to_contain_text("mascot.fbx is not a .glb file")
    await expect(page.get_by_label("Name", exact=True)).to_have_value("My mascot")
    # a broken .glb: the platform's own reason, and the name typed stays
    await page.set_input_files("#avatar-file", files=[{"name": "broken.glb", "mimeType": "model/gltf-binary",
                                                        "buffer": b"glTF not really"}])
    await page.get_by_role("button", name="Upload", exact=True).click()
    await expect(page.get_by_role("alert")).to_be_visible()
    await expect(page.get_by_label("Name", exact=True)).to_have_value("My mascot")
    assert page.errors == []


# --- every page: screenshots and accessibility -----------------------------------------------------

PAGES = ["chatbots", "chatbots/{bot}", "knowledge/{bot}", "avatars", "conversations?chatbot={bot}",
         "conversations/{bot}/{conversation}", "analytics", "settings"]


@pytest.mark.parametrize("size", ["desktop", "phone"])
async def test_every_page_at_desktop_and_phone_sizes_passes_axe(api, stack, site, browser, size):  # noqa: F811
    tag = uuid.uuid4().hex[:8]
    data = await _tenant_with_a_conversation(api, stack, tag)
    owner_token = await invite(api, data["key"], f"boss-{tag}@readers.example", "owner")
    viewport = DESKTOP if size == "desktop" else PHONE
    extra = {} if size == "desktop" else {"is_mobile": True, "has_touch": True, "device_scale_factor": 2}
    page = await open_console(browser, site, "#/login", viewport=viewport, **extra)
    await expect(page.get_by_role("heading", level=1, name="Sign in")).to_be_visible()
    await shoot(page, f"sign-in-{size}")
    await axe_check(page, f"sign-in ({size})")
    await page.goto(f"{site}/console/#/invite/{owner_token}")
    await expect(page.get_by_label("Choose a password")).to_be_visible()
    await shoot(page, f"accept-invite-{size}")
    await axe_check(page, f"accept invite ({size})")
    await accept_invite(page, site, owner_token)
    ids = {"bot": data["bot"]["id"], "conversation": data["conversation"]["conversation_id"]}
    for route in PAGES:
        await page.goto(f"{site}/console/#/{route.format(**ids)}")
        await expect(page.locator("#page-title")).to_be_visible()
        await expect(page.get_by_role("status").filter(has_text=re.compile("^Loading"))).to_have_count(0)
        if route == "analytics":
            await expect(page.locator(".chart canvas")).to_have_count(5)
        name = route.split("?")[0].replace("{bot}", "one").replace("{conversation}", "transcript").replace("/", "-")
        await shoot(page, f"{name}-{size}")
        await axe_check(page, f"{route} ({size})")
    if size == "phone":  # the menu opens and closes on a phone
        await page.get_by_role("button", name="Menu").click()
        await expect(page.get_by_role("link", name="Analytics")).to_be_visible()
        await shoot(page, "menu-phone")
    # a reset link page and the platform admin
    status, users = await api.call("GET", "/api/v1/users", key=data["key"])
    status, reset = await api.call("POST", f"/api/v1/users/{users['data'][0]['id']}/reset-link", key=data["key"])
    other = await open_console(browser, site, f"#/reset/{reset['token']}", viewport=viewport, **extra)
    await expect(other.get_by_label("New password", exact=True)).to_be_visible()
    await shoot(other, f"reset-password-{size}")
    await axe_check(other, f"reset password ({size})")
    await other.goto(f"{site}/console/#/admin/login")
    await other.get_by_label("Admin key").fill(stack.admin_key)
    await other.get_by_role("button", name="Sign in as admin").click()
    await expect(other.get_by_role("heading", level=1, name="Tenants")).to_be_visible()
    await expect(other.get_by_role("heading", level=2, name=f"Readers {tag}")).to_be_visible()
    await shoot(other, f"admin-tenants-{size}")
    await axe_check(other, f"admin ({size})")
    assert page.errors == [] and other.errors == []


async def test_the_platform_admin_creates_a_tenant_with_its_owner_invite_and_edits_limits(
        api, stack, site, browser):  # noqa: F811
    tag = uuid.uuid4().hex[:8]
    page = await open_console(browser, site, "#/admin/login")
    await page.get_by_label("Admin key").fill("ak_admin_wrong")
    await page.get_by_role("button", name="Sign in as admin").click()
    await expect(page.get_by_role("alert")).to_have_text("That admin key is not right.")
    await page.get_by_label("Admin key").fill(stack.admin_key)
    await page.get_by_role("button", name="Sign in as admin").click()
    await page.get_by_label("Tenant name").fill(f"Fresh {tag}")
    await page.get_by_label("Owner's email").fill(f"first-{tag}@fresh.example")
    await page.get_by_role("button", name="Create tenant").click()
    link = await page.get_by_label("Owner invitation link").input_value()
    assert "/console/#/invite/" in link
    card = page.locator(".tenants > li").filter(has_text=f"Fresh {tag}")
    await card.get_by_label("Chatbots").fill("3")
    await card.get_by_role("button", name="Save limits").click()
    await expect(card.get_by_role("status")).to_have_text("Limits saved.")
    await expect(card).to_contain_text("of 3 chatbots")
    # the owner follows the link
    owner = await open_console(browser, site)
    await owner.goto(link)
    await expect(owner.locator(".intro")).to_contain_text(f"Fresh {tag} as owner")
    assert page.errors == []
