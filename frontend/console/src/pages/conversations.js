// Conversations: a list with filters, and a transcript with citations and feedback.
// The conversation list comes from the conversation service; ratings and cost per
// conversation from the analytics export of the same range (joined by conversation id).
import { useState } from "preact/hooks";
import { get } from "../api.js";
import { html, Page, Loaded, Empty, ErrorMessage, Field, useLoad, fmtDate, fmtMoney } from "../ui.js";
import { ChatbotPicker } from "./knowledge.js";

const day = (d) => d.toISOString().slice(0, 10);

function defaults(query) {
  const today = new Date();
  const monthAgo = new Date(Date.now() - 29 * 86400000);
  return {
    chatbot: query.get("chatbot") || "", from: query.get("from") || day(monthAgo), to: query.get("to") || day(today),
    rating: query.get("rating") || "", handoff: query.get("handoff") || "",
  };
}

async function loadConversations(f) {
  const end = new Date(`${f.to}T00:00:00Z`);
  end.setUTCDate(end.getUTCDate() + 1);
  const params = new URLSearchParams({ limit: "100", from: `${f.from}T00:00:00Z`, to: end.toISOString() });
  const range = new URLSearchParams({ chatbot_id: f.chatbot, from: f.from, to: f.to });
  const [list, stats] = await Promise.all([
    get(`/api/v1/chatbots/${f.chatbot}/conversations?${params}`),
    get(`/api/v1/analytics/export/conversations.json?${range}`).catch(() => []),
  ]);
  const byId = new Map((stats || []).map((row) => [row.conversation_id, row]));
  return list.data.map((c) => ({ ...c, stats: byId.get(c.id) || null }));
}

function keep(c, f) {
  if (f.handoff === "yes" && !c.handoff_requested) return false;
  if (f.handoff === "no" && c.handoff_requested) return false;
  const up = c.stats ? c.stats.feedback_up : 0;
  const down = c.stats ? c.stats.feedback_down : 0;
  if (f.rating === "up" && !up) return false;
  if (f.rating === "down" && !down) return false;
  if (f.rating === "none" && (up || down)) return false;
  return true;
}

