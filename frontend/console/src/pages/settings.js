// Settings: usage against the plan, your password, and for owners API keys, people and
// invitations, and provider keys.
import { useState } from "preact/hooks";
import { get, post, put, patch, del } from "../api.js";
import { can, useSession } from "../session.js";
import { html, Page, Loaded, Empty, ErrorMessage, Notice, Field, CopyBox, useAction, refuse, useLoad, fmtDate } from "../ui.js";

function Meter({ label, used, limit }) {
  const share = limit ? Math.min(100, Math.round((100 * used) / limit)) : 0;
  return html`<div class="meter"><p>${label}: <strong>${used}</strong> of ${limit}</p>
    <progress max="100" value=${share} aria-label=${`${label}: ${used} of ${limit}`}></progress></div>`;
}

function Usage() {
  const usage = useLoad(() => get("/api/v1/tenant/usage"), []);
  return html`<section class="card" aria-labelledby="usage-title"><h2 id="usage-title">Usage this month</h2>
    <${Loaded} state=${usage}>${(u) => html`
      <${Meter} label="Visitor messages" used=${u.messages} limit=${u.monthly_message_quota} />
      <${Meter} label="Chatbots" used=${u.chatbots} limit=${u.max_chatbots} />
      <p class="hint">Month starting ${u.month}. The platform admin sets the plan's limits.</p>`}</${Loaded}>
  </section>`;
}

function Password() {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const { run, error, done } = useAction((err) => (err.code === "invalid_credentials" ? "Your current password is not right." : err));
  const submit = run(async () => {
    if (next.length < 10) refuse("Choose a new password of at least 10 characters.");
    await post("/api/v1/auth/password", { current_password: current, new_password: next });
    setCurrent("");
    setNext("");
    return "Your password is changed.";
  });
  return html`<form class="card" onSubmit=${submit} aria-labelledby="password-title"><h2 id="password-title">Your password</h2>
    <${Field} label="Current password" type="password" value=${current} onInput=${setCurrent} autocomplete="current-password" required />
    <${Field} label="New password" type="password" value=${next} onInput=${setNext} autocomplete="new-password" required minlength="10" hint="At least 10 characters." />
    <${ErrorMessage} error=${error} /><${Notice}>${done}</${Notice}>
    <button type="submit">Change password</button></form>`;
}

function ApiKeys() {
  const keys = useLoad(() => get("/api/v1/api-keys?limit=100"), []);
  const [name, setName] = useState("");
  const [scope, setScope] = useState("full");
  const [created, setCreated] = useState(null);
  const { run, error } = useAction();
  const create = run(async () => {
    setCreated(await post("/api/v1/api-keys", { name, scope }));
    setName("");
    keys.reload();
  });
  const revoke = (key) => run(async () => {
    if (!window.confirm(`Revoke ${key.name || key.id}? Anything using it stops working at once.`)) return;
    await del(`/api/v1/api-keys/${key.id}`);
    keys.reload();
  })();
  return html`<section class="card" aria-labelledby="keys-title"><h2 id="keys-title">API keys</h2>
    <form class="inline-form" onSubmit=${create} aria-label="Create an API key">
      <${Field} label="Key name" value=${name} onInput=${setName} maxlength="200" />
      <${Field} label="Scope" value=${scope} onInput=${setScope}>
        <option value="full">Full</option><option value="read">Read only</option><option value="chat">Chat only</option>
      </${Field}>
      <button type="submit">Create key</button>
    </form>
    ${created ? html`<div class="secret" role="status"><p><strong>Copy this key now: it is shown only once.</strong></p>
      <${CopyBox} label="API key" text=${created.key} />
      <button type="button" class="secondary small" onClick=${() => setCreated(null)}>I have copied it</button></div>` : null}
    <${ErrorMessage} error=${error} />
    <${Loaded} state=${keys}>${(data) => data.data.length === 0 ? html`<${Empty} title="No API keys" />` : html`<div class="table-wrap"><table>
      <caption class="sr-only">API keys</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">Id</th><th scope="col">Scope</th><th scope="col">Created</th><th scope="col">Status</th></tr></thead>
      <tbody>${data.data.map((k) => html`<tr><th scope="row">${k.name || "(unnamed)"}</th><td><code>${k.id}</code></td><td>${k.scope}</td>
        <td>${fmtDate(k.created_at)}</td>
        <td>${k.revoked_at ? `revoked ${fmtDate(k.revoked_at)}` : html`<button type="button" class="danger small" aria-label=${`Revoke key ${k.name || k.id}`} onClick=${() => revoke(k)}>Revoke</button>`}</td></tr>`)}
      </tbody></table></div>`}</${Loaded}>
  </section>`;
}

function People() {
  const session = useSession();
  const users = useLoad(() => get("/api/v1/users"), []);
  const invites = useLoad(() => get("/api/v1/invites"), []);
  const [email, setEmail] = useState("");
  const [role, setRole] = useState("editor");
  const [link, setLink] = useState(null);
  const { run, error } = useAction((err) => (err.code === "last_owner"
    ? "A workspace needs at least one owner: make someone else owner first." : err));
  const invite = run(async () => {
    const created = await post("/api/v1/invites", { email, role });
    setLink({ label: "Invitation link", who: `${created.email} (${created.role})`, url: created.url });
    setEmail("");
    invites.reload();
  });
  const act = (fn) => run(async () => {
    await fn();
    users.reload();
    invites.reload();
  })();
  const resetLink = (user) => act(async () => {
    const created = await post(`/api/v1/users/${user.id}/reset-link`);
    setLink({ label: "Password reset link", who: user.email, url: created.url });
  });
  return html`<section class="card" aria-labelledby="people-title"><h2 id="people-title">People</h2>
    <form class="inline-form" onSubmit=${invite} aria-label="Invite someone">
      <${Field} label="Email to invite" type="email" value=${email} onInput=${setEmail} required />
      <${Field} label="Role" value=${role} onInput=${setRole}>
        <option value="viewer">Viewer (reads conversations and analytics)</option>
        <option value="editor">Editor (runs chatbots, knowledge, avatars)</option>
        <option value="owner">Owner (everything, people and keys too)</option>
      </${Field}>
      <button type="submit">Create invitation</button>
    </form>
    ${link ? html`<div class="secret" role="status"><p>No email is sent: give <strong>${link.who}</strong> this link (single use).</p>
      <${CopyBox} label=${link.label} text=${link.url} /></div>` : null}
    <${ErrorMessage} error=${error} />
    <h3>Members</h3>
    <${Loaded} state=${users}>${(data) => html`<div class="table-wrap"><table>
      <caption class="sr-only">Members</caption>
      <thead><tr><th scope="col">Email</th><th scope="col">Role</th><th scope="col">Last sign-in</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>${data.data.map((u) => html`<tr><th scope="row">${u.email}</th>
        <td><label class="sr-only" for=${`role-${u.id}`}>Role of ${u.email}</label>
          <select id=${`role-${u.id}`} value=${u.role} onChange=${(e) => act(() => patch(`/api/v1/users/${u.id}`, { role: e.target.value }))}>
            <option value="owner">owner</option><option value="editor">editor</option><option value="viewer">viewer</option></select></td>
        <td>${fmtDate(u.last_login_at)}</td>
        <td class="row-actions"><button type="button" class="secondary small" aria-label=${`Reset link for ${u.email}`} onClick=${() => resetLink(u)}>Reset link</button>
          ${session.user && session.user.id === u.id ? null : html`<button type="button" class="danger small" aria-label=${`Remove ${u.email}`}
            onClick=${() => window.confirm(`Remove ${u.email} from this workspace?`) && act(() => del(`/api/v1/users/${u.id}`))}>Remove</button>`}</td></tr>`)}
      </tbody></table></div>`}</${Loaded}>
    <h3>Pending invitations</h3>
    <${Loaded} state=${invites}>${(data) => data.data.length === 0 ? html`<p class="hint">No pending invitations.</p>` : html`<ul class="invites">
      ${data.data.map((i) => html`<li>${i.email} (${i.role}), expires ${fmtDate(i.expires_at)}
        <button type="button" class="secondary small" aria-label=${`Cancel the invitation of ${i.email}`} onClick=${() => act(() => del(`/api/v1/invites/${i.id}`))}>Cancel</button></li>`)}
    </ul>`}</${Loaded}>
  </section>`;
}

function ProviderKey({ provider, label, placeholder }) {
  const stored = useLoad(() => get(`/api/v1/provider-keys/${provider}`).catch((err) => {
    if (err.status === 404) return null;
    throw err;
  }), [provider]);
  const [key, setKey] = useState("");
  const [baseUrl, setBaseUrl] = useState("");
  const { run, error } = useAction();
  const save = run(async () => {
    await put(`/api/v1/provider-keys/${provider}`, baseUrl ? { api_key: key, base_url: baseUrl } : { api_key: key });
    setKey(""); // never kept in the page once stored
    stored.reload();
  });
  const forget = run(async () => {
    await del(`/api/v1/provider-keys/${provider}`);
    stored.reload();
  });
  return html`<form class="provider" onSubmit=${save} aria-label=${`${label} key`}>
    <h3>${label}</h3>
    <${Loaded} state=${stored}>${(s) => (s ? html`<p>Stored key: <code>${s.key_hint}</code>${s.base_url ? html` at ${s.base_url}` : null}
      <button type="button" class="secondary small" onClick=${forget}>Forget it</button></p>` : html`<p class="hint">No key of yours: the platform's is used.</p>`)}</${Loaded}>
    <${Field} label=${`${label} API key`} type="password" value=${key} onInput=${setKey} autocomplete="off" required placeholder=${placeholder}
      hint="Stored encrypted; only a hint like sk-…9f3a is ever shown again." />
    ${provider === "openai" ? html`<${Field} label="Base URL (optional)" type="url" value=${baseUrl} onInput=${setBaseUrl}
      hint="For OpenAI-compatible servers: Ollama, vLLM, OpenRouter…" />` : null}
    <${ErrorMessage} error=${error} />
    <button type="submit">Save ${label} key</button>
  </form>`;
}

export function Settings() {
  const session = useSession();
  const owner = can(session, "manage");
  return html`<${Page} title="Settings">
    <${Usage} />
    ${session.user ? html`<${Password} />` : null}
    ${owner ? html`<${People} /><${ApiKeys} />
      <section class="card" aria-labelledby="providers-title"><h2 id="providers-title">AI provider keys</h2>
        <${ProviderKey} provider="openai" label="OpenAI" placeholder="sk-…" />
        <${ProviderKey} provider="anthropic" label="Anthropic" placeholder="sk-ant-…" />
      </section>` : html`<${Notice}>People, API keys and provider keys are managed by the workspace's owners.</${Notice}>`}
  </${Page}>`;
}
