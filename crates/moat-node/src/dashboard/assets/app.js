// Moat dashboard: the live parts of the overview page. Subscribes to /v1/events (the session
// cookie authenticates it) and adds rows as events arrive. Every value is set with
// textContent, never as HTML, so nothing an event carries can become markup or script.
"use strict";
(function () {
  const live = document.getElementById("live");
  if (!live) return;
  const MAX_ROWS = 100;
  const status = document.getElementById("live-status");
  const invocations = document.getElementById("live-invocations");
  const errors = document.getElementById("live-errors");
  const security = document.getElementById("security-events");
  const deploys = document.getElementById("live-deploys");

  function clock(ms) {
    return new Date(ms).toISOString().replace("T", " ").slice(0, 19);
  }

  function addRow(tbody, cls, cells) {
    if (!tbody) return;
    const empty = tbody.querySelector("tr.empty");
    if (empty) empty.remove();
    const tr = document.createElement("tr");
    tr.className = cls;
    for (const c of cells) {
      const td = document.createElement("td");
      td.textContent = c == null ? "" : String(c);
      tr.appendChild(td);
    }
    tbody.insertBefore(tr, tbody.firstChild);
    while (tbody.rows.length > MAX_ROWS) tbody.deleteRow(tbody.rows.length - 1);
  }

  function parse(e) {
    try {
      return JSON.parse(e.data);
    } catch (_) {
      return null;
    }
  }

  const source = new EventSource("/v1/events?types=" + encodeURIComponent(live.dataset.types));
  source.onopen = () => { status.textContent = "connected"; status.className = "ok"; };
  source.onerror = () => { status.textContent = "reconnecting…"; status.className = "error"; };

  source.addEventListener("invocation", (e) => {
    const v = parse(e);
    if (!v) return;
    const cells = [clock(v.at_ms), v.function || "(no route)", v.status, v.duration_ms, v.request_id];
    const cls = v.status >= 400 ? "error" : "ok";
    addRow(invocations, cls, cells);
    if (v.status >= 400) addRow(errors, "error", cells);
  });

  source.addEventListener("audit", (e) => {
    const v = parse(e);
    if (!v) return;
    if (v.outcome !== "denied" && v.outcome !== "failed" && v.outcome !== "detected") return;
    const details = v.details == null ? "" : JSON.stringify(v.details);
    addRow(security, v.outcome + " live", [
      "live", clock(v.at_ms), v.actor, v.action, v.target, v.outcome,
      v.function || "", v.source || "", v.request_id || "", details,
    ]);
  });

  source.addEventListener("deploy", (e) => {
    const v = parse(e);
    if (!v || !deploys) return;
    const empty = deploys.querySelector("li.empty");
    if (empty) empty.remove();
    const li = document.createElement("li");
    li.textContent = clock(v.at_ms) + " " + v.action + " " + v.function +
      (v.version == null ? "" : " → version " + v.version);
    deploys.insertBefore(li, deploys.firstChild);
  });

  source.addEventListener("lagged", (e) => {
    const v = parse(e);
    status.textContent = "behind: " + (v ? v.missed : "some") + " events were skipped";
    status.className = "error";
  });
})();
