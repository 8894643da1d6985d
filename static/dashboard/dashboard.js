// The live dashboard: one websocket, a snapshot per change, every panel redrawn from it.
"use strict";

const $ = (id) => document.getElementById(id);
const canOperate = document.querySelector(".grid").dataset.canOperate === "true";
const csrfToken = document.querySelector("[name=csrfmiddlewaretoken]").value;
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"];
let socket = null;
let retryDelay = 500;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

// A shop keeps its colour whatever else joins or leaves: the colour comes from its name.
function colourOf(name) {
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length];
}

function time(iso) {
  return iso ? new Date(iso).toLocaleTimeString() : "–";
}

function statusBadge(status) {
  return el("span", { class: `status status-${status}` }, status);
}

function orderLink(order) {
  return el("a", { href: order.url, title: order.id }, order.id.slice(-8));
}

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST", body, credentials: "same-origin", headers: { "X-CSRFToken": csrfToken },
  });
  const data = await response.json().catch(() => ({}));
  return { ok: response.ok, data };
}

// --- panels ---------------------------------------------------------------------------

function renderCounts(summary) {
  $("status-counts").replaceChildren(...Object.entries(summary.by_status).map(([status, n]) =>
    el("div", { class: `count status-${status}`, "data-status": status },
      el("strong", {}, String(n)), el("span", {}, status))));
  $("priorities").replaceChildren(...(summary.queued_by_priority.length
    ? summary.queued_by_priority.map(([p, n]) => el("li", {}, `priority ${p}: ${n}`))
    : [el("li", {}, "nothing queued")]));
}

function renderSeries(target, points, since, now, asBars) {
  const chart = $(target);
  const start = Date.parse(since), span = Math.max(1, Date.parse(now) - start);
  const max = Math.max(1, ...points.map(([, v]) => v));
  const x = (iso) => (300 * (Date.parse(iso) - start)) / span;
  const y = (v) => 75 - (70 * v) / max;
  const shapes = asBars
    ? points.map(([at, v]) => svg("rect", { x: x(at), y: y(v), width: 16, height: 75 - y(v), class: "bar" }))
    : [svg("polyline", { points: points.map(([at, v]) => `${x(at)},${y(v)}`).join(" "), class: "line" })];
  const label = svg("text", { x: 2, y: 10, class: "axis" });
  label.textContent = `max ${max}`;
  chart.replaceChildren(...shapes, label);
}

function workerRow(worker) {
  const live = worker.status === "alive" || worker.status === "stopping";
  const action = canOperate && live
    ? el("button", { type: "button", class: "danger", "aria-label": `Force-fail ${worker.name}`, onclick: () => forceFail(worker) }, "Force-fail")
    : "";
  return el("tr", { "data-worker": worker.name },
    el("th", { scope: "row" }, el("span", { class: "swatch", style: `background:${colourOf(worker.name)}` }), worker.name),
    el("td", {}, statusBadge(worker.status)),
    el("td", { class: "incarnation" }, String(worker.incarnation)),
    el("td", {}, live ? `${worker.heartbeat_age.toFixed(1)} s ago` : "–"),
    el("td", {}, String(worker.running)), el("td", {}, String(worker.queued)),
    el("td", {}, String(worker.buckets)), el("td", {}, String(worker.done)), el("td", {}, action));
}

function queueRow(queue) {
  const served = queue.served_by.length ? queue.served_by.join(", ") : el("span", { class: "warning" }, "no shop serves this queue");
  const action = !canOperate ? "" : queue.paused
    ? el("button", { type: "button", onclick: () => act(queue.resume_url), "aria-label": `Resume queue ${queue.name}` }, "Resume")
    : el("button", { type: "button", class: "secondary", onclick: () => act(queue.pause_url), "aria-label": `Pause queue ${queue.name}` }, "Pause");
  const state = el("span", {}, queue.paused ? el("span", { class: "status status-paused", title: `by ${queue.paused_by || "someone"} at ${time(queue.paused_at)}` }, "paused") : "open",
    queue.limit ? el("small", { class: "limit" }, ` (${queue.limit})`) : "");
  return el("tr", { "data-queue": queue.name },
    el("th", { scope: "row" }, queue.name), el("td", {}, String(queue.queued)), el("td", {}, String(queue.running)),
    el("td", {}, String(queue.done_last_minute)), el("td", { class: "served-by" }, served),
    el("td", { class: "queue-state" }, state), el("td", {}, action));
}

