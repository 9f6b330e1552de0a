// Small shared pieces: the html tag (htm bound to Preact), page frames, messages, fields,
// a copy button and formatters. Components stay plain functions with hooks.
import { h } from "preact";
import { useEffect, useRef, useState, useCallback } from "preact/hooks";
import htm from "htm";

export const html = htm.bind(h);

/** Load data for a page: {data, error, loading, reload}. Reloads when `deps` change. */
export function useLoad(loader, deps = []) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const alive = useRef(true);
  const run = useCallback(async () => {
    setState((s) => ({ ...s, loading: true }));
    try {
      const data = await loader();
      if (alive.current) setState({ data, error: null, loading: false });
    } catch (error) {
      if (alive.current) setState({ data: null, error, loading: false });
    }
  }, deps);
  useEffect(() => {
    alive.current = true;
    run();
    return () => {
      alive.current = false;
    };
  }, [run]);
  return { ...state, reload: run };
}

/**
 * What a form (or a button) does when used: `run(action)` makes the handler. It clears the
 * last message, runs `action`; a string it returns is the success message (`done`), an error
 * it throws is kept in `error`, put in words by `explain(err)` (a page's own wording for an
 * error code). The person's input is never cleared on an error.
 */
export function useAction(explain = (err) => err) {
  const [error, setError] = useState(null);
  const [done, setDone] = useState("");
  const [busy, setBusy] = useState(false);
  const run = (action) => async (event) => {
    if (event && event.preventDefault) event.preventDefault();
    setError(null);
    setDone("");
    setBusy(true);
    try {
      const message = await action(event);
      if (typeof message === "string") setDone(message);
    } catch (err) {
      setError(explain(err));
    } finally {
      setBusy(false);
    }
  };
  return { run, error, setError, done, busy };
}

/** Refuse with a message the person can act on (for useAction's actions). */
export function refuse(message) {
  throw Object.assign(new Error(message), { code: "invalid_input" });
}

/** Run `tick` every `ms` while `active` is true (e.g. while a document is indexing). */
export function usePoll(tick, ms, active) {
  useEffect(() => {
    if (!active) return undefined;
    const timer = setInterval(tick, ms);
    return () => clearInterval(timer);
  }, [active, tick, ms]);
}

export function Page({ title, actions, children }) {
  useEffect(() => {
    document.title = `${title} · avatarchat console`;
  }, [title]);
  return html`<section class="page" aria-labelledby="page-title">
    <div class="page-head">
      <h1 id="page-title" tabindex="-1">${title}</h1>
      ${actions ? html`<div class="page-actions">${actions}</div>` : null}
    </div>
    ${children}
  </section>`;
}

export function ErrorMessage({ error, id }) {
  if (!error) return null;
  const text = typeof error === "string" ? error : error.message;
  return html`<p class="error" role="alert" id=${id}>${text}</p>`;
}

export function Notice({ children }) {
  if (!children) return null;
  return html`<p class="notice" role="status">${children}</p>`;
}

export function Loading({ what = "Loading…" }) {
  return html`<p class="loading" role="status">${what}</p>`;
}

export function Empty({ title, children }) {
  return html`<div class="empty"><p class="empty-title">${title}</p>${children ? html`<p>${children}</p>` : null}</div>`;
}

/** Loading / error / content for a useLoad result. */
export function Loaded({ state, children, what }) {
  if (state.error) return html`<${ErrorMessage} error=${state.error} />`;
  if (state.loading && state.data === null) return html`<${Loading} what=${what} />`;
  return children(state.data);
}

let fieldSeq = 0;
export function useId(prefix = "f") {
  const ref = useRef(null);
  if (ref.current === null) {
    fieldSeq += 1;
    ref.current = `${prefix}-${fieldSeq}`;
  }
  return ref.current;
}

/** A labelled input; `hint` is tied to it with aria-describedby. */
export function Field({ label, hint, type = "text", value, onInput, textarea, children, ...rest }) {
  const id = useId("field");
  const hintId = hint ? `${id}-hint` : undefined;
  const handler = (event) => onInput(type === "checkbox" ? event.target.checked : event.target.value);
  let control;
  if (children) control = html`<select id=${id} value=${value} onChange=${handler} aria-describedby=${hintId} ...${rest}>${children}</select>`;
  else if (textarea) control = html`<textarea id=${id} value=${value} onInput=${handler} aria-describedby=${hintId} ...${rest}></textarea>`;
  else if (type === "checkbox") {
    return html`<div class="field check"><input id=${id} type="checkbox" checked=${value} onChange=${handler} aria-describedby=${hintId} ...${rest} />
      <label for=${id}>${label}</label>${hint ? html`<p class="hint" id=${hintId}>${hint}</p>` : null}</div>`;
  } else control = html`<input id=${id} type=${type} value=${value} onInput=${handler} aria-describedby=${hintId} ...${rest} />`;
  return html`<div class="field"><label for=${id}>${label}</label>${control}${hint ? html`<p class="hint" id=${hintId}>${hint}</p>` : null}</div>`;
}

export function CopyButton({ text, label = "Copy" }) {
  const [done, setDone] = useState("");
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone("Copied");
    } catch {
      setDone("Select the text and copy it with Ctrl+C");
    }
  };
  return html`<span class="copy"><button type="button" class="secondary" onClick=${copy}>${label}</button>
    <span role="status" class="copy-status">${done}</span></span>`;
}

/** A read-only value to copy (secrets shown once, links, snippets). */
export function CopyBox({ label, text, multiline }) {
  const id = useId("copy");
  return html`<div class="copybox">
    <label for=${id}>${label}</label>
    ${multiline ? html`<textarea id=${id} readonly rows="3" value=${text}></textarea>` : html`<input id=${id} readonly value=${text} />`}
    <${CopyButton} text=${text} label=${`Copy ${label.toLowerCase()}`} />
  </div>`;
}

export function Status({ status }) {
  return html`<span class=${`badge status-${status}`}>${status}</span>`;
}

export function fmtDate(value) {
  if (!value) return "—";
  const d = new Date(String(value).replace(" ", "T"));
  return Number.isNaN(d.getTime()) ? String(value) : d.toLocaleString();
}

export function fmtMoney(value) {
  return value === null || value === undefined ? "—" : `$${Number(value).toFixed(4)}`;
}

export function fmtPercent(value) {
  return value === null || value === undefined ? "—" : `${Math.round(value * 1000) / 10}%`;
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "—";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function go(hash) {
  window.location.hash = hash;
}
