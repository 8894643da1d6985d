// The order page follows its order until it finishes: status, shop, attempts.
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

function render(order) {
  const status = document.getElementById("order-status");
  status.textContent = order.status;
  status.className = `status status-${order.status}`;
  document.getElementById("order-worker").textContent = order.worker || "–";
  document.getElementById("order-attempt").textContent = `${order.attempt} of ${order.max_attempts}`;
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
  return FINISHED.includes(order.status);
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