export function Conversations({ query }) {
  const [filters, setFilters] = useState(() => defaults(query));
  const set = (key) => (value) => setFilters({ ...filters, [key]: value });
  const invalid = filters.from && filters.to && filters.from > filters.to ? "The start date is after the end date." : null;
  const rows = useLoad(() => (filters.chatbot && !invalid ? loadConversations(filters) : Promise.resolve(null)),
    [filters.chatbot, filters.from, filters.to, invalid]);
  return html`<${Page} title="Conversations">
    <form class="filters card" aria-label="Filter conversations" onSubmit=${(e) => e.preventDefault()}>
      <${ChatbotPicker} chatbotId=${filters.chatbot} onPick=${set("chatbot")} />
      <${Field} label="From" type="date" value=${filters.from} onInput=${set("from")} />
      <${Field} label="To" type="date" value=${filters.to} onInput=${set("to")} />
      <${Field} label="Rating" value=${filters.rating} onInput=${set("rating")}>
        <option value="">Any</option><option value="up">Has a thumbs-up</option>
        <option value="down">Has a thumbs-down</option><option value="none">Not rated</option>
      </${Field}>
      <${Field} label="Handoff" value=${filters.handoff} onInput=${set("handoff")}>
        <option value="">Any</option><option value="yes">Asked for a person</option><option value="no">No handoff</option>
      </${Field}>
    </form>
    <${ErrorMessage} error=${invalid} />
    <${Loaded} state=${rows} what="Loading conversations…">${(data) => {
      if (!data) return null;
      const shown = data.filter((c) => keep(c, filters));
      if (!shown.length) return html`<${Empty} title="No conversations match">Visitors' chats appear here as they happen. Try a wider date range or other filters.</${Empty}>`;
      return html`<div class="table-wrap"><table>
        <caption class="sr-only">Conversations</caption>
        <thead><tr><th scope="col">Started</th><th scope="col">Messages</th><th scope="col">Feedback</th><th scope="col">Handoff</th><th scope="col">Cost</th></tr></thead>
        <tbody>${shown.map((c) => html`<tr>
          <th scope="row"><a href=${`#/conversations/${c.chatbot_id}/${c.id}`}>${fmtDate(c.created_at)}</a></th>
          <td>${c.messages}</td>
          <td>${c.stats ? html`<span aria-label=${`${c.stats.feedback_up} helpful, ${c.stats.feedback_down} not helpful`}>👍 ${c.stats.feedback_up} · 👎 ${c.stats.feedback_down}</span>` : "—"}</td>
          <td>${c.handoff_requested ? html`<span class="badge status-failed">requested</span>` : "no"}</td>
          <td>${c.stats ? fmtMoney(c.stats.cost_usd) : "—"}</td>
        </tr>`)}</tbody></table></div>`;
    }}</${Loaded}>
  </${Page}>`;
}

async function loadTranscript(chatbotId, conversationId) {
  const transcript = await get(`/api/v1/conversations/${conversationId}`);
  const started = transcript.conversation.created_at.slice(0, 10);
  const range = new URLSearchParams({ chatbot_id: chatbotId, from: started, limit: "500" });
  const ratings = new Map();
  await Promise.all(["up", "down"].map((rating) => get(`/api/v1/analytics/feedback?${range}&rating=${rating}`)
    .then((r) => r.data.forEach((row) => ratings.set(row.reply_id, row)), () => null)));
  const exported = await get(`/api/v1/analytics/export/conversations.json?${new URLSearchParams({ chatbot_id: chatbotId, from: started })}`)
    .catch(() => []);
  return { ...transcript, ratings, totals: (exported || []).find((row) => row.conversation_id === conversationId) || null };
}

export function Transcript({ chatbotId, conversationId }) {
  const data = useLoad(() => loadTranscript(chatbotId, conversationId), [conversationId]);
  return html`<${Page} title="Conversation" actions=${html`<a class="button secondary" href=${`#/conversations?chatbot=${chatbotId}`}>All conversations</a>`}>
    <${Loaded} state=${data} what="Loading the transcript…">${(t) => html`
      <p class="meta">Started ${fmtDate(t.conversation.created_at)} · ${t.conversation.messages} messages
        ${t.conversation.handoff_requested ? html` · <strong>the visitor asked for a person</strong>` : null}
        ${t.totals ? html` · ${t.totals.prompt_tokens + t.totals.completion_tokens} tokens, cost ${fmtMoney(t.totals.cost_usd)}` : null}</p>
      ${t.messages.length === 0 ? html`<${Empty} title="No messages in this conversation" />` : html`<ol class="transcript" aria-label="Transcript">
        ${t.messages.map((m) => {
          const rated = t.ratings.get(m.id);
          return html`<li class=${`turn ${m.role}`}>
            <p class="who">${m.role === "visitor" ? "Visitor" : "Assistant"} <span class="hint">${fmtDate(m.created_at)}</span>
              ${m.status !== "completed" && m.role === "assistant" ? html` <span class="badge status-failed">${m.status}</span>` : null}</p>
            <p class="text">${m.text}</p>
            ${m.citations && m.citations.length ? html`<ul class="citations" aria-label="Sources">${m.citations.map((c) => html`<li>
              ${c.url && /^https?:\/\//.test(c.url) ? html`<a href=${c.url} target="_blank" rel="noopener noreferrer">${c.title}</a>` : c.title}
              ${typeof c.score === "number" ? html` <span class="score">score ${c.score.toFixed(3)}</span>` : null}</li>`)}</ul>` : null}
            ${m.role === "assistant" ? html`<p class="reply-meta">
              ${m.intent ? html`<span>intent: ${m.intent}</span>` : null}
              ${typeof m.sentiment === "number" ? html`<span>sentiment: ${m.sentiment.toFixed(2)}</span>` : null}
              ${rated ? html`<span class=${`feedback ${rated.rating}`}>${rated.rating === "up" ? "👍 helpful" : "👎 not helpful"}${rated.comment ? `: “${rated.comment}”` : ""}</span>` : null}
            </p>` : null}
          </li>`;
        })}</ol>`}
    `}</${Loaded}>
  </${Page}>`;
}
