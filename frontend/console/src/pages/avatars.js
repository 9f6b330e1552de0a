// Avatars: upload a .glb, look at it (orbit, play each clip), map behaviours to clips, and
// choose which avatar a chatbot shows.
import { useEffect, useRef, useState } from "preact/hooks";
import { get, put, del, upload } from "../api.js";
import { can, useSession } from "../session.js";
import { html, Page, Loaded, Empty, ErrorMessage, Notice, Field, useAction, refuse, useLoad, fmtBytes } from "../ui.js";
import { ChatbotPicker } from "./knowledge.js";

const MAX_MODEL_BYTES = 20 * 1024 * 1024;

function Upload({ onUploaded }) {
  const [name, setName] = useState("");
  const [file, setFile] = useState(null);
  const { run, error, busy } = useAction();
  const fileInput = useRef(null);
  const submit = run(async () => {
    if (!file) refuse("Choose a .glb file to upload.");
    if (!file.name.toLowerCase().endsWith(".glb")) {
      refuse(`${file.name} is not a .glb file. Export your model as binary glTF (.glb) and upload that.`);
    }
    if (file.size > MAX_MODEL_BYTES) {
      refuse(`${file.name} is ${fmtBytes(file.size)}: models can be at most ${fmtBytes(MAX_MODEL_BYTES)}.`);
    }
    const form = new FormData();
    if (name) form.append("name", name);
    form.append("file", file, file.name);
    const avatar = await upload("/api/v1/avatars", form);
    setName("");
    setFile(null);
    if (fileInput.current) fileInput.current.value = "";
    onUploaded(avatar);
  });
  return html`<form class="card" onSubmit=${submit} aria-labelledby="avatar-upload-title">
    <h2 id="avatar-upload-title">Upload an avatar</h2>
    <${Field} label="Name" value=${name} onInput=${setName} maxlength="200" />
    <div class="field"><label for="avatar-file">Model file (.glb)</label>
      <input id="avatar-file" ref=${fileInput} type="file" accept=".glb,model/gltf-binary"
        onChange=${(e) => setFile(e.target.files[0] || null)} aria-describedby="avatar-file-hint" />
      <p class="hint" id="avatar-file-hint">Binary glTF with its animations, up to ${fmtBytes(MAX_MODEL_BYTES)}.</p></div>
    <${ErrorMessage} error=${error} />
    <button type="submit" disabled=${busy}>${busy ? "Uploading…" : "Upload"}</button>
  </form>`;
}

function Viewer({ avatar, onViewer }) {
  const stage = useRef(null);
  const [problem, setProblem] = useState(null);
  const [viewer, setViewer] = useState(null);
  useEffect(() => {
    let disposed = false;
    let created = null;
    setProblem(null);
    import("../viewer.js")
      .then(({ createViewer }) => createViewer(stage.current, avatar.model_url))
      .then((v) => {
        created = v;
        if (disposed) v.dispose();
        else {
          setViewer(v);
          onViewer(v);
        }
      })
      .catch((err) => setProblem(err.message || "The model could not be shown."));
    return () => {
      disposed = true;
      if (created) created.dispose();
    };
  }, [avatar.id]);
  return html`<div class="viewer-wrap">
    <div class="viewer" ref=${stage} id="avatar-viewer" data-clip="none" role="img"
      aria-label=${`3D view of ${avatar.name}. Drag to turn it, scroll or pinch to zoom.`}></div>
    <${ErrorMessage} error=${problem} />
    ${viewer ? html`<div class="clips" role="group" aria-label="Clips">
      ${viewer.clips.length === 0 ? html`<p class="hint">This model has no animation clips.</p>` : null}
      ${viewer.clips.map((clip) => html`<button type="button" class="secondary small" onClick=${() => viewer.play(clip.name)}
        aria-label=${`Play clip ${clip.name}`}>▶ ${clip.name}</button>`)}
    </div>` : html`<p role="status" class="hint">Loading the model…</p>`}
  </div>`;
}

