// Conversations: a list with filters (chatbot, dates, rating, handoff: all applied by the API,
// GET /api/v1/conversations), and a transcript with citations, feedback, the animation each
// reply played and what it cost.
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
  if (f.chatbot) params.set("chatbot_id", f.chatbot);
  if (f.rating) params.set("rating", f.rating);
  if (f.handoff) params.set("handoff", f.handoff === "yes" ? "true" : "false");
  const range = new URLSearchParams({ from: f.from, to: f.to });
  if (f.chatbot) range.set("chatbot_id", f.chatbot);
  const [list, stats, bots] = await Promise.all([
    get(`/api/v1/conversations?${params}`),
    get(`/api/v1/analytics/export/conversations.json?${range}`).catch(() => []),
    get("/api/v1/chatbots?limit=100").catch(() => ({ data: [] })),
  ]);
  const byId = new Map((stats || []).map((row) => [row.conversation_id, row]));
  const names = new Map(bots.data.map((b) => [b.id, b.name]));
  return list.data.map((c) => ({ ...c, stats: byId.get(c.id) || null, bot: names.get(c.chatbot_id) || "—" }));
}

export function Conversations({ query }) {
  const [filters, setFilters] = useState(() => defaults(query));
  const set = (key) => (value) => setFilters({ ...filters, [key]: value });
  const invalid = filters.from && filters.to && filters.from > filters.to ? "The start date is after the end date." : null;
  const rows = useLoad(() => (!invalid ? loadConversations(filters) : Promise.resolve(null)),
    [filters.chatbot, filters.from, filters.to, filters.rating, filters.handoff, invalid]);
  return html`<${Page} title="Conversations">
    <form class="filters card" aria-label="Filter conversations" onSubmit=${(e) => e.preventDefault()}>
      <${ChatbotPicker} chatbotId=${filters.chatbot} onPick=${set("chatbot")} allowAll=${true} />
      <${Field} label="From" type="date" value=${filters.from} onInput=${set("from")} />
      <${Field} label="To" type="date" value=${filters.to} onInput=${set("to")} />
      <${Field} label="Rating" value=${filters.rating} onInput=${set("rating")}>
        <option value="">Any</option><option value="up">Has a thumbs-up</option>
        <option value="down">Has a thumbs-down</option>
      </${Field}>
      <${Field} label="Handoff" value=${filters.handoff} onInput=${set("handoff")}>
        <option value="">Any</option><option value="yes">Asked for a person</option><option value="no">No handoff</option>
      </${Field}>
    </form>
    <${ErrorMessage} error=${invalid} />
    <${Loaded} state=${rows} what="Loading conversations…">${(data) => {
      if (!data) return null;
      const shown = data;
      if (!shown.length) return html`<${Empty} title="No conversations match">Visitors' chats appear here as they happen. Try a wider date range or other filters.</${Empty}>`;
      return html`<div class="table-wrap"><table>
        <caption class="sr-only">Conversations</caption>
        <thead><tr><th scope="col">Started</th><th scope="col">Chatbot</th><th scope="col">Messages</th><th scope="col">Feedback</th><th scope="col">Handoff</th><th scope="col">Cost</th></tr></thead>
        <tbody>${shown.map((c) => html`<tr>
          <th scope="row"><a href=${`#/conversations/${c.chatbot_id}/${c.id}`}>${fmtDate(c.created_at)}</a></th>
          <td>${c.bot}</td>
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
  const replies = transcript.messages.filter((m) => m.role === "assistant");
  const totals = replies.reduce((sum, m) => ({
    tokens: sum.tokens + (m.usage ? m.usage.prompt_tokens + m.usage.completion_tokens : 0),
    cost: sum.cost + (m.usage ? m.usage.cost_usd : 0),
  }), { tokens: 0, cost: 0 });
  return { ...transcript, totals };
}

export function Transcript({ chatbotId, conversationId }) {
  const data = useLoad(() => loadTranscript(chatbotId, conversationId), [conversationId]);
  return html`<${Page} title="Conversation" actions=${html`<a class="button secondary" href=${`#/conversations?chatbot=${chatbotId}`}>All conversations</a>`}>
    <${Loaded} state=${data} what="Loading the transcript…">${(t) => html`
      <p class="meta">Started ${fmtDate(t.conversation.created_at)} · ${t.conversation.messages} messages
        ${t.conversation.handoff_requested ? html` · <strong>the visitor asked for a person</strong>` : null}
        · ${t.totals.tokens} tokens, cost ${fmtMoney(t.totals.cost)}</p>
      ${t.messages.length === 0 ? html`<${Empty} title="No messages in this conversation" />` : html`<ol class="transcript" aria-label="Transcript">
        ${t.messages.map((m) => {
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
              ${m.animation ? html`<span>avatar: ${m.animation.behaviour}${m.animation.clip ? ` (${m.animation.clip})` : ""}</span>` : null}
              ${m.usage ? html`<span>${m.usage.prompt_tokens + m.usage.completion_tokens} tokens · ${fmtMoney(m.usage.cost_usd)}${m.usage.cached ? " (cached)" : ""}</span>` : null}
              ${m.timings && typeof m.timings.ttft_ms === "number" ? html`<span>first token ${Math.round(m.timings.ttft_ms)} ms</span>` : null}
              ${m.rating ? html`<span class=${`feedback ${m.rating}`}>${m.rating === "up" ? "👍 helpful" : "👎 not helpful"}${m.rating_comment ? `: “${m.rating_comment}”` : ""}</span>` : null}
            </p>` : null}
          </li>`;
        })}</ol>`}
    `}</${Loaded}>
  </${Page}>`;
}