function scheduleRow(schedule) {
  const actions = !canOperate ? "" : el("span", {},
    el("button", { type: "button", onclick: () => act(schedule.fire_url), "aria-label": `Fire schedule ${schedule.name} now` }, "Fire now"), " ",
    schedule.enabled
      ? el("button", { type: "button", class: "secondary", onclick: () => act(schedule.disable_url), "aria-label": `Disable schedule ${schedule.name}` }, "Disable")
      : el("button", { type: "button", class: "secondary", onclick: () => act(schedule.enable_url), "aria-label": `Enable schedule ${schedule.name}` }, "Enable"));
  const last = schedule.last_order_url ? el("a", { href: schedule.last_order_url }, time(schedule.last_fired_at)) : "never";
  return el("tr", { "data-schedule": schedule.name },
    el("th", { scope: "row" }, schedule.name), el("td", {}, schedule.when), el("td", {}, `${schedule.kind} → ${schedule.queue}`),
    el("td", { class: "schedule-next" }, schedule.enabled ? time(schedule.next_slot_at) : el("span", { class: "status status-paused" }, "disabled")),
    el("td", { class: "schedule-last" }, last), el("td", {}, actions));
}

function renderRing(ring) {
  const canvas = $("ring");
  const count = ring.buckets.length;
  if (canvas.childElementCount !== count) {
    canvas.replaceChildren(...ring.buckets.map((_, i) => {
      const angle = (2 * Math.PI * i) / count - Math.PI / 2;
      return svg("circle", { cx: (130 * Math.cos(angle)).toFixed(2), cy: (130 * Math.sin(angle)).toFixed(2), r: 3, "data-bucket": i });
    }));
  }
  const counts = {};
  ring.buckets.forEach((index, i) => {
    const owner = index >= 0 ? ring.owners[index] : "";
    counts[owner] = (counts[owner] || 0) + 1;
    const dot = canvas.children[i];
    if (dot.dataset.owner !== owner) {
      if (dot.dataset.owner !== undefined) dot.classList.add("moved");
      dot.dataset.owner = owner;
      dot.setAttribute("fill", owner ? colourOf(owner) : "#ccc");
      setTimeout(() => dot.classList.remove("moved"), 1500);
    }
  });
  $("ring-legend").replaceChildren(...Object.entries(counts).map(([owner, n]) =>
    el("li", { "data-owner": owner }, el("span", { class: "swatch", style: `background:${owner ? colourOf(owner) : "#ccc"}` }), `${owner || "unowned"}: ${n} buckets`)));
}

function renderEvents(events) {
  $("events").replaceChildren(...events.map((event) =>
    el("li", { class: `event event-${event.kind}` }, el("time", { datetime: event.at }, time(event.at)), " ",
      el("span", { class: "kind" }, event.kind.replace("_", "-")), " ", event.message)));
}

// A running order's last reported progress: a bar, the percentage, its note on hover.
function progressBar(order) {
  if (order.status !== "running" || !order.progress) return "";
  const { value, note } = order.progress;
  const percent = `${Math.round(value * 100)}%`;
  return el("span", { class: "progress", title: note },
    el("progress", { max: "1", value: String(value), "aria-label": note ? `${percent}: ${note}` : percent }), ` ${percent}`);
}

