// The order page follows its order until it and the orders linked to it finish: status,
// progress, shop, attempts, and the orders it runs after and that run after it (a fan-in, live).
"use strict";

const page = document.getElementById("order");
const FINISHED = ["done", "dead", "expired", "cancelled"];

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  return td;
}

function historyRow(entry) {
  const row = document.createElement("tr");
  for (const key of ["attempt", "worker", "claimed", "started", "ended", "outcome", "error"]) row.append(cell(String(entry[key] ?? "")));
  return row;
}

function linkItem(other) {
  const item = document.createElement("li");
  const link = document.createElement("a");
  link.href = page.dataset.orderPage.replace("00000000-0000-0000-0000-000000000000", other.id);
  link.textContent = `${other.kind} ${other.id}`;
  const status = document.createElement("span");
  status.className = `status status-${other.status}`;
  status.textContent = other.status;
  item.append(link, " ", status);
  return item;
}

// Returns whether every linked order has finished.
function renderLinks(order) {
  const after = order.after || [], followedBy = order.followed_by || [];
  document.getElementById("order-links").hidden = !after.length && !followedBy.length;
  document.getElementById("order-after").replaceChildren(...after.map(linkItem));
  document.getElementById("order-followed-by").replaceChildren(...followedBy.map(linkItem));
  document.getElementById("order-waiting-for").textContent = order.status === "waiting"
    ? `Waiting for ${order.waiting_for} of ${after.length} to finish.` : "";
  return [...after, ...followedBy].every((other) => FINISHED.includes(other.status));
}

// The bar shows while the order runs and its run has reported progress.
function renderProgress(order) {
  const shown = order.status === "running" && order.progress;
  document.getElementById("order-progress").hidden = !shown;
  if (!shown) return;
  document.getElementById("order-progress-bar").value = order.progress.value;
  document.getElementById("order-progress-percent").textContent = `${Math.round(order.progress.value * 100)}%`;
  document.getElementById("order-progress-note").textContent = order.progress.note;
}

function render(order) {
  const status = document.getElementById("order-status");
  status.textContent = order.status;
  status.className = `status status-${order.status}`;
  document.getElementById("order-worker").textContent = order.worker || "–";
  document.getElementById("order-attempt").textContent = `${order.attempt} of ${order.max_attempts}`;
  renderProgress(order);
  document.getElementById("order-finished").textContent = order.finished_at || "–";
  document.getElementById("order-result").textContent = order.result === null ? "–" : JSON.stringify(order.result, null, 2);
  document.getElementById("order-error").textContent = order.error || "–";
  const rows = order.history.map(historyRow);
  if (order.status === "running") {
    rows.push(historyRow({ attempt: order.attempt, worker: order.worker, claimed: order.started_at, outcome: "running" }));
  }
  document.getElementById("history").replaceChildren(...rows);
  const cancel = document.getElementById("order-cancel");
  if (cancel) cancel.hidden = FINISHED.includes(order.status);
  const linksFinished = renderLinks(order);
  return FINISHED.includes(order.status) && linksFinished;
}

const cancelForm = document.getElementById("order-cancel");
if (cancelForm) {
  cancelForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = cancelForm.querySelector("[name=csrfmiddlewaretoken]").value;
    const response = await fetch(cancelForm.action, { method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": token } });
    const data = await response.json().catch(() => ({}));
    document.getElementById("order-cancel-note").textContent = response.ok ? data.message : (data.error || {}).message || "Not cancelled";
  });
}

async function follow() {
  const response = await fetch(page.dataset.url, { credentials: "same-origin" });
  if (response.ok && render(await response.json())) return;
  setTimeout(follow, 1000);
}

follow();
