// Knowledge: feed a chatbot files, web pages and crawls; watch them index; try a search.
import { useCallback, useEffect, useState } from "preact/hooks";
import { get, post, del, upload } from "../api.js";
import { can, useSession } from "../session.js";
import { html, Page, Loaded, Empty, ErrorMessage, Notice, Field, Status, useLoad, usePoll, fmtDate, fmtBytes, go, useAction } from "../ui.js";

export const MAX_UPLOAD_BYTES = 20 * 1024 * 1024; // the gateway's limit for one document
const EXTENSIONS = [".pdf", ".docx", ".txt", ".md", ".markdown", ".html", ".htm"];
const POLL_MS = 1000;

/** The chatbot picker shared by pages that work on one chatbot. */
export function ChatbotPicker({ chatbotId, onPick, label = "Chatbot", allowAll = false }) {
  const bots = useLoad(() => get("/api/v1/chatbots?limit=100"), []);
  useEffect(() => {
    if (!allowAll && !chatbotId && bots.data && bots.data.data.length) onPick(bots.data.data[0].id);
  }, [bots.data, chatbotId]);
  return html`<${Loaded} state=${bots}>${(data) => data.data.length === 0
    ? html`<${Empty} title="No chatbots yet"><a href="#/chatbots">Create a chatbot</a> first.</${Empty}>`
    : html`<div class="picker"><${Field} label=${label} value=${chatbotId || ""} onInput=${onPick}>
        ${allowAll ? html`<option value="">All chatbots</option>` : null}
        ${data.data.map((b) => html`<option value=${b.id}>${b.name}</option>`)}
      </${Field}></div>`}</${Loaded}>`;
}

