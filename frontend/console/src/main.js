// The tenant console and the platform admin: a small Preact + htm app with hash routes
// (#/chatbots, #/invite/<token>, #/reset/<token>, #/admin ...), the links the API hands out.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { whenSignedOut, post } from "./api.js";
import { SessionContext, adopt, loadSession, logout } from "./session.js";
import { html, ErrorMessage, Loading, go } from "./ui.js";
import { SignIn, AcceptInvite, ResetPassword, AdminSignIn } from "./pages/auth.js";
import { Chatbots, ChatbotEditor } from "./pages/chatbots.js";
import { Knowledge } from "./pages/knowledge.js";
import { Avatars } from "./pages/avatars.js";
import { Conversations, Transcript } from "./pages/conversations.js";
import { Analytics } from "./pages/analytics.js";
import { Settings } from "./pages/settings.js";
import { Admin } from "./pages/admin.js";

function useHash() {
  const [hash, setHash] = useState(window.location.hash || "#/");
  useEffect(() => {
    const onChange = () => setHash(window.location.hash || "#/");
    window.addEventListener("hashchange", onChange);
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  return hash;
}

/** "#/chatbots/abc?x=1" -> {parts: ["chatbots", "abc"], query: URLSearchParams} */
function parse(hash) {
  const [path, query = ""] = hash.replace(/^#\/?/, "").split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query) };
}

const NAV = [
  ["chatbots", "Chatbots"],
  ["knowledge", "Knowledge"],
  ["avatars", "Avatars"],
  ["conversations", "Conversations"],
  ["analytics", "Analytics"],
  ["settings", "Settings"],
];

function TenantSwitcher({ session, onSession }) {
  const [error, setError] = useState(null);
  if (!session.tenants || session.tenants.length < 2) {
    return html`<span class="tenant-name">${session.tenant.name} <span class="role">(${session.tenant.role})</span></span>`;
  }
  const change = async (event) => {
    setError(null);
    try {
      onSession(adopt(await post("/api/v1/auth/switch-tenant", { tenant_id: event.target.value })));
      go("#/chatbots");
    } catch (err) {
      setError(err);
    }
  };
  return html`<span class="switcher">
    <label for="tenant-switcher" class="sr-only">Workspace</label>
    <select id="tenant-switcher" value=${session.tenant.id} onChange=${change}>
      ${session.tenants.map((t) => html`<option value=${t.id}>${t.name} (${t.role})</option>`)}
    </select>
    <${ErrorMessage} error=${error} /></span>`;
}

function Shell({ session, onSession, section, children }) {
  const [menuOpen, setMenuOpen] = useState(false);
  const signOut = async () => {
    await logout().catch(() => null);
    onSession(null);
    go("#/login");
  };
  const nav = session.admin ? [["admin", "Tenants"]] : NAV;
  return html`<div class="shell">
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); document.getElementById("main").focus(); }}>Skip to content</a>
    <header class="topbar">
      <span class="brand">avatarchat <span class="brand-sub">${session.admin ? "platform admin" : "console"}</span></span>
      <button type="button" class="menu-toggle secondary" aria-expanded=${String(menuOpen)} aria-controls="main-nav"
        onClick=${() => setMenuOpen(!menuOpen)}>Menu</button>
      <div class="who">
        ${session.tenant ? html`<${TenantSwitcher} session=${session} onSession=${onSession} />` : null}
        <span class="user">${session.user ? session.user.email : "Platform admin"}</span>
        <button type="button" class="secondary" onClick=${signOut}>Sign out</button>
      </div>
    </header>
    <nav id="main-nav" class=${`sidenav ${menuOpen ? "open" : ""}`} aria-label="Console">
      <ul>
        ${nav.map(([key, label]) => html`<li><a href=${`#/${key}`} aria-current=${section === key ? "page" : undefined}
          onClick=${() => setMenuOpen(false)}>${label}</a></li>`)}
      </ul>
    </nav>
    <main id="main" tabindex="-1">${children}</main>
  </div>`;
}

function NotFound() {
  return html`<section class="page"><h1 id="page-title">Page not found</h1>
    <p>There is nothing at this address. <a href="#/chatbots">Go to your chatbots</a>.</p></section>`;
}

function Routes({ session, route }) {
  const [section, id, sub] = route.parts;
  if (session.admin) return html`<${Admin} />`;
  switch (section) {
    case "chatbots":
      return id ? html`<${ChatbotEditor} id=${id} />` : html`<${Chatbots} />`;
    case "knowledge":
      return html`<${Knowledge} chatbotId=${id} />`;
    case "avatars":
      return html`<${Avatars} />`;
    case "conversations":
      return id && sub ? html`<${Transcript} chatbotId=${id} conversationId=${sub} />` : html`<${Conversations} query=${route.query} />`;
    case "analytics":
      return html`<${Analytics} />`;
    case "settings":
      return html`<${Settings} />`;
    default:
      return html`<${NotFound} />`;
  }
}

function App() {
  useHash(); // re-render on hashchange...
  // ...but read the address itself: a redirect decided on a stale copy would overwrite a
  // link the person (or a test) just opened, e.g. #/invite/<token> while the session loads
  const hash = window.location.hash || "#/";
  const route = parse(hash);
  const [session, setSession] = useState(undefined); // undefined: still asking
  const [bootError, setBootError] = useState(null);

  useEffect(() => {
    whenSignedOut(() => setSession(null));
    loadSession().then(setSession, setBootError);
  }, []);

  // Move focus to the new page's heading, so screen readers announce it.
  useEffect(() => {
    const heading = document.getElementById("page-title");
    if (heading && document.activeElement === document.body) heading.focus({ preventScroll: true });
  }, [hash, session]);

  const section = route.parts[0] || "";
  if (section === "invite") return html`<${AcceptInvite} token=${route.parts[1] || ""} onSignedIn=${setSession} />`;
  if (section === "reset") return html`<${ResetPassword} token=${route.parts[1] || ""} />`;
  if (bootError) {
    return html`<main id="main" class="auth"><div class="auth-card"><h1>The console can't start</h1>
      <${ErrorMessage} error=${bootError} /><p><button type="button" onClick=${() => window.location.reload()}>Try again</button></p></div></main>`;
  }
  if (session === undefined) return html`<${Loading} what="Loading the console…" />`;
  if (section === "admin" && route.parts[1] === "login") {
    if (session && session.admin) go("#/admin");
    return html`<${AdminSignIn} onSignedIn=${setSession} />`;
  }
  if (!session) {
    if (section === "admin") return html`<${AdminSignIn} onSignedIn=${setSession} />`;
    if (section !== "login") go("#/login");
    return html`<${SignIn} onSignedIn=${(info) => { setSession(info); go(info.admin ? "#/admin" : "#/chatbots"); }} />`;
  }
  if (section === "login" || section === "") {
    go(session.admin ? "#/admin" : "#/chatbots");
    return null;
  }
  if (!session.admin && !session.tenant) {
    return html`<${SessionContext.Provider} value=${session}><${Shell} session=${session} onSession=${setSession} section="">
      <section class="page"><h1 id="page-title">No workspace yet</h1>
      <p>Your account does not belong to any workspace. Ask an owner for an invitation.</p></section></${Shell}></${SessionContext.Provider}>`;
  }
  return html`<${SessionContext.Provider} value=${session}>
    <${Shell} session=${session} onSession=${setSession} section=${session.admin ? "admin" : section}>
      <${Routes} session=${session} route=${route} key=${`${session.tenant ? session.tenant.id : "admin"}`} />
    </${Shell}>
  </${SessionContext.Provider}>`;
}

const root = document.getElementById("root");
root.textContent = ""; // the "Loading…" line is static HTML, not Preact's to diff
render(html`<${App} />`, root);
