// Chatbots: the list, creating one, and the editor with the real widget as a live preview.
import { useEffect, useRef, useState } from "preact/hooks";
import { get, post, patch, del } from "../api.js";
import { can, useSession } from "../session.js";
import { html, Page, Loaded, Empty, ErrorMessage, Notice, Field, CopyBox, useAction, useLoad, fmtDate, go } from "../ui.js";

export function Chatbots() {
  const session = useSession();
  const list = useLoad(() => get("/api/v1/chatbots?limit=100"), []);
  const [name, setName] = useState("");
  const { run, error, busy } = useAction();
  const create = run(async () => {
    const bot = await post("/api/v1/chatbots", { name });
    go(`#/chatbots/${bot.id}`);
  });
  return html`<${Page} title="Chatbots">
    ${can(session, "edit") ? html`<form class="inline-form card" onSubmit=${create} aria-label="Create a chatbot">
      <${Field} label="New chatbot's name" value=${name} onInput=${setName} required maxlength="200" />
      <button type="submit" disabled=${busy}>Create chatbot</button>
      <${ErrorMessage} error=${error} />
    </form>` : null}
    <${Loaded} state=${list} what="Loading your chatbots…">${(data) => data.data.length === 0
      ? html`<${Empty} title="No chatbots yet">${can(session, "edit") ? "Give your first chatbot a name above to create it." : "An owner or editor can create one."}</${Empty}>`
      : html`<div class="table-wrap"><table>
          <caption class="sr-only">Your chatbots</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">Embed id</th><th scope="col">Provider</th><th scope="col">Updated</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>${data.data.map((bot) => html`<tr>
            <th scope="row"><a href=${`#/chatbots/${bot.id}`}>${bot.name}</a></th>
            <td><code>${bot.embed_id}</code></td>
            <td>${bot.ai.provider}</td>
            <td>${fmtDate(bot.updated_at)}</td>
            <td class="row-actions"><a href=${`#/knowledge/${bot.id}`}>Knowledge</a> <a href=${`#/conversations?chatbot=${bot.id}`}>Conversations</a></td>
          </tr>`)}</tbody></table></div>`}
    </${Loaded}>
  </${Page}>`;
}

const lines = (text) => text.split("\n").map((s) => s.trim()).filter(Boolean);

function formOf(bot) {
  return {
    name: bot.name,
    persona: { ...bot.persona },
    placement: { ...bot.placement },
    welcome_message: bot.welcome_message,
    suggested: bot.suggested_questions.join("\n"),
    origins: bot.allowed_origins.join("\n"),
    avatar_layout: bot.avatar_layout,
  };
}

function bodyOf(form) {
  return {
    name: form.name,
    persona: form.persona,
    placement: form.placement,
    welcome_message: form.welcome_message,
    suggested_questions: lines(form.suggested),
    allowed_origins: lines(form.origins),
    avatar_layout: form.avatar_layout,
  };
}

/** The real chat frame, fed the unsaved fields by postMessage (same origin only). */
function Preview({ bot, form, version }) {
  const frame = useRef(null);
  const overrides = {
    name: form.name, placement: form.placement, welcome_message: form.welcome_message,
    greeting: form.persona.greeting, suggested_questions: lines(form.suggested), avatar_layout: form.avatar_layout,
  };
  const send = () => {
    const target = frame.current && frame.current.contentWindow;
    if (target) target.postMessage({ type: "avatarchat:preview", config: overrides }, window.location.origin);
  };
  useEffect(send, [JSON.stringify(overrides)]);
  useEffect(() => {
    const onMessage = (event) => {
      if (event.origin === window.location.origin && frame.current && event.source === frame.current.contentWindow
          && event.data && event.data.type === "avatarchat:ready") send();
    };
    window.addEventListener("message", onMessage);
    return () => window.removeEventListener("message", onMessage);
  });
  const position = form.placement.position === "bottom-left" ? "left" : "right";
  return html`<aside class="preview" aria-label="Live preview">
    <h2>Live preview</h2>
    <p class="hint">The real widget with your avatar. Changes show as you type; chat answers use the saved settings and knowledge.</p>
    <div class="preview-frame">
      <iframe ref=${frame} title="Chat preview" src=${`/widget/?embed_id=${encodeURIComponent(bot.embed_id)}&preview=1&v=${version}`}
        allow="autoplay"></iframe>
    </div>
    <div class=${`launcher-preview ${position}`}>
      <span class="launcher-chip" style=${{ background: form.placement.primary_colour }}>${form.placement.launcher_text || "Chat"}</span>
      <span class="hint">Launcher on the ${position}${form.placement.open_on_load ? ", opens on load" : ""}</span>
    </div>
  </aside>`;
}

function Snippet({ botId }) {
  const snippet = useLoad(() => get(`/api/v1/chatbots/${botId}/embed-snippet`), [botId]);
  return html`<section class="card" aria-labelledby="embed-title">
    <h2 id="embed-title">Embed on your site</h2>
    <${Loaded} state=${snippet}>${(data) => html`<p class="hint">Paste this before the closing ${"</body>"} tag of your pages.</p>
      <${CopyBox} label="Embed snippet" text=${data.snippet} multiline />`}</${Loaded}>
  </section>`;
}

export function ChatbotEditor({ id }) {
  const session = useSession();
  const editable = can(session, "edit");
  const loaded = useLoad(() => get(`/api/v1/chatbots/${id}`), [id]);
  const [form, setForm] = useState(null);
  const { run, error, done: saved, busy } = useAction();
  const [version, setVersion] = useState(0);
  useEffect(() => {
    if (loaded.data && !form) setForm(formOf(loaded.data));
  }, [loaded.data]);
  if (loaded.error) {
    return html`<${Page} title="Chatbot"><${ErrorMessage} error=${loaded.error.status === 404 ? "There is no such chatbot in this workspace." : loaded.error} />
      <p><a href="#/chatbots">Back to the chatbots</a></p></${Page}>`;
  }
  if (!form) return html`<${Page} title="Chatbot"><p role="status">Loading…</p></${Page}>`;
  const bot = loaded.data;
  const set = (key) => (value) => setForm({ ...form, [key]: value });
  const setIn = (group, key) => (value) => setForm({ ...form, [group]: { ...form[group], [key]: value } });
  const save = run(async () => {
    await patch(`/api/v1/chatbots/${id}`, bodyOf(form));
    setVersion(version + 1);
    loaded.reload();
    return "Saved. The preview now chats with these settings.";
  });
  const remove = run(async () => {
    if (!window.confirm(`Delete ${bot.name}? Its knowledge and conversations go with it.`)) return;
    await del(`/api/v1/chatbots/${id}`);
    go("#/chatbots");
  });
  return html`<${Page} title=${bot.name} actions=${html`<a class="button secondary" href=${`#/knowledge/${id}`}>Knowledge</a>
      <a class="button secondary" href="#/avatars">Avatar</a>`}>
    <div class="editor">
      <form class="card editor-form" onSubmit=${save} aria-label="Chatbot settings">
        ${editable ? null : html`<${Notice}>You can look at this chatbot; your role (viewer) cannot change it.</${Notice}>`}
        <fieldset disabled=${!editable}>
          <legend>Basics</legend>
          <${Field} label="Name" value=${form.name} onInput=${set("name")} required maxlength="200" />
          <${Field} label="Welcome message" value=${form.welcome_message} onInput=${set("welcome_message")} textarea rows="2" maxlength="1000"
            hint="Shown when the chat opens. Empty: the persona's greeting." />
          <${Field} label="Suggested questions" value=${form.suggested} onInput=${set("suggested")} textarea rows="3"
            hint="One per line, up to 10." />
          <${Field} label="Avatar layout" value=${form.avatar_layout} onInput=${set("avatar_layout")}>
            <option value="stage">Stage (large, above the messages)</option>
            <option value="compact">Compact (in the header)</option>
            <option value="hidden">Hidden</option>
          </${Field}>
        </fieldset>
        <fieldset disabled=${!editable}>
          <legend>Persona</legend>
          <${Field} label="Instructions (system prompt)" value=${form.persona.system_prompt} onInput=${setIn("persona", "system_prompt")} textarea rows="4" maxlength="8000" />
          <${Field} label="Tone" value=${form.persona.tone} onInput=${setIn("persona", "tone")} maxlength="200" />
          <${Field} label="Greeting" value=${form.persona.greeting} onInput=${setIn("persona", "greeting")} maxlength="1000" />
          <${Field} label="Answer when the knowledge has none" value=${form.persona.fallback_answer} onInput=${setIn("persona", "fallback_answer")} textarea rows="2" maxlength="1000" />
        </fieldset>
        <fieldset disabled=${!editable}>
          <legend>Placement and colours</legend>
          <${Field} label="Position" value=${form.placement.position} onInput=${setIn("placement", "position")}>
            <option value="bottom-right">Bottom right</option>
            <option value="bottom-left">Bottom left</option>
          </${Field}>
          <div class="colours">
            <${Field} label="Primary colour" type="color" value=${form.placement.primary_colour} onInput=${setIn("placement", "primary_colour")} />
            <${Field} label="Background colour" type="color" value=${form.placement.background_colour} onInput=${setIn("placement", "background_colour")} />
            <${Field} label="Text colour" type="color" value=${form.placement.text_colour} onInput=${setIn("placement", "text_colour")} />
          </div>
          <${Field} label="Launcher text" value=${form.placement.launcher_text} onInput=${setIn("placement", "launcher_text")} maxlength="60" />
          <${Field} label="Open the chat when the page loads" type="checkbox" value=${form.placement.open_on_load} onInput=${setIn("placement", "open_on_load")} />
        </fieldset>
        <fieldset disabled=${!editable}>
          <legend>Where it may run</legend>
          <${Field} label="Allowed origins" value=${form.origins} onInput=${set("origins")} textarea rows="3"
            hint="One per line, like https://shop.example. Empty: any website may embed it." />
        </fieldset>
        <${ErrorMessage} error=${error} />
        <${Notice}>${saved}</${Notice}>
        ${editable ? html`<div class="form-actions">
          <button type="submit" disabled=${busy}>${busy ? "Saving…" : "Save changes"}</button>
          <button type="button" class="danger" onClick=${remove}>Delete chatbot</button>
        </div>` : null}
      </form>
      <${Preview} bot=${bot} form=${form} version=${version} />
    </div>
    <${Snippet} botId=${id} />
  </${Page}>`;
}