export function Knowledge({ chatbotId }) {
  return html`<${Page} title="Knowledge">
    <${ChatbotPicker} chatbotId=${chatbotId} onPick=${(id) => go(`#/knowledge/${id}`)} />
    ${chatbotId ? html`<${KnowledgeOf} chatbotId=${chatbotId} key=${chatbotId} />` : null}
  </${Page}>`;
}

function problemWith(file) {
  const name = file.name.toLowerCase();
  if (!EXTENSIONS.some((ext) => name.endsWith(ext))) {
    return `${file.name}: this kind of file is not supported. Upload PDF, Word (.docx), text, Markdown or HTML files.`;
  }
  if (file.size > MAX_UPLOAD_BYTES) {
    return `${file.name} is ${fmtBytes(file.size)}: files can be at most ${fmtBytes(MAX_UPLOAD_BYTES)}. Split it, or upload a smaller export.`;
  }
  if (file.size === 0) return `${file.name} is empty.`;
  return null;
}

function Uploader({ base, onAdded }) {
  const [over, setOver] = useState(false);
  const [problems, setProblems] = useState([]);
  const [sent, setSent] = useState("");
  const [busy, setBusy] = useState(false);
  const send = async (files) => {
    const list = Array.from(files);
    const issues = [];
    let added = 0;
    setBusy(true);
    setSent("");
    for (const file of list) {
      const problem = problemWith(file);
      if (problem) {
        issues.push(problem);
        continue;
      }
      const form = new FormData();
      form.append("file", file, file.name);
      try {
        await upload(`${base}/documents`, form);
        added += 1;
      } catch (err) {
        issues.push(`${file.name}: ${err.message}`);
      }
    }
    setBusy(false);
    setProblems(issues);
    if (added) {
      setSent(`${added} file${added > 1 ? "s" : ""} added; indexing has started.`);
      onAdded();
    }
  };
  const drop = (event) => {
    event.preventDefault();
    setOver(false);
    send(event.dataTransfer.files);
  };
  return html`<section class="card" aria-labelledby="upload-title">
    <h2 id="upload-title">Upload files</h2>
    <div class=${`dropzone ${over ? "over" : ""}`} onDragOver=${(e) => { e.preventDefault(); setOver(true); }}
      onDragLeave=${() => setOver(false)} onDrop=${drop}>
      <p>Drop files here, or</p>
      <label class="button secondary" for="document-files">Choose files</label>
      <input id="document-files" class="visually-hidden-file" type="file" multiple accept=${EXTENSIONS.join(",")}
        onChange=${(e) => { send(e.target.files); e.target.value = ""; }} />
      <p class="hint">PDF, Word, text, Markdown or HTML; up to ${fmtBytes(MAX_UPLOAD_BYTES)} each.</p>
    </div>
    ${busy ? html`<p role="status">Uploading…</p>` : null}
    <${Notice}>${sent}</${Notice}>
    ${problems.length ? html`<div class="error" role="alert"><ul>${problems.map((p) => html`<li>${p}</li>`)}</ul></div>` : null}
  </section>`;
}

function AddUrl({ base, onAdded }) {
  const [url, setUrl] = useState("");
  const [title, setTitle] = useState("");
  const { run, error, done } = useAction();
  const submit = run(async () => {
    await post(`${base}/documents/url`, title ? { url, title } : { url });
    setUrl("");
    setTitle("");
    onAdded();
    return `${url} added; it is being fetched and indexed.`;
  });
  return html`<form class="card" onSubmit=${submit} aria-labelledby="url-title">
    <h2 id="url-title">Add a web page</h2>
    <${Field} label="Page address" type="url" value=${url} onInput=${setUrl} required placeholder="https://example.com/faq" />
    <${Field} label="Title (optional)" value=${title} onInput=${setTitle} maxlength="300" />
    <${ErrorMessage} error=${error} /><${Notice}>${done}</${Notice}>
    <button type="submit">Add page</button>
  </form>`;
}

function Crawl({ base, onAdded }) {
  const [form, setForm] = useState({ source: "start_url", url: "", max_pages: "50", max_depth: "2", include: "", exclude: "", rate: "1" });
  const { run, error, done } = useAction();
  const crawls = useLoad(() => get(`${base}/crawls`), [base]);
  const running = Boolean(crawls.data && crawls.data.data.some((c) => c.status === "running"));
  usePoll(crawls.reload, 2000, running);
  const set = (key) => (value) => setForm({ ...form, [key]: value });
  const patterns = (text) => text.split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
  const submit = run(async () => {
    await post(`${base}/crawls`, {
      [form.source]: form.url, max_pages: Number(form.max_pages), max_depth: Number(form.max_depth),
      include: patterns(form.include), exclude: patterns(form.exclude), rate_per_second: Number(form.rate),
    });
    crawls.reload();
    onAdded();
    return "The crawl has started; its pages appear in the documents below as they are found.";
  });
  return html`<section class="card" aria-labelledby="crawl-title">
    <h2 id="crawl-title">Crawl a website</h2>
    <form onSubmit=${submit}>
      <${Field} label="Start from" value=${form.source} onInput=${set("source")}>
        <option value="start_url">A page (follow its links)</option>
        <option value="sitemap_url">A sitemap</option>
      </${Field}>
      <${Field} label=${form.source === "start_url" ? "Start page" : "Sitemap address"} type="url" value=${form.url} onInput=${set("url")} required />
      <div class="row">
        <${Field} label="Most pages" type="number" min="1" max="1000" value=${form.max_pages} onInput=${set("max_pages")} />
        <${Field} label="Link depth" type="number" min="0" max="10" value=${form.max_depth} onInput=${set("max_depth")} />
        <${Field} label="Pages per second" type="number" min="0.1" max="10" step="0.1" value=${form.rate} onInput=${set("rate")} />
      </div>
      <${Field} label="Only paths matching" value=${form.include} onInput=${set("include")} hint="Patterns like /docs/*, separated by commas." />
      <${Field} label="Skip paths matching" value=${form.exclude} onInput=${set("exclude")} />
      <${ErrorMessage} error=${error} /><${Notice}>${done}</${Notice}>
      <button type="submit">Start crawl</button>
    </form>
    <${Loaded} state=${crawls}>${(data) => data.data.length ? html`<ul class="crawls" aria-label="Crawls">
      ${data.data.slice(0, 5).map((c) => html`<li><${Status} status=${c.status} /> ${c.start_url}: ${c.pages_seen} pages seen, ${c.pages_queued} queued${c.reason ? html` — <span class="reason">${c.reason}</span>` : null}</li>`)}
    </ul>` : null}</${Loaded}>
  </section>`;
}

function Progress({ doc }) {
  const percent = doc.progress ? doc.progress.percent : 0;
  const label = `Indexing ${doc.title || doc.filename || "document"}`;
  return html`<div class="progress"><progress max="100" value=${percent} aria-label=${label}></progress>
    <span>${percent}%</span></div>`;
}

function Documents({ base, docs, editable, onChange }) {
  const { run, error } = useAction();
  const act = (fn) => run(async () => {
    await fn();
    onChange();
  })();
  return html`<section class="card" aria-labelledby="docs-title">
    <h2 id="docs-title">Documents</h2>
    <${ErrorMessage} error=${error} />
    <${Loaded} state=${docs} what="Loading documents…">${(data) => data.data.length === 0
      ? html`<${Empty} title="No documents yet">Upload a file, add a page or crawl your site: the chatbot answers from them.</${Empty}>`
      : html`<div class="table-wrap"><table class="documents">
        <caption class="sr-only">Documents of this chatbot</caption>
        <thead><tr><th scope="col">Document</th><th scope="col">Status</th><th scope="col">Size</th><th scope="col">Chunks</th><th scope="col">Updated</th>${editable ? html`<th scope="col"><span class="sr-only">Actions</span></th>` : null}</tr></thead>
        <tbody>${data.data.map((doc) => html`<tr data-document=${doc.id}>
          <th scope="row">${doc.title || doc.filename || doc.url}${doc.url ? html`<br /><span class="hint">${doc.url}</span>` : null}</th>
          <td class="doc-status"><${Status} status=${doc.status} />
            ${doc.status === "processing" || doc.status === "queued" ? html`<${Progress} doc=${doc} />` : null}
            ${doc.status === "failed" && doc.reason ? html`<p class="reason">${doc.reason}</p>` : null}</td>
          <td>${fmtBytes(doc.size_bytes)}</td>
          <td>${doc.chunks}</td>
          <td>${fmtDate(doc.updated_at)}</td>
          ${editable ? html`<td class="row-actions">
            <button type="button" class="secondary small" aria-label=${`Re-sync ${doc.title || doc.filename || ""}`}
              onClick=${() => act(() => post(`${base}/documents/${doc.id}/resync`))}>Re-sync</button>
            <button type="button" class="danger small" aria-label=${`Delete ${doc.title || doc.filename || ""}`}
              onClick=${() => window.confirm("Delete this document and what was learned from it?") && act(() => del(`${base}/documents/${doc.id}`))}>Delete</button>
          </td>` : null}
        </tr>`)}</tbody></table></div>`}</${Loaded}>
  </section>`;
}

function Search({ base }) {
  const [query, setQuery] = useState("");
  const [results, setResults] = useState(null);
  const { run, error } = useAction();
  const submit = run(async () => {
    setResults((await post(`${base}/search`, { query })).data);
  });
  return html`<section class="card" aria-labelledby="search-title">
    <h2 id="search-title">What would the bot find?</h2>
    <form class="inline-form" onSubmit=${submit} role="search">
      <${Field} label="A visitor's question" type="search" value=${query} onInput=${setQuery} required />
      <button type="submit">Search</button>
    </form>
    <${ErrorMessage} error=${error} />
    ${results === null ? null : results.length === 0
      ? html`<${Empty} title="Nothing found">The knowledge base has no passage for this question yet.</${Empty}>`
      : html`<ol class="passages" aria-label="Retrieved passages">${results.map((r) => html`<li>
          <p class="passage-head"><strong>${r.title}</strong> <span class="score">score ${r.score.toFixed(3)}</span></p>
          ${r.heading_path ? html`<p class="hint">${[].concat(r.heading_path).join(" › ")}</p>` : null}
          <p>${r.snippet}</p></li>`)}</ol>`}
  </section>`;
}

function KnowledgeOf({ chatbotId }) {
  const session = useSession();
  const editable = can(session, "edit");
  const base = `/api/v1/chatbots/${chatbotId}/knowledge`;
  const docs = useLoad(() => get(`${base}/documents?limit=200`), [base]);
  const busy = Boolean(docs.data && docs.data.data.some((d) => d.status === "queued" || d.status === "processing"));
  const refresh = useCallback(() => docs.reload(), [docs.reload]);
  usePoll(refresh, POLL_MS, busy);
  return html`<div class="knowledge">
    ${editable ? html`<div class="grid-2">
      <${Uploader} base=${base} onAdded=${refresh} />
      <${AddUrl} base=${base} onAdded=${refresh} />
    </div>
    <${Crawl} base=${base} onAdded=${refresh} />` : html`<${Notice}>Your role can read the knowledge base but not change it.</${Notice}>`}
    <${Documents} base=${base} docs=${docs} editable=${editable} onChange=${refresh} />
    <${Search} base=${base} />
  </div>`;
}
