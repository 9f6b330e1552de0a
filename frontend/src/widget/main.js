// The chat frame: conversation, SSE stream with reconnects, messages, citations, feedback,
// handoff and the avatar. Talks to the gateway on its own origin (/api/widget/v1/...).
import { createAvatar } from "./avatar.js";
import { alignToAudio } from "./lipsync.js";

const params = new URLSearchParams(window.location.search);

// The embed id, read by the same rule as the gateway's frame policy (widget.embed_id_of_query):
// any parameter that is embed_id to nginx (raw name, any case) or to the browser (decoded
// name) counts, and there must be exactly one, spelled plainly, with a plain value. Otherwise
// ?embed%5Fid=VICTIM&embed_id=OPEN would load one chatbot under the other's frame policy.
function embedIdOf(search) {
  const found = [];
  for (const part of search.replace(/^\?/, "").split("&")) {
    const eq = part.indexOf("=");
    const rawName = eq < 0 ? part : part.slice(0, eq);
    let name = rawName;
    try {
      name = decodeURIComponent(rawName.replace(/\+/g, " "));
    } catch {
      name = rawName;
    }
    if (rawName.toLowerCase() === "embed_id" || name.toLowerCase() === "embed_id") {
      found.push([rawName, eq < 0 ? "" : part.slice(eq + 1)]);
    }
  }
  if (found.length === 1 && found[0][0] === "embed_id" && /^[A-Za-z0-9_-]{1,64}$/.test(found[0][1])) {
    return found[0][1];
  }
  return null;
}
const embedId = embedIdOf(window.location.search) || "";
const API = `/api/widget/v1/${encodeURIComponent(embedId)}`;
const STORE = `avatarchat:${embedId}`;
const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)").matches;

const $ = (id) => document.getElementById(id);
const ui = {
  name: $("bot-name"), status: $("status"), messages: $("messages"), typing: $("typing"),
  suggestions: $("suggestions"), notice: $("notice"), form: $("composer"), input: $("input"),
  send: $("send"), stop: $("stop"), close: $("close"), avatar: $("avatar"), stage: $("stage"), app: $("app"),
  voice: $("voice"),
};

let config = null;
let session = null; // {conversation_id, visitor_id, visitor_token}
let stream = null;
let lastEventId = null;
let avatar = null;
let streamingReply = null;
const replies = new Map(); // reply_id -> {el, textEl, text, ended}
const THUMB = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M7 10v11H3V10zM7 10l4-8a3 3 0 0 1 3 3v4h6a2 2 0 0 1 2 2.3l-1.4 8A2 2 0 0 1 18.6 21H7"/></svg>';
const pendingAnimation = new Map(); // reply_id -> clip

// --- small helpers ----------------------------------------------------------------------------

function notice(text) {
  ui.notice.textContent = text || "";
  ui.notice.hidden = !text;
}