function MapForm({ avatar, behaviours, viewer, editable, onSaved }) {
  const clipNames = avatar.clips.map((c) => c.name);
  const locked = !editable || avatar.default; // the map is read-only; playing stays possible
  const [map, setMap] = useState({ ...(avatar.animation_map || {}) });
  const { run, error, done: saved } = useAction();
  useEffect(() => setMap({ ...(avatar.animation_map || {}) }), [avatar.id]);
  const save = run(async () => {
    const clean = Object.fromEntries(Object.entries(map).filter(([, clip]) => clip));
    await put(`/api/v1/avatars/${avatar.id}/animation-map`, { animation_map: clean });
    onSaved();
    return "The behaviour map is saved.";
  });
  return html`<form class="card" onSubmit=${save} aria-labelledby="map-title">
    <h2 id="map-title">Behaviours → clips</h2>
    <p class="hint">Which clip the avatar plays for each behaviour the chatbot shows.</p>
    <fieldset>
      <legend class="sr-only">Behaviour map</legend>
      ${avatar.default ? html`<${Notice}>The default avatar's map is fixed; upload your own model to change it.</${Notice}>` : null}
      <div class="map-grid">
      ${behaviours.map((b) => html`<div class="map-row">
        <${Field} label=${b.behaviour} hint=${b.description} value=${map[b.behaviour] || ""} disabled=${locked}
          onInput=${(clip) => setMap({ ...map, [b.behaviour]: clip })}>
          <option value="">(none)</option>
          ${clipNames.map((c) => html`<option value=${c}>${c}</option>`)}
        </${Field}>
        <button type="button" class="secondary small" disabled=${!map[b.behaviour] || !viewer}
          aria-label=${`Play behaviour ${b.behaviour}`} onClick=${() => viewer.play(map[b.behaviour])}>▶ Play</button>
      </div>`)}
      </div>
    </fieldset>
    <${ErrorMessage} error=${error} /><${Notice}>${saved}</${Notice}>
    ${editable && !avatar.default ? html`<button type="submit">Save the map</button>` : null}
  </form>`;
}

function ChooseForChatbot({ avatar, editable }) {
  const [chatbotId, setChatbotId] = useState("");
  const current = useLoad(() => (chatbotId ? get(`/api/v1/chatbots/${chatbotId}/avatar`) : Promise.resolve(null)), [chatbotId]);
  const { run, error, done } = useAction();
  const choose = run(async () => {
    await put(`/api/v1/chatbots/${chatbotId}/avatar`, { avatar_id: avatar.default ? null : avatar.id });
    current.reload();
    return `The chatbot now shows ${avatar.name}.`;
  });
  const uses = current.data && current.data.avatar_id === avatar.id;
  return html`<section class="card" aria-labelledby="choose-title">
    <h2 id="choose-title">Use it on a chatbot</h2>
    <${ChatbotPicker} chatbotId=${chatbotId} onPick=${setChatbotId} />
    ${current.data ? html`<p>${uses ? `This chatbot shows ${avatar.name}.` : "This chatbot shows another avatar."}</p>` : null}
    <${ErrorMessage} error=${error} /><${Notice}>${done}</${Notice}>
    ${editable && chatbotId && !uses ? html`<button type="button" onClick=${choose}>Use ${avatar.name} for this chatbot</button>` : null}
  </section>`;
}

export function Avatars() {
  const session = useSession();
  const editable = can(session, "edit");
  const list = useLoad(() => get("/api/v1/avatars"), []);
  const behaviours = useLoad(() => get("/api/v1/avatar-behaviours"), []);
  const [selected, setSelected] = useState(null);
  const [viewer, setViewer] = useState(null);
  const { run, error } = useAction();
  const avatars = list.data ? list.data.data : [];
  const avatar = avatars.find((a) => a.id === selected) || avatars.find((a) => !a.default) || avatars[0];
  const remove = run(async () => {
    if (!window.confirm(`Delete ${avatar.name}?`)) return;
    await del(`/api/v1/avatars/${avatar.id}`);
    setSelected(null);
    list.reload();
  });
  return html`<${Page} title="Avatars">
    ${editable ? html`<${Upload} onUploaded=${(a) => { setSelected(a.id); list.reload(); }} />` : null}
    <${Loaded} state=${list} what="Loading avatars…">${() => avatars.length === 0 ? html`<${Empty} title="No avatars" />` : html`
      <div class="avatar-list" role="group" aria-label="Your avatars">
        ${avatars.map((a) => html`<button type="button" class=${`avatar-pick ${a === avatar ? "current" : ""}`}
          aria-pressed=${String(a === avatar)} onClick=${() => setSelected(a.id)}>
          <strong>${a.name}</strong><span class="hint">${a.clips.length} clips · ${fmtBytes(a.size_bytes)}</span></button>`)}
      </div>
      <div class="avatar-detail">
        <section class="card" aria-labelledby="viewer-title">
          <h2 id="viewer-title">${avatar.name}</h2>
          <${Viewer} avatar=${avatar} onViewer=${setViewer} key=${avatar.id} />
          <p class="hint">${avatar.triangles} triangles · ${avatar.meshes} meshes · lip-sync: ${avatar.lipsync ? avatar.lipsync.mode : "none"}</p>
          <${ErrorMessage} error=${error} />
          ${editable && !avatar.default ? html`<button type="button" class="danger small" onClick=${remove}>Delete this avatar</button>` : null}
        </section>
        <${Loaded} state=${behaviours}>${(b) => html`<${MapForm} avatar=${avatar} behaviours=${b.data} viewer=${viewer}
          editable=${editable} onSaved=${list.reload} key=${avatar.id} />`}</${Loaded}>
      </div>
      <${ChooseForChatbot} avatar=${avatar} editable=${editable} key=${avatar.id} />`}
    </${Loaded}>
  </${Page}>`;
}