function orderRow(order) {
  return el("tr", { "data-order": order.id },
    el("td", {}, orderLink(order)), el("td", {}, order.kind), el("td", {}, order.queue), el("td", { class: "order-status" }, statusBadge(order.status)),
    el("td", { class: "order-progress" }, progressBar(order)), el("td", {}, String(order.priority)), el("td", {}, order.worker || "–"), el("td", {}, String(order.attempt)),
    el("td", {}, time(order.created_at)));
}

function deadRow(order) {
  const actions = canOperate ? el("span", {},
    el("button", { type: "button", onclick: () => act(order.retry_url), "aria-label": `Retry order ${order.id}` }, "Retry"), " ",
    el("button", { type: "button", class: "secondary", onclick: () => act(order.cancel_url), "aria-label": `Cancel order ${order.id}` }, "Cancel")) : "";
  return el("tr", { "data-order": order.id }, el("td", {}, orderLink(order)), el("td", {}, order.kind),
    el("td", { class: "error-text" }, order.error_summary || ""), el("td", {}, String(order.attempt)), el("td", {}, actions));
}

function render(data) {
  renderCounts(data.summary);
  renderSeries("depth-chart", data.charts.queue_depth, data.charts.since, data.charts.now, false);
  renderSeries("done-chart", data.charts.done_per_minute, data.charts.since, data.charts.now, true);
  $("workers").replaceChildren(...data.workers.map(workerRow));
  $("queues").replaceChildren(...data.queues.map(queueRow));
  $("schedules").replaceChildren(...(data.schedules.length ? data.schedules.map(scheduleRow)
    : [el("tr", {}, el("td", { colspan: 6 }, "No schedules: add one in the admin or in PIZZAQ_SCHEDULES."))]));
  renderRing(data.ring);
  renderEvents(data.events);
  $("orders").replaceChildren(...data.orders.map(orderRow));
  $("dead").replaceChildren(...(data.dead.length ? data.dead.map(deadRow) : [el("tr", {}, el("td", { colspan: 5 }, "No dead letters."))]));
}

// --- actions --------------------------------------------------------------------------

async function forceFail(worker) {
  if (!window.confirm(`Force-fail ${worker.name}? Its running orders move to other shops; the shop rejoins by itself after a few seconds.`)) return;
  const { ok, data } = await post(worker.fail_url);
  if (!ok) window.alert(data.error ? data.error.message : "Force-fail failed");
}

async function act(url) {
  const { ok, data } = await post(url);
  if (!ok) window.alert(data.error ? data.error.message : "That did not work");
}

$("place-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  form.querySelectorAll("[aria-invalid]").forEach((field) => field.removeAttribute("aria-invalid"));
  $("place-error").textContent = "";
  $("place-ok").textContent = "";
  const { ok, data } = await post(form.action, new FormData(form));
  if (ok) {
    $("place-ok").textContent = `Order ${data.id.slice(-8)} placed.`;
    return;
  }
  const problem = data.error || { message: "The order was not placed." };
  $("place-error").textContent = problem.message;
  const field = problem.field && form.querySelector(`[name=${problem.field}]`);
  if (field) {
    field.setAttribute("aria-invalid", "true");
    field.setAttribute("aria-describedby", "place-error");
    field.focus();
  }
});

$("order-filter").addEventListener("change", () => {
  const filter = { status: $("filter-status").value, kind: $("filter-kind").value, queue: $("filter-queue").value.trim() };
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ filter }));
});

// --- the websocket --------------------------------------------------------------------

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws/dashboard`);
  socket.onopen = () => { retryDelay = 500; $("connection").textContent = "live"; $("connection").className = "connection live"; };
  socket.onmessage = (message) => {
    const { type, data } = JSON.parse(message.data);
    if (type === "snapshot") render(data);
  };
  socket.onclose = (event) => {
    $("connection").className = "connection down";
    if (event.code === 4403) { $("connection").textContent = "not allowed"; return; }
    $("connection").textContent = "reconnecting…";
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 10000);
  };
}

connect();
