// Analytics: per-day charts against the previous period (Chart.js), the unanswered-question
// clusters, thumbs-down replies and CSV exports. Every figure comes from /api/v1/analytics.
import { useEffect, useRef, useState } from "preact/hooks";
import { get } from "../api.js";
import { html, Page, Loaded, Empty, ErrorMessage, Field, useLoad, fmtDate, fmtMoney, fmtPercent } from "../ui.js";
import { ChatbotPicker } from "./knowledge.js";

const day = (d) => d.toISOString().slice(0, 10);
let chartModule = null;

async function chartJs() {
  if (!chartModule) {
    const { Chart, registerables } = await import("chart.js");
    Chart.register(...registerables);
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.color = "#374151";
    chartModule = Chart;
  }
  return chartModule;
}

/** One chart of this period against the previous one, day by day (day 1, day 2, ...). */
function CompareChart({ id, title, current, previous, format = (v) => v, summary }) {
  const canvas = useRef(null);
  useEffect(() => {
    let chart = null;
    let cancelled = false;
    chartJs().then((Chart) => {
      if (cancelled || !canvas.current) return;
      chart = new Chart(canvas.current, {
        type: "line",
        data: {
          labels: current.map((p) => p.label),
          datasets: [
            { label: "This period", data: current.map((p) => p.value), borderColor: "#4338ca", backgroundColor: "#4338ca", tension: 0.25 },
            { label: "Previous period", data: previous.map((p) => p.value), borderColor: "#9ca3af", backgroundColor: "#9ca3af", borderDash: [6, 4], tension: 0.25 },
          ],
        },
        options: {
          responsive: true, maintainAspectRatio: false, animation: false,
          interaction: { mode: "index", intersect: false },
          scales: { y: { beginAtZero: true, ticks: { callback: (v) => format(v) } } },
          plugins: { tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label}: ${format(ctx.parsed.y)}` } } },
        },
      });
    });
    return () => {
      cancelled = true;
      if (chart) chart.destroy();
    };
  }, [JSON.stringify(current), JSON.stringify(previous)]);
  return html`<figure class="card chart" aria-labelledby=${`${id}-title`}>
    <figcaption id=${`${id}-title`}><h2>${title}</h2><p class="change">${summary}</p></figcaption>
    <div class="chart-box"><canvas ref=${canvas} role="img" aria-label=${`${title}: ${summary}`}></canvas></div>
  </figure>`;
}

function change(value) {
  if (value === null || value === undefined) return "no previous figure";
  const pct = Math.round(value * 1000) / 10;
  return `${pct > 0 ? "+" : ""}${pct}% on the previous period`;
}

function series(summary, pick) {
  return summary.series.map((p) => ({ label: String(p.bucket).slice(5, 10), value: pick(p) }));
}

const deflection = (p) => (p.conversations ? 1 - p.handoff_conversations / p.conversations : null);

async function loadAnalytics(f) {
  const q = new URLSearchParams({ from: f.from, to: f.to });
  if (f.chatbot) q.set("chatbot_id", f.chatbot);
  const current = await get(`/api/v1/analytics/summary?${q}`);
  const pq = new URLSearchParams(q);
  pq.set("from", current.previous_from);
  pq.set("to", current.previous_to);
  const [previous, unanswered, feedback] = await Promise.all([
    get(`/api/v1/analytics/summary?${pq}`),
    get(`/api/v1/analytics/unanswered?${q}&limit=20`),
    get(`/api/v1/analytics/feedback?${q}&rating=down&limit=50`),
  ]);
  return { current, previous, unanswered, feedback, query: q.toString() };
}

function Headline({ label, value, delta }) {
  return html`<div class="stat"><p class="stat-label">${label}</p><p class="stat-value">${value}</p><p class="hint">${change(delta)}</p></div>`;
}

export function Analytics() {
  const [filters, setFilters] = useState({ chatbot: "", from: day(new Date(Date.now() - 29 * 86400000)), to: day(new Date()) });
  const set = (key) => (value) => setFilters({ ...filters, [key]: value });
  const invalid = filters.from > filters.to ? "The start date is after the end date." : null;
  const data = useLoad(() => (invalid ? Promise.resolve(null) : loadAnalytics(filters)), [filters.chatbot, filters.from, filters.to, invalid]);
  return html`<${Page} title="Analytics">
    <form class="filters card" aria-label="Analytics range" onSubmit=${(e) => e.preventDefault()}>
      <${ChatbotPicker} chatbotId=${filters.chatbot} onPick=${set("chatbot")} allowAll />
      <${Field} label="From" type="date" value=${filters.from} onInput=${set("from")} />
      <${Field} label="To" type="date" value=${filters.to} onInput=${set("to")} />
    </form>
    <${ErrorMessage} error=${invalid} />
    <${Loaded} state=${data} what="Loading analytics…">${(d) => d && html`
      <div class="exports" role="group" aria-label="CSV exports">
        <a class="button secondary" href=${`/api/v1/analytics/export/conversations.csv?${d.query}`} download>Export conversations (CSV)</a>
        <a class="button secondary" href=${`/api/v1/analytics/export/metrics.csv?${d.query}`} download>Export daily metrics (CSV)</a>
      </div>
      <div class="stats">
        <${Headline} label="Conversations" value=${d.current.current.conversations} delta=${d.current.change.conversations} />
        <${Headline} label="Messages" value=${d.current.current.messages} delta=${d.current.change.messages} />
        <${Headline} label="Deflection" value=${fmtPercent(d.current.current.deflection_rate)} delta=${d.current.change.deflection_rate} />
        <${Headline} label="Reply time p95" value=${d.current.current.reply_time_p95_ms === null ? "—" : `${Math.round(d.current.current.reply_time_p95_ms)} ms`} delta=${d.current.change.reply_time_p95_ms} />
        <${Headline} label="Cost" value=${fmtMoney(d.current.current.cost_usd)} delta=${d.current.change.cost_usd} />
        <${Headline} label="Satisfaction" value=${fmtPercent(d.current.current.satisfaction_rate)} delta=${d.current.change.satisfaction_rate} />
      </div>
      <div class="charts">
        <${CompareChart} id="chart-conversations" title="Conversations per day" current=${series(d.current, (p) => p.conversations)}
          previous=${series(d.previous, (p) => p.conversations)} summary=${`${d.current.current.conversations} in total, ${change(d.current.change.conversations)}`} />
        <${CompareChart} id="chart-messages" title="Visitor messages per day" current=${series(d.current, (p) => p.messages)}
          previous=${series(d.previous, (p) => p.messages)} summary=${`${d.current.current.messages} in total, ${change(d.current.change.messages)}`} />
        <${CompareChart} id="chart-deflection" title="Deflection per day (no handoff)" current=${series(d.current, deflection)}
          previous=${series(d.previous, deflection)} format=${(v) => fmtPercent(v)} summary=${`${fmtPercent(d.current.current.deflection_rate)} over the period, ${change(d.current.change.deflection_rate)}`} />
        <${CompareChart} id="chart-cost" title="Cost per day" current=${series(d.current, (p) => p.cost_usd)}
          previous=${series(d.previous, (p) => p.cost_usd)} format=${(v) => `$${Number(v).toFixed(3)}`} summary=${`${fmtMoney(d.current.current.cost_usd)} in total, ${change(d.current.change.cost_usd)}`} />
        <${CompareChart} id="chart-times" title="Reply time per day (median)" current=${series(d.current, (p) => p.reply_time_p50_ms)}
          previous=${series(d.previous, (p) => p.reply_time_p50_ms)} format=${(v) => `${Math.round(v)} ms`} summary=${responseSummary(d.current.current, d.previous.current)} />
      </div>
      <${Unanswered} data=${d.unanswered} />
      <${ThumbsDown} data=${d.feedback} />
    `}</${Loaded}>
  </${Page}>`;
}

/** The period's response times in words, beside the per-day chart. */
function responseSummary(current, previous) {
  if (current.reply_time_p50_ms === null) return "no replies in this period";
  const ms = (v) => `${Math.round(v)} ms`;
  return `median ${ms(current.reply_time_p50_ms)}, p95 ${ms(current.reply_time_p95_ms)}, first token p50 ${ms(current.ttft_p50_ms)}`
    + (previous.reply_time_p50_ms ? `; previously median ${ms(previous.reply_time_p50_ms)}` : "");
}

function Unanswered({ data }) {
  return html`<section class="card" aria-labelledby="unanswered-title">
    <h2 id="unanswered-title">Questions the bot could not answer</h2>
    ${data.clusters.length === 0 ? html`<${Empty} title="No unanswered questions">Every question in this period found an answer in the knowledge base.</${Empty}>`
      : html`<p class="hint">${data.total} unanswered questions, grouped. Add knowledge that answers the biggest groups.</p>
        <ol class="clusters">${data.clusters.map((c) => html`<li>
          <p><strong>${c.label}</strong> <span class="badge">${c.count}×</span> <span class="hint">last asked ${fmtDate(c.last_asked_at)}</span></p>
          <ul>${c.questions.slice(0, 5).map((q) => html`<li>${q.text}${q.count > 1 ? ` (${q.count}×)` : ""}</li>`)}</ul>
        </li>`)}</ol>`}
  </section>`;
}

function ThumbsDown({ data }) {
  return html`<section class="card" aria-labelledby="down-title">
    <h2 id="down-title">Replies rated not helpful</h2>
    ${data.data.length === 0 ? html`<${Empty} title="No thumbs-down replies">Nobody rated a reply as unhelpful in this period.</${Empty}>`
      : html`<ol class="rated">${data.data.map((r) => html`<li>
          <p class="hint">${fmtDate(r.rated_at)} · <a href=${`#/conversations/${r.chatbot_id}/${r.conversation_id}`}>open the conversation</a></p>
          <p><strong>Visitor:</strong> ${r.question}</p>
          <p><strong>Reply:</strong> ${r.answer}</p>
          ${r.comment ? html`<p><strong>Comment:</strong> ${r.comment}</p>` : null}
          ${r.citations.length ? html`<p class="hint">Sources: ${r.citations.map((c) => c.title).join(", ")}</p>` : null}
        </li>`)}</ol>`}
  </section>`;
}

