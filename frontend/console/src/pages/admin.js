// The platform admin: tenants with their usage and plan limits (editable), and creating a
// tenant together with its first owner's invitation.
import { useState } from "preact/hooks";
import { get, post, patch } from "../api.js";
import { html, Page, Loaded, Empty, ErrorMessage, Notice, Field, CopyBox, useAction, refuse, useLoad, fmtDate } from "../ui.js";

const PAGE = 25;

/** A page of tenants, newest first (optionally those whose name contains `q`), each with its
 * usage (one call per tenant on the page: the list has limits, not usage). */
async function loadTenants(q, cursor) {
  const params = new URLSearchParams({ limit: String(PAGE), order: "newest" });
  if (q) params.set("q", q);
  if (cursor) params.set("cursor", cursor);
  const page = await get(`/api/v1/admin/tenants?${params}`);
  const detailed = await Promise.all(page.data.map((t) => get(`/api/v1/admin/tenants/${t.id}`).catch(() => t)));
  return { ...page, data: detailed };
}

function Limits({ tenant, onSaved }) {
  const [limits, setLimits] = useState({
    max_chatbots: String(tenant.limits.max_chatbots), max_documents: String(tenant.limits.max_documents),
    monthly_message_quota: String(tenant.limits.monthly_message_quota),
  });
  const { run, error, done } = useAction();
  const set = (key) => (value) => setLimits({ ...limits, [key]: value });
  const save = run(async () => {
    const body = Object.fromEntries(Object.entries(limits).map(([k, v]) => [k, Number(v)]));
    if (Object.values(body).some((v) => !Number.isInteger(v) || v < 0)) refuse("Limits are whole numbers, 0 or more.");
    await patch(`/api/v1/admin/tenants/${tenant.id}`, { limits: body });
    onSaved();
    return "Limits saved.";
  });
  return html`<form class="limits" onSubmit=${save} aria-label=${`Plan limits of ${tenant.name}`}>
    <${Field} label="Chatbots" type="number" min="0" value=${limits.max_chatbots} onInput=${set("max_chatbots")} />
    <${Field} label="Documents" type="number" min="0" value=${limits.max_documents} onInput=${set("max_documents")} />
    <${Field} label="Messages per month" type="number" min="0" value=${limits.monthly_message_quota} onInput=${set("monthly_message_quota")} />
    <button type="submit" class="small">Save limits</button>
    <${ErrorMessage} error=${error} /><${Notice}>${done}</${Notice}>
  </form>`;
}

function CreateTenant({ onCreated }) {
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [created, setCreated] = useState(null);
  const { run, error } = useAction();
  const submit = run(async () => {
    const result = await post("/api/v1/admin/tenants", email ? { name, owner_email: email } : { name });
    setCreated({ name, email, ...result });
    setName("");
    setEmail("");
    onCreated();
  });
  return html`<form class="card" onSubmit=${submit} aria-labelledby="new-tenant-title">
    <h2 id="new-tenant-title">Create a tenant</h2>
    <${Field} label="Tenant name" value=${name} onInput=${setName} required maxlength="200" />
    <${Field} label="Owner's email" type="email" value=${email} onInput=${setEmail} hint="They get an invitation link to set their password." />
    <${ErrorMessage} error=${error} />
    <button type="submit">Create tenant</button>
    ${created ? html`<div class="secret" role="status">
      <p><strong>${created.name}</strong> is created. No email is sent: copy these now, they are shown once.</p>
      ${created.owner_invite ? html`<${CopyBox} label="Owner invitation link" text=${created.owner_invite.url} />` : null}
      ${created.api_key && created.api_key.key ? html`<${CopyBox} label="First API key" text=${created.api_key.key} />` : null}
    </div>` : null}
  </form>`;
}

export function Admin() {
  const [q, setQ] = useState("");
  const [search, setSearch] = useState("");
  const [more, setMore] = useState({ data: [], next: null, loading: false, error: null });
  const tenants = useLoad(async () => {
    const page = await loadTenants(search, null);
    setMore({ data: [], next: page.next_cursor, loading: false, error: null });
    return page;
  }, [search]);
  const loadMore = async () => {
    setMore({ ...more, loading: true, error: null });
    try {
      const page = await loadTenants(search, more.next);
      setMore({ data: [...more.data, ...page.data], next: page.next_cursor, loading: false, error: null });
    } catch (error) {
      setMore({ ...more, loading: false, error });
    }
  };
  return html`<${Page} title="Tenants">
    <${CreateTenant} onCreated=${tenants.reload} />
    <form class="inline-form card" role="search" onSubmit=${(e) => { e.preventDefault(); setSearch(q.trim()); }}>
      <${Field} label="Find a tenant by name" type="search" value=${q} onInput=${setQ} maxlength="200" />
      <button type="submit" class="secondary">Find</button>
    </form>
    <${Loaded} state=${tenants} what="Loading tenants…">${(data) => {
      const all = [...data.data, ...more.data];
      if (all.length === 0) {
        return search ? html`<${Empty} title="No tenant matches">No tenant's name contains “${search}”.</${Empty}>`
          : html`<${Empty} title="No tenants yet">Create the first one above.</${Empty}>`;
      }
      return html`<p class="hint">Newest first.</p><ul class="tenants">${all.map((t) => html`<li class="card">
          <h2>${t.name}</h2>
          <p class="hint">Created ${fmtDate(t.created_at)} · <code>${t.id}</code></p>
          ${t.usage ? html`<p>This month: <strong>${t.usage.messages}</strong> of ${t.usage.monthly_message_quota} messages,
            <strong>${t.usage.chatbots}</strong> of ${t.usage.max_chatbots} chatbots.</p>` : null}
          <${Limits} tenant=${t} onSaved=${tenants.reload} key=${`${t.id}-${JSON.stringify(t.limits)}`} />
        </li>`)}</ul>
        <${ErrorMessage} error=${more.error} />
        ${more.next ? html`<button type="button" class="secondary"
          disabled=${more.loading} onClick=${loadMore}>${more.loading ? "Loading…" : "Show more tenants"}</button>` : null}`;
    }}</${Loaded}>
  </${Page}>`;
}