function scrollDown() {
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

function bubble(role, text) {
  const li = document.createElement("li");
  li.className = `message ${role}`;
  const label = document.createElement("span");
  label.className = "sr-only";
  label.textContent = role === "visitor" ? "You said: " : `${config ? config.name : "Assistant"} said: `;
  const body = document.createElement("div");
  body.className = "text";
  body.textContent = text;
  li.append(label, body);
  ui.messages.appendChild(li);
  scrollDown();
  return { el: li, textEl: body };
}

async function api(path, { method = "GET", body, auth = true } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth && session) headers.Authorization = `Bearer ${session.visitor_token}`;
  const response = await fetch(`${API}${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "omit",
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  return { status: response.status, ok: response.ok, data, retryAfter: Number(response.headers.get("Retry-After")) || 0 };
}

const SEND_PATIENCE_MS = 120000;

// A message is sent until the platform takes it: while it is briefly away (a restart, a
// database failover: 502/503/504 or no answer at all) the same client id is sent again, so
// the platform still counts and answers it once.
async function postMessage(text, clientId) {
  const giveUpAt = Date.now() + SEND_PATIENCE_MS;
  let delay = 1000;
  for (;;) {
    let result = null;
    try {
      result = await api(`/conversations/${session.conversation_id}/messages`, {
        method: "POST", body: { text, client_message_id: clientId },
      });
    } catch {
      result = null;
    }
    if (result && result.status === 401 && (await refreshToken())) continue;
    const away = result === null || [502, 503, 504].includes(result.status);
    if (!away || Date.now() > giveUpAt) return result;
    notice("Reconnecting… your message will be sent as soon as we're back.");
    await new Promise((resolve) => setTimeout(resolve, result && result.retryAfter ? result.retryAfter * 1000 : delay));
    delay = Math.min(delay * 2, 10000);
  }
}

function save() {
  try {
    sessionStorage.setItem(STORE, JSON.stringify({ ...session, lastEventId }));
  } catch {
    /* private mode: the conversation lasts as long as the page */
  }
}

function restore() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORE) || "null");
    if (saved && saved.conversation_id && saved.visitor_token) {
      lastEventId = saved.lastEventId || null;
      return saved;
    }
  } catch {
    /* nothing saved */
  }
  return null;
}

// --- conversation and token -------------------------------------------------------------------

async function ensureConversation() {
  if (session) return session;
  const previous = (() => {
    try {
      return localStorage.getItem(`${STORE}:visitor`);
    } catch {
      return null;
    }
  })();
  const result = await api("/conversations", { method: "POST", body: previous ? { visitor_id: previous } : {}, auth: false });
  if (!result.ok) throw new Error(`conversation ${result.status}`);
  session = result.data;
  try {
    localStorage.setItem(`${STORE}:visitor`, session.visitor_id);
  } catch {
    /* fine */
  }
  save();
  openStream();
  return session;
}

async function refreshToken() {
  const result = await api(`/conversations/${session.conversation_id}/token`, { method: "POST" });
  if (!result.ok) return false;
  session.visitor_token = result.data.visitor_token;
  save();
  return true;
}

// --- the stream -------------------------------------------------------------------------------

function openStream() {
  if (stream) stream.close();
  const url = new URL(`${API}/conversations/${session.conversation_id}/stream`, window.location.origin);
  url.searchParams.set("token", session.visitor_token);
  if (lastEventId) url.searchParams.set("last_event_id", lastEventId);
  stream = new EventSource(url.toString());
  const track = (handler) => (event) => {
    if (event.lastEventId) {
      lastEventId = event.lastEventId;
      save();
    }
    handler(JSON.parse(event.data));
  };
  stream.addEventListener("open", () => {
    ui.status.textContent = "Online";
    notice("");
  });
  window.__avatarchat = { ...(window.__avatarchat || {}), streams: ((window.__avatarchat || {}).streams || 0) + 1 };
  stream.addEventListener("message.start", track(onStart));
  stream.addEventListener("message.delta", track(onDelta));
  stream.addEventListener("avatar.animation", track(onAnimation));
  stream.addEventListener("avatar.visemes", (event) => onVisemes(JSON.parse(event.data)));
  stream.addEventListener("message.end", track(onEnd));
  stream.addEventListener("error", (event) => {
    if (event.data) {
      track(onReplyError)(event);
      return;
    }
    // the connection dropped: the browser reconnects by itself, sending Last-Event-ID;
    // if it gave up (the server was away, or the token expired), we reopen where we left off
    ui.status.textContent = "Reconnecting…";
    if (stream.readyState === EventSource.CLOSED) reconnect(1);
  });
}

async function reconnect(attempt) {
  const delay = Math.min(30000, 500 * 2 ** attempt);
  await new Promise((resolve) => setTimeout(resolve, delay));
  let result;
  try {
    result = await api(`/conversations/${session.conversation_id}/token`, { method: "POST" });
  } catch {
    result = { ok: false, status: 0 };
  }
  if (result.ok) {
    session.visitor_token = result.data.visitor_token;
    save();
    openStream();
  } else if (result.status === 401 || result.status === 403 || result.status === 404) {
    notice("This conversation has ended. Reload the page to start a new one.");
  } else {
    if (attempt >= 3) notice("We lost the connection. Trying again…");
    reconnect(attempt + 1); // the server is away: keep trying, more slowly
  }
}

function reply(replyId) {
  let entry = replies.get(replyId);
  if (!entry) {
    const { el, textEl } = bubble("assistant", "");
    entry = { el, textEl, text: "", ended: false, visemes: [], live: false };
    replies.set(replyId, entry);
  }
  return entry;
}

function setStreaming(replyId) {
  streamingReply = replyId;
  ui.stop.hidden = !replyId;
  ui.typing.hidden = true;
}

function onStart(data) {
  const entry = reply(data.reply_id);
  entry.live = true;
  entry.visemes = [];
  entry.text = ""; // a restarted reply starts over
  entry.textEl.textContent = "";
  entry.ended = false;
  ui.typing.hidden = false;
  ui.status.textContent = "Typing…";
}

function onDelta(data) {
  const entry = reply(data.reply_id);
  if (entry.ended) return;
  if (streamingReply !== data.reply_id) {
    setStreaming(data.reply_id);
    if (avatar) avatar.talk();
  }
  // offsets make reconnects exact: skip what we have, wait for message.end to fill a gap
  if (data.offset > entry.text.length) return;
  const fresh = data.text.slice(entry.text.length - data.offset);
  if (!fresh) return;
  entry.text += fresh;
  entry.textEl.textContent = entry.text;
  scrollDown();
}

function onVisemes(data) {
  // the mouth shapes of text just shown; none once the reply has ended or was stopped
  const entry = replies.get(data.reply_id);
  if (!entry || entry.ended) return;
  entry.visemes.push(...data.visemes); // kept for the voice, which comes after the text
  if (avatar && streamingReply === data.reply_id) avatar.speak(data.visemes);
}

// --- the voice (chatbots with voice "provider"): starts muted, browsers block autoplay -------

const SPEECH_TIMEOUT_MS = 15000;
const voice = { on: false, context: null, source: null, abort: null, startedAt: 0 };

function stopVoice() {
  if (voice.abort) voice.abort.abort();
  voice.abort = null;
  if (voice.source) {
    voice.source.onended = null;
    try {
      voice.source.stop();
    } catch {
      /* already stopped */
    }
  }
  voice.source = null;
  if (avatar) avatar.hush();
}

function setVoice(on) {
  voice.on = on;
  ui.voice.setAttribute("aria-pressed", String(on));
  ui.voice.setAttribute("aria-label", on ? "Turn the voice off" : "Turn the voice on");
  if (on && !voice.context) voice.context = new AudioContext(); // inside the click: allowed to play
  if (on && voice.context.state === "suspended") voice.context.resume();
  if (!on) stopVoice();
}

function voiceUnavailable(entry) {
  if (entry.el.querySelector(".voice-note")) return;
  const note = document.createElement("p");
  note.className = "voice-note";
  note.textContent = "Voice unavailable";
  entry.el.appendChild(note);
}

/** Fetch the finished reply's audio and play it, the mouth following the audio's clock. The
 * text is already on screen: a slow or failing voice only ever costs the voice. */
async function speak(replyId, entry) {
  stopVoice();
  const abort = new AbortController();
  voice.abort = abort;
  const timer = setTimeout(() => abort.abort(), SPEECH_TIMEOUT_MS);
  try {
    const response = await fetch(`${API}/conversations/${session.conversation_id}/replies/${replyId}/speech`, {
      headers: { Authorization: `Bearer ${session.visitor_token}` }, credentials: "omit", signal: abort.signal,
    });
    if (!response.ok) throw new Error(`speech ${response.status}`);
    const buffer = await voice.context.decodeAudioData(await response.arrayBuffer());
    clearTimeout(timer);
    if (voice.abort !== abort || !voice.on) return;
    voice.abort = null;
    const source = voice.context.createBufferSource();
    source.buffer = buffer;
    source.connect(voice.context.destination);
    source.onended = () => {
      if (voice.source === source) stopVoice();
    };
    voice.source = source;
    voice.startedAt = voice.context.currentTime + 0.05;
    source.start(voice.startedAt);
    if (avatar) avatar.follow(alignToAudio(entry.visemes, buffer), () => voice.context.currentTime - voice.startedAt);
  } catch (error) {
    clearTimeout(timer);
    if (voice.abort === abort) {
      voice.abort = null;
      voiceUnavailable(entry);
    }
  }
}

function onAnimation(data) {
  pendingAnimation.set(data.reply_id, data.clip || data.behaviour);
  const entry = replies.get(data.reply_id);
  if (entry && entry.ended && avatar) avatar.perform(pendingAnimation.get(data.reply_id));
}

function onEnd(data) {
  const entry = reply(data.reply_id);
  const first = !entry.ended;
  entry.ended = true;
  entry.text = data.text;
  entry.textEl.textContent = data.text; // the full text repairs anything missed
  if (first) {
    renderCitations(entry, data.citations || []);
    renderActions(entry, data.reply_id, data.intent);
  }
  if (streamingReply === data.reply_id || streamingReply === null) setStreaming(null);
  ui.status.textContent = "Online";
  ui.typing.hidden = true;
  if (first && entry.live && !data.replayed && voice.on && config && config.voice) speak(data.reply_id, entry);
  if (avatar) {
    if (!voice.source && !voice.abort) avatar.hush();
    const clip = pendingAnimation.get(data.reply_id);
    if (clip) avatar.perform(clip);
    else avatar.idle();
  }
  scrollDown();
}

function onReplyError(data) {
  // a reply that never started (the platform was away too long) is known by its message
  const entry = reply(data.reply_id || `message-${data.message_id}`);
  entry.ended = true;
  setStreaming(null);
  ui.typing.hidden = true;
  ui.status.textContent = "Online";
  if (data.code === "cancelled") {
    if (!entry.text) entry.textEl.textContent = "(stopped)";
  } else {
    entry.el.classList.add("error");
    entry.textEl.textContent = data.message || "Sorry, something went wrong. Please try again.";
  }
  if (avatar) {
    avatar.hush();
    avatar.idle();
  }
}

function renderCitations(entry, citations) {
  if (!citations.length) return;
  const list = document.createElement("ul");
  list.className = "citations";
  list.setAttribute("aria-label", "Sources");
  const label = document.createElement("li");
  label.className = "citation-label";
  label.textContent = "Sources";
  list.appendChild(label);
  citations.forEach((citation, index) => {
    const item = document.createElement("li");
    const target = citation.url && /^https?:\/\//.test(citation.url) ? document.createElement("a") : document.createElement("span");
    if (target.tagName === "A") {
      target.href = citation.url;
      target.target = "_blank";
      target.rel = "noopener noreferrer";
    }
    target.textContent = `[${index + 1}] ${citation.title || "Source"}`;
    target.title = citation.snippet || "";
    item.appendChild(target);
    list.appendChild(item);
  });
  entry.el.appendChild(list);
}

function renderActions(entry, replyId, intent) {
  const row = document.createElement("div");
  row.className = "actions";
  for (const [rating, label] of [["up", "Helpful"], ["down", "Not helpful"]]) {
    const button = document.createElement("button");
    button.type = "button";
    button.innerHTML = THUMB;
    if (rating === "down") button.classList.add("down");
    button.setAttribute("aria-label", label);
    button.setAttribute("aria-pressed", "false");
    button.dataset.rating = rating;
    button.addEventListener("click", async () => {
      row.querySelectorAll("button[data-rating]").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
      await api(`/conversations/${session.conversation_id}/replies/${replyId}/feedback`, {
        method: "POST", body: { rating },
      }).catch(() => null);
    });
    row.appendChild(button);
  }
  if (intent === "asks_for_human") {
    const handoff = document.createElement("button");
    handoff.type = "button";
    handoff.className = "handoff";
    handoff.textContent = "Talk to a human";
    handoff.addEventListener("click", async () => {
      // no AI turn and no message of the quota: the conversation is flagged for the team
      handoff.disabled = true;
      const result = await api(`/conversations/${session.conversation_id}/handoff`, { method: "POST" })
        .catch(() => null);
      if (result && result.ok) {
        handoff.textContent = "A person will follow up";
      } else {
        handoff.disabled = false;
        notice("We couldn't reach the team just now. Please try again.");
      }
    });
    row.appendChild(handoff);
  }
  entry.el.appendChild(row);
}

// --- sending ----------------------------------------------------------------------------------

async function send(text) {
  text = text.trim();
  if (!text) return;
  stopVoice();
  ui.suggestions.hidden = true;
  bubble("visitor", text);
  ui.typing.hidden = false;
  ui.send.disabled = true;
  try {
    await ensureConversation();
    const clientId = (crypto.randomUUID && crypto.randomUUID()) || `${Date.now()}-${Math.random()}`;
    const result = await postMessage(text, clientId);
    if (result === null) throw new Error("unreachable");
    if (!result.ok) {
      ui.typing.hidden = true;
      const code = result.data && result.data.error && result.data.error.code;
      notice(
        result.status === 429 ? "You're sending messages quickly. Please wait a moment."
          : code === "quota_exceeded" ? "This chat can't take more messages right now."
          : result.status === 422 ? "That message couldn't be sent. Try a shorter one."
          : "Your message didn't go through. Please try again.");
      return;
    }
    notice("");
  } catch {
    ui.typing.hidden = true;
    notice("We can't reach the chat right now. Please check your connection and try again.");
  } finally {
    ui.send.disabled = false;
  }
}

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.input.value;
  ui.input.value = "";
  send(text);
});
ui.input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    ui.form.requestSubmit();
  }
});
// the box is disabled in the page until this script can send what is typed in it
ui.input.disabled = false;
ui.stop.addEventListener("click", async () => {
  if (!streamingReply || !session) return;
  stopVoice();
  await api(`/conversations/${session.conversation_id}/replies/${streamingReply}/cancel`, { method: "POST" })
    .catch(() => null);
});
ui.close.addEventListener("click", () => {
  stopVoice();
  window.parent.postMessage({ type: "avatarchat:close" }, "*");
});
ui.voice.addEventListener("click", () => setVoice(!voice.on));
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") window.parent.postMessage({ type: "avatarchat:close" }, "*");
});
window.addEventListener("message", (event) => {
  if (event.source !== window.parent) return;
  const message = event.data || {};
  if (message.type === "avatarchat:visibility" && !message.open) stopVoice();
  if (message.type === "avatarchat:visibility" && avatar) avatar.setVisible(Boolean(message.open));
  if (message.type === "avatarchat:focus") ui.input.focus();
  // The console's live preview frames this page on the platform's own origin and sends the
  // fields being edited before they are saved. Only our own origin may do that: a tenant's
  // site (another origin) can never restyle or rename the chat.
  if (message.type === "avatarchat:preview" && event.origin === window.location.origin && config) {
    applyPreview(message.config || {});
  }
});

// --- start ------------------------------------------------------------------------------------

function applyTheme(placement) {
  const root = document.documentElement.style;
  root.setProperty("--primary", placement.primary_colour);
  root.setProperty("--background", placement.background_colour);
  root.setProperty("--text", placement.text_colour);
}

function renderSuggestions(questions) {
  ui.suggestions.replaceChildren();
  for (const question of questions || []) {
    const chip = document.createElement("button");
    chip.type = "button";
    chip.textContent = question;
    chip.addEventListener("click", () => send(question));
    ui.suggestions.appendChild(chip);
  }
}

function setLayout(layout) {
  ui.app.dataset.layout = layout;
  ui.stage.hidden = layout !== "stage";
  if (layout === "stage") ui.stage.appendChild(ui.avatar); // out of the header, large above the messages
  else if (ui.avatar.parentElement !== ui.name.closest("header")) ui.name.closest("header").prepend(ui.avatar);
}

/** Unsaved fields from the console's editor: what the chat would look like with them. */
function applyPreview(preview) {
  if (typeof preview.name === "string") ui.name.textContent = preview.name || config.name;
  if (preview.placement) applyTheme({ ...config.placement, ...preview.placement });
  if (typeof preview.welcome_message === "string" || typeof preview.greeting === "string") {
    const text = preview.welcome_message || preview.greeting || "";
    let greeting = ui.messages.querySelector(".message.greeting .text");
    if (!greeting && text) {
      const created = bubble("assistant", text);
      created.el.classList.add("greeting");
      ui.messages.prepend(created.el);
      greeting = created.textEl;
    }
    if (greeting) greeting.textContent = text;
  }
  if (Array.isArray(preview.suggested_questions)) renderSuggestions(preview.suggested_questions);
  if (preview.avatar_layout) setLayout(preview.avatar_layout);
}

async function loadTranscript() {
  const result = await api(`/conversations/${session.conversation_id}/messages`);
  if (!result.ok) return;
  for (const message of result.data.data) {
    if (message.role === "visitor") bubble("visitor", message.text);
    else if (message.status === "completed") onEnd({ ...message, reply_id: message.id });
    else if (message.status === "failed") onReplyError({ reply_id: message.id, code: message.error_code, message: message.error_message });
  }
  const last = result.data.data.at(-1);
  if (last) lastEventId = `${last.seq}-end`;
}

async function start() {
  if (!embedId) {
    ui.name.textContent = "Chat unavailable";
    ui.form.hidden = true;
    notice("This chat link is not valid.");
    window.parent.postMessage({ type: "avatarchat:ready" }, "*");
    return;
  }
  const result = await api("/config", { auth: false }).catch(() => ({ ok: false, status: 0 }));
  if (!result.ok) {
    ui.name.textContent = "Chat unavailable";
    ui.form.hidden = true;
    notice(result.status === 403 ? "This chat isn't available on this website."
      : result.status === 404 ? "This chat isn't available right now." : "We can't reach the chat right now.");
    window.parent.postMessage({ type: "avatarchat:ready" }, "*");
    return;
  }
  config = result.data;
  document.title = `Chat with ${config.name}`;
  ui.name.textContent = config.name;
  applyTheme(config.placement);
  const greeting = params.get("greeting") || config.welcome_message || config.greeting;
  if (greeting) bubble("assistant", greeting).el.classList.add("greeting");
  renderSuggestions(config.suggested_questions);
  session = restore();
  if (session) {
    const ok = await loadTranscript().then(() => true).catch(() => false);
    if (ok) openStream();
    else session = null;
  }
  ui.voice.hidden = !config.voice;
  const layout = config.avatar_layout || "stage";
  setLayout(layout);
  if (layout !== "hidden" || params.get("preview") === "1") { // a preview may switch the layout live
    createAvatar(ui.avatar, { modelUrl: config.avatar_model_url, animationMap: config.animation_map, reducedMotion })
      .then((created) => {
        avatar = created;
        window.__avatarchat = { ...(window.__avatarchat || {}), avatar: created.kind, clips: created.clips,
          lipsync: created.lipsync,
          // the voice's clock and the word the mouth is on, for tests
          voice: () => ({ playing: Boolean(voice.source), time: voice.source ? voice.context.currentTime - voice.startedAt : null,
            offset: created.mouthOffset, frame: created.mouthFrame }) };
      });
  }
  window.parent.postMessage({ type: "avatarchat:ready" }, "*");
}

start();
