/*
 * avatarchat embed: <script src="https://<host>/embed.js" data-embed-id="..." defer></script>
 *
 * Isolation, both ways:
 * - The launcher lives in a Shadow DOM (host-page CSS can't reach in, ours can't leak out;
 *   `all: initial` on the host element stops inherited styles too).
 * - The chat itself runs in an iframe served from our origin: its scripts and styles are in
 *   another document entirely, and the page's scripts can't read the conversation. The frame's
 *   `frame-ancestors` policy follows the chatbot's allowed origins.
 *
 * data-* overrides: data-position (bottom-right|bottom-left), data-primary-colour,
 * data-background-colour, data-text-colour, data-launcher-text, data-greeting, data-open.
 */
(function () {
  const script = document.currentScript;
  if (!script) return;
  const embedId = script.dataset.embedId;
  if (!embedId) {
    console.warn("avatarchat: add data-embed-id to the script tag");
    return;
  }
  const registry = (window.__avatarchatEmbeds = window.__avatarchatEmbeds || {});
  if (registry[embedId]) return; // pasted twice: one widget is enough
  registry[embedId] = true;

  const base = new URL(script.src, window.location.href).origin;
  const data = script.dataset;
  const COLOUR = /^#[0-9a-fA-F]{6}$/;

  function pick(value, fallback, valid) {
    return value !== undefined && value !== "" && (!valid || valid(value)) ? value : fallback;
  }

  function settings(config) {
    const p = (config && config.placement) || {};
    return {
      position: pick(data.position, p.position || "bottom-right", (v) => v === "bottom-left" || v === "bottom-right"),
      primary: pick(data.primaryColour, p.primary_colour || "#4f46e5", (v) => COLOUR.test(v)),
      background: pick(data.backgroundColour, p.background_colour || "#ffffff", (v) => COLOUR.test(v)),
      text: pick(data.textColour, p.text_colour || "#111827", (v) => COLOUR.test(v)),
      launcherText: pick(data.launcherText, p.launcher_text || "Chat with us"),
      open: data.open !== undefined ? data.open === "true" : Boolean(p.open_on_load),
      name: (config && config.name) || "Chat",
    };
  }

  const CSS = `
    :host { all: initial; }
    * { box-sizing: border-box; }
    .root { position: fixed; z-index: 2147483000; bottom: 20px; font: 15px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
    .root.bottom-right { right: 20px; }
    .root.bottom-left { left: 20px; }
    .launcher { display: flex; align-items: center; gap: 8px; border: 0; border-radius: 999px; padding: 12px 18px 12px 14px;
      background: var(--primary); color: #fff; font: 600 15px/1 system-ui, sans-serif; cursor: pointer;
      box-shadow: 0 6px 20px rgba(0,0,0,.25); transition: transform .15s ease; }
    .launcher:hover { transform: translateY(-2px); }
    .launcher:focus-visible { outline: 3px solid var(--primary); outline-offset: 3px; }
    .launcher svg { width: 22px; height: 22px; flex: none; }
    .panel { position: absolute; bottom: 64px; width: min(400px, calc(100vw - 40px)); height: min(640px, calc(100vh - 110px));
      border-radius: 16px; overflow: hidden; background: var(--background); box-shadow: 0 16px 48px rgba(0,0,0,.3); }
    .bottom-right .panel { right: 0; }
    .bottom-left .panel { left: 0; }
    .panel[hidden] { display: none; }
    iframe { border: 0; width: 100%; height: 100%; display: block; background: var(--background); }
    .notice { padding: 24px; color: var(--text); font-size: 14px; }
    @media (max-width: 480px) {
      .panel { position: fixed; inset: 0; width: 100vw; height: 100%; border-radius: 0; bottom: 0; }
      .root.open .launcher { display: none; }
    }
    @media (prefers-reduced-motion: reduce) { .launcher { transition: none; } }
  `;
  const ICON = '<svg viewBox="0 0 24 24" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2" ' +
    'stroke-linecap="round" stroke-linejoin="round"><path d="M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z"/></svg>';

  function mount(config, problem) {
    const s = settings(config);
    const host = document.createElement("div");
    host.id = "avatarchat-widget";
    host.setAttribute("style", "all: initial !important;");
    const shadow = host.attachShadow({ mode: "open" });
    const style = document.createElement("style");
    style.textContent = CSS;
    const root = document.createElement("div");
    root.className = `root ${s.position}`;
    root.style.setProperty("--primary", s.primary);
    root.style.setProperty("--background", s.background);
    root.style.setProperty("--text", s.text);

    const launcher = document.createElement("button");
    launcher.type = "button";
    launcher.className = "launcher";
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-controls", "avatarchat-panel");
    launcher.setAttribute("aria-label", `Open chat with ${s.name}`);
    launcher.innerHTML = ICON;
    const label = document.createElement("span");
    label.textContent = s.launcherText;
    launcher.appendChild(label);

    const panel = document.createElement("div");
    panel.className = "panel";
    panel.id = "avatarchat-panel";
    panel.hidden = true;
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", `Chat with ${s.name}`);

    let frame = null;
    let frameReady = false;
    let focusWhenReady = false;
    function ensureFrame() {
      if (frame || problem) return;
      const url = new URL("/widget/", base);
      url.searchParams.set("embed_id", embedId);
      url.searchParams.set("host", window.location.origin);
      if (data.greeting) url.searchParams.set("greeting", data.greeting);
      frame = document.createElement("iframe");
      frame.src = url.toString();
      frame.title = `Chat with ${s.name}`;
      frame.setAttribute("allow", "clipboard-write");
      panel.appendChild(frame);
    }
    if (problem) {
      const notice = document.createElement("p");
      notice.className = "notice";
      notice.setAttribute("role", "status");
      notice.textContent = problem;
      panel.appendChild(notice);
    }

    function post(message) {
      if (frame && frame.contentWindow) frame.contentWindow.postMessage(message, base);
    }
    function setOpen(open, { focus = true } = {}) {
      if (open) ensureFrame();
      panel.hidden = !open;
      root.classList.toggle("open", open);
      launcher.setAttribute("aria-expanded", String(open));
      launcher.setAttribute("aria-label", `${open ? "Close" : "Open"} chat with ${s.name}`);
      post({ type: "avatarchat:visibility", open });
      if (open && focus && frame) {
        focusWhenReady = !frameReady; // a frame still loading takes the focus when it is ready
        frame.focus();
        post({ type: "avatarchat:focus" });
      } else if (!open && focus) {
        launcher.focus();
      }
    }
    launcher.addEventListener("click", () => setOpen(panel.hidden));
    panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") setOpen(false);
    });
    window.addEventListener("message", (event) => {
      if (!frame || event.source !== frame.contentWindow || event.origin !== base) return;
      const message = event.data || {};
      if (message.type === "avatarchat:close") setOpen(false);
      if (message.type === "avatarchat:ready") {
        frameReady = true;
        post({ type: "avatarchat:visibility", open: !panel.hidden });
        if (focusWhenReady && !panel.hidden) {
          focusWhenReady = false;
          frame.focus();
          post({ type: "avatarchat:focus" });
        }
      }
    });

    root.append(panel, launcher);
    shadow.append(style, root);
    document.body.appendChild(host);
    if (s.open && !problem) setOpen(true, { focus: false });
  }

  function start() {
    fetch(`${base}/api/widget/v1/${encodeURIComponent(embedId)}/config`, { credentials: "omit" })
      .then(async (response) => {
        if (response.ok) return mount(await response.json(), null);
        // say so quietly: the page stays intact, the panel explains
        const quiet = response.status === 403
          ? "This chat isn't available on this website."
          : "This chat isn't available right now.";
        console.warn(`avatarchat: ${response.status} for embed id ${embedId}`);
        mount(null, quiet);
      })
      .catch(() => mount(null, "This chat isn't available right now."));
  }

  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
