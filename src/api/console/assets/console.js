// sluice console: polls /console/api/state and draws every stream with uPlot. Plain JavaScript
// (no framework, no build step); the daemon embeds this file (src/api/console/).
"use strict";

const POLL_MS = 3000;
const charts = new Map();   // stream name -> { card, plot }
let tapReader = null;

function bytes(n) {
  if (n == null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function rate(n) {
  if (n == null) return "–";
  return n >= 1000 ? `${(n / 1000).toFixed(1)}k` : n.toFixed(n < 10 ? 1 : 0);
}

function seconds(s) {
  if (s == null || s === 0) return "0 s";
  return s >= 120 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(1)} s`;
}

function newCard(stream) {
  const card = document.getElementById("stream-card").content.firstElementChild.cloneNode(true);
  card.dataset.stream = stream.name;
  card.querySelector(".name").textContent = stream.name;
  card.querySelector(".open-tap").addEventListener("click", () => openTap(stream.name));
  document.getElementById("streams").appendChild(card);
  const opts = {
    width: 520, height: 160,
    scales: { x: { time: true } },
    axes: [{}, { size: 50 }],
    series: [
      {},
      { label: "in/s", stroke: "#1f77b4", width: 1.5 },
      { label: "delivered/s", stroke: "#2ca02c", width: 1.5 },
      { label: "failed/s", stroke: "#d62728", width: 1.5 },
    ],
  };
  const plot = new uPlot(opts, [[], [], [], []], card.querySelector(".chart"));
  const entry = { card, plot };
  charts.set(stream.name, entry);
  return entry;
}

function render(stream) {
  const { card, plot } = charts.get(stream.name) || newCard(stream);
  const badge = card.querySelector(".badge");
  badge.textContent = stream.ready ? "ready" : "not ready";
  badge.className = `badge ${stream.ready ? "ready" : "not-ready"}`;
  card.querySelector(".route").textContent = `${stream.source} → ${stream.destinations.join(", ")}`;
  card.querySelector(".reason").textContent = stream.reason || "";
  const h = stream.history;
  const last = h.length ? h[h.length - 1] : {};
  card.querySelector(".in").textContent = rate(last.in_per_s);
  card.querySelector(".delivered").textContent = rate(last.delivered_per_s);
  card.querySelector(".failed").textContent = rate(last.failed_per_s);
  const fill = last.buffer_limit_bytes ? `${Math.round(100 * last.buffered_bytes / last.buffer_limit_bytes)} %` : "–";
  card.querySelector(".buffer").textContent = fill;
  card.querySelector(".wal").textContent = bytes(stream.wal_bytes);
  card.querySelector(".oldest").textContent = seconds(stream.oldest_undelivered_s);
  plot.setData([
    h.map((s) => s.at_ms / 1000),
    h.map((s) => s.in_per_s),
    h.map((s) => s.delivered_per_s),
    h.map((s) => s.failed_per_s),
  ]);
  const total = stream.errors_by_code.reduce((n, e) => n + e.count, 0);
  card.querySelector(".errors summary").textContent = `errors (${total})`;
  const rows = card.querySelector(".by-code tbody");
  rows.replaceChildren(...stream.errors_by_code.map((e) => {
    const tr = document.createElement("tr");
    for (const v of [e.error_output_type, e.code, e.count]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    return tr;
  }));
  const latest = card.querySelector(".latest");
  latest.replaceChildren(...stream.latest_errors.slice().reverse().map((e) => {
    const li = document.createElement("li");
    li.textContent = `${new Date(e.at_ms).toISOString()} ${e.code}: ${e.message} `;
    const code = document.createElement("code");
    code.textContent = e.data;
    li.appendChild(code);
    return li;
  }));
}

async function poll() {
  try {
    const r = await fetch("/console/api/state", { cache: "no-store" });
    if (!r.ok) throw new Error(`${r.status} ${await r.text()}`);
    const state = await r.json();
    const names = new Set(state.streams.map((s) => s.name));
    for (const [name, entry] of charts) {
      if (!names.has(name)) { entry.plot.destroy(); entry.card.remove(); charts.delete(name); }
    }
    state.streams.forEach(render);
    const notReady = state.streams.filter((s) => !s.ready).length;
    document.getElementById("summary").textContent =
      `${state.streams.length} stream${state.streams.length === 1 ? "" : "s"}, ${notReady} not ready · sluice ${state.version}`;
    document.getElementById("updated").textContent = `updated ${new Date(state.now_ms).toLocaleTimeString()}`;
  } catch (e) {
    document.getElementById("summary").textContent = `cannot reach the daemon: ${e.message}`;
  }
}

function openTap(name) {
  stopTap();
  document.getElementById("tap").hidden = false;
  document.getElementById("tap-stream").textContent = name;
  document.getElementById("tap-lines").textContent = "";
}

async function startTap() {
  stopTap();
  const name = document.getElementById("tap-stream").textContent;
  const stage = document.getElementById("tap-stage").value;
  const out = document.getElementById("tap-lines");
  out.textContent = "";
  const r = await fetch(`/console/api/tap/${encodeURIComponent(name)}?stage=${stage}&limit=200&rate=20`);
  if (!r.ok || !r.body) { out.textContent = `${r.status} ${await r.text()}`; return; }
  tapReader = r.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { done, value } = await tapReader.read().catch(() => ({ done: true }));
    if (done) break;
    out.textContent += decoder.decode(value, { stream: true });
    out.scrollTop = out.scrollHeight;
  }
}

function stopTap() {
  if (tapReader) { tapReader.cancel().catch(() => {}); tapReader = null; }
}

document.getElementById("tap-start").addEventListener("click", startTap);
document.getElementById("tap-stop").addEventListener("click", stopTap);
document.getElementById("tap-close").addEventListener("click", () => { stopTap(); document.getElementById("tap").hidden = true; });
poll();
setInterval(poll, POLL_MS);
