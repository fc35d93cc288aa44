"use strict";
// The console's pages. Data is only ever put into the page as text (textContent), never as HTML.
// The cloud decides what a role may do; these pages only hide the controls a role may not use.

const METRIC_LABELS = { cpu_percent: "CPU %", memory_percent: "Memory %", disk_used_percent: "Disk %" };
// The thin client's newest report (the protocol side), in the drill-down.
const EXPERIENCE_LABELS = {
  rtt_ms: "Round trip ms", input_latency_ms: "Input latency ms", frame_delay_ms: "Frame delay ms",
  fps: "Frames/s", bytes_down_per_s: "Down KiB/s", bytes_up_per_s: "Up KiB/s",
};
const PROCESS_ACTIONS = new Set(["end_process", "restart_app"]);
const RISKY = new Set([...PROCESS_ACTIONS, "log_off"]);
const ACTIONS = ["free_temp_space", "diagnostic_snapshot", "end_process", "restart_app", "log_off"];
const view = document.getElementById("view");
let me = null;
let socket = null;
const onSnapshot = [];
const history = new Map(); // pseudonym -> the last minute of CPU values, for the sparklines

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  };
  const reply = await fetch(path, init);
  if (reply.status === 401) location.assign("/login");
  const data = await reply.json().catch(() => ({}));
  return { ok: reply.ok, status: reply.status, data };
}

function problem(reply) {
  // The cloud answers {code, message}; the console itself {detail}.
  const detail = reply.data.message ?? reply.data.detail ?? reply.status;
  return typeof detail === "string" ? detail : JSON.stringify(detail);
}

function when(ns) {
  return new Date(ns / 1e6).toLocaleTimeString();
}

function badge(health) {
  return el("span", { class: `badge ${health}`, text: health });
}

function heat(value) {
  // Green through amber to red as a percentage rises.
  const v = Math.max(0, Math.min(100, value));
  const hue = 120 - (v * 1.2);
  return `hsl(${hue}, 70%, ${92 - v * 0.25}%)`;
}

function sparkline(values) {
  const canvas = el("canvas", { width: "120", height: "24", class: "spark" });
  const ctx = canvas.getContext("2d");
  ctx.strokeStyle = "#3a6fd8";
  ctx.beginPath();
  values.forEach((v, i) => {
    const x = (i / Math.max(1, values.length - 1)) * 118 + 1;
    const y = 23 - (Math.max(0, Math.min(100, v)) / 100) * 22;
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
  return canvas;
}

function connect() {
  const state = document.getElementById("live-state");
  socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/live`);
  socket.addEventListener("open", () => {
    state.textContent = "live";
    const watch = view.dataset.watch;
    if (watch) socket.send(JSON.stringify({ watch }));
  });
  socket.addEventListener("message", (event) => {
    const snapshot = JSON.parse(event.data);
    for (const s of snapshot.sessions) {
      const values = history.get(s.subject) || [];
      values.push(s.metrics.cpu_percent || 0);
      history.set(s.subject, values.slice(-60));
    }
    state.textContent = snapshot.error ? `cloud: ${snapshot.error}` : `live · ${new Date().toLocaleTimeString()}`;
    for (const listener of onSnapshot) listener(snapshot);
  });
  socket.addEventListener("close", () => {
    state.textContent = "reconnecting…";
    setTimeout(connect, 1000);
  });
}

// --- Fleet overview -------------------------------------------------------------------------------

function overview() {
  const counts = {};
  const cards = el("div", { class: "cards" });
  for (const health of ["ok", "warning", "critical"]) {
    counts[health] = el("div", { class: `n ${health}`, id: `health-${health}`, text: "0" });
    cards.append(el("div", { class: "card" }, counts[health], el("div", { text: `sessions ${health}` })));
  }
  const incidents = el("ul", { class: "list", id: "open-incidents" });
  const body = el("tbody");
  const grid = el("table", { id: "fleet-grid" },
    el("thead", {}, el("tr", {},
      el("th", { text: "Session" }), el("th", { text: "Health" }), el("th", { text: "CPU, last minute" }),
      ...Object.values(METRIC_LABELS).map((label) => el("th", { text: label })),
      el("th", { text: "Last sample" }))),
    body);
  view.append(el("h1", { text: "Fleet" }), cards, el("h2", { text: "Open incidents" }), incidents,
    el("h2", { text: "Sessions" }), grid);
  onSnapshot.push((snapshot) => {
    for (const health of Object.keys(counts)) {
      counts[health].textContent = String(snapshot.sessions.filter((s) => s.health === health).length);
    }
    incidents.replaceChildren(...(snapshot.incidents.length ? snapshot.incidents.map((i) => el("li", {},
      el("a", { href: `/incidents/${i.incident_id}`, text: i.title }), " ", badge(i.severity),
      el("span", { class: "muted", text: ` ${i.sessions.length} session(s) · since ${when(i.opened_ns)}` }),
    )) : [el("li", { class: "muted", text: "none" })]));
    body.replaceChildren(...snapshot.sessions.map((s) => el("tr", { "data-subject": s.subject },
      el("td", {}, el("a", { href: `/sessions/${s.subject}`, text: s.subject })),
      el("td", {}, badge(s.health)),
      el("td", {}, sparkline(history.get(s.subject) || [])),
      ...Object.keys(METRIC_LABELS).map((m) => {
        const value = s.metrics[m] ?? 0;
        return el("td", { class: "heat", style: `background:${heat(value)}`, text: value.toFixed(1) });
      }),
      el("td", { class: "muted", text: when(s.last_sample_ns) }),
    )));
  });
}

// --- Charts ---------------------------------------------------------------------------------------

function chart(container, title, names) {
  const palette = ["#3a6fd8", "#d8783a", "#2e9e5b", "#9b3ad8", "#c0262d", "#6b7280"];
  const opts = {
    title, width: Math.min(900, container.clientWidth || 900), height: 260,
    series: [{}, ...names.map((name, i) => ({ label: METRIC_LABELS[name] || name, stroke: palette[i % 6] }))],
    axes: [{}, {}],
  };
  return new uPlot(opts, [[], ...names.map(() => [])], container);
}

// --- Session drill-down ---------------------------------------------------------------------------

function sessionPage(subject) {
  view.dataset.watch = subject;
  const numbers = el("div", { class: "cards", id: "session-metrics" });
  const experience = el("div", { class: "cards", id: "session-experience" });
  const holder = el("div", { id: "session-chart", class: "panel" });
  const incidents = el("ul", { class: "list", id: "session-incidents" });
  view.append(el("h1", {}, "Session ", el("code", { id: "subject", text: subject })), numbers,
    el("h2", { text: "Thin client" }), experience, holder, el("h2", { text: "Open incidents" }), incidents);
  if (me.is_admin) view.append(revealPanel(subject));
  let plot = null;
  let names = "";
  onSnapshot.push((snapshot) => {
    const s = snapshot.sessions.find((x) => x.subject === subject);
    if (s) {
      numbers.replaceChildren(el("div", { class: "card" }, badge(s.health), el("div", { text: "health" })),
        ...Object.entries(s.metrics).map(([name, value]) =>
        el("div", { class: "card" }, el("div", { class: "n", text: value.toFixed(1) }),
          el("div", { text: METRIC_LABELS[name] || name }))));
      const figures = Object.entries(EXPERIENCE_LABELS).filter(([name]) => name in (s.experience || {}));
      experience.replaceChildren(...(figures.length ? figures.map(([name, label]) => {
        const value = name.startsWith("bytes_") ? s.experience[name] / 1024 : s.experience[name];
        return el("div", { class: "card" }, el("div", { class: "n", text: value.toFixed(1) }), el("div", { text: label }));
      }) : [el("p", { class: "muted", text: "No report from a thin client." })]));
    }
    incidents.replaceChildren(...snapshot.incidents
      .filter((i) => i.sessions.some((p) => p.subject === subject && p.active))
      .map((i) => el("li", {}, el("a", { href: `/incidents/${i.incident_id}`, text: i.title }), " ",
        badge(i.severity))));
    const series = snapshot.series;
    if (!series || series.subject !== subject) return;
    const metricNames = Object.keys(series.metrics).filter((n) => n.endsWith("_percent"));
    if (metricNames.join() !== names) {
      names = metricNames.join();
      holder.replaceChildren();
      plot = chart(holder, "Last 5 minutes", metricNames);
    }
    plot.setData([series.t, ...metricNames.map((n) => series.metrics[n])]);
  });
}

function revealPanel(subject) {
  const reason = el("input", { id: "reveal-reason", size: "50", placeholder: "Why (written to the audit log)" });
  const out = el("p", { id: "revealed" });
  const button = el("button", {
    id: "reveal", type: "button", text: "Reveal who this is",
    onclick: async () => {
      const reply = await api(`/api/ops/sessions/${subject}/reveal`, { reason: reason.value });
      out.textContent = reply.ok
        ? `User ${reply.data.user_id}, session ${reply.data.session_id} (audit entry ${reply.data.audit_seq})`
        : `Refused: ${problem(reply)}`;
    },
  });
  return el("div", { class: "panel", id: "reveal-panel" }, el("h2", { text: "Reveal (admins, audited)" }),
    reason, " ", button, out);
}

// --- Incident -------------------------------------------------------------------------------------

// The model's root cause, which must cite the incident's facts ("unknown" when they support none).
function analysisPanel(incidentId) {
  const path = `/api/ops/incidents/${incidentId}/analysis`;
  const out = el("div", { id: "analysis" });
  const panel = el("div", { class: "panel" }, el("h2", { text: "Root cause (language model)" }), out);
  function show(reply) {
    if (!reply.ok) {
      out.replaceChildren(el("p", { class: "muted", text: reply.status === 404 ? "Not asked yet." : problem(reply) }));
      return;
    }
    const found = reply.data;
    out.replaceChildren(
      el("p", { id: "analysis-cause", text: found.cause === "unknown"
        ? "Unknown: the evidence does not support a cause." : found.cause }),
      el("ul", { class: "list" }, ...found.cites.map((f) => el("li", { class: "muted", text: `${f.fact_id}: ${f.text}` }))),
      el("p", { class: "muted", text: `${found.model}${found.confidence ? ` · confidence ${found.confidence}` : ""}` }));
  }
  if (me.may_operate) {
    const ask = el("button", { type: "button", id: "analyse", text: "Explain with the model" });
    ask.addEventListener("click", async () => {
      ask.disabled = true;
      out.replaceChildren(el("p", { class: "muted", text: "Asking the model…" }));
      show(await api(path, {}));
      ask.disabled = false;
    });
    panel.append(ask);
  }
  return { panel, load: async () => show(await api(path)) };
}

async function incidentPage(incidentId) {
  const head = el("div", { id: "incident-head" });
  const explanation = el("p", { id: "explanation", class: "panel" });
  const holder = el("div", { id: "evidence-chart", class: "panel" });
  const affected = el("ul", { class: "list", id: "affected" });
  const similar = el("ul", { class: "list", id: "similar" });
  const remediations = el("ul", { class: "list", id: "remediations" });
  const approveError = el("p", { id: "approve-error", class: "critical" });
  const causes = el("ol", { class: "list", id: "causes" });
  const analysis = analysisPanel(incidentId);
  view.append(head, explanation, el("h2", { text: "Likely causes" }), causes, analysis.panel, holder,
    el("h2", { text: "Affected sessions" }), affected);
  if (me.may_operate) view.append(actionDialog(incidentId, () => refresh()));
  view.append(el("h2", { text: "Actions" }), remediations, approveError,
    el("h2", { text: "Has this happened before?" }), similar);
  let plot = null;
  let shownSubjects = "";

  async function refresh() {
    const reply = await api(`/api/ops/incidents/${incidentId}`);
    if (!reply.ok) { head.replaceChildren(el("h1", { text: `No incident ${incidentId}` })); return; }
    const incident = reply.data;
    head.replaceChildren(el("h1", { text: incident.title }), badge(incident.severity),
      el("span", { class: "muted", text: ` ${incident.rule} · opened ${when(incident.opened_ns)} · ${
        incident.resolved_ns ? `resolved ${when(incident.resolved_ns)}` : "open"}` }));
    explanation.textContent = incident.explanation;
    causes.replaceChildren(...(incident.causes.length
      ? incident.causes.map((c) => el("li", { text: c })) : [el("li", { class: "muted", text: "unknown" })]));
    affected.replaceChildren(...incident.sessions.map((p) => el("li", {},
      el("a", { href: `/sessions/${p.subject}`, text: p.subject }), " ",
      el("span", { class: p.active ? "critical" : "muted", text: p.active ? "active" : "over" }),
      el("span", { class: "muted", text: ` · peak ${p.peak.toFixed(1)} · ${p.explanation}` }))));
    const subjects = [...new Set(incident.evidence.map((e) => e.subject))];
    if (subjects.join() !== shownSubjects) {
      shownSubjects = subjects.join();
      holder.replaceChildren();
      plot = chart(holder, `Evidence: ${incident.evidence[0]?.metric || ""}`, subjects);
    }
    if (plot) {
      const times = [...new Set(incident.evidence.map((e) => e.t_ns))].sort((a, b) => a - b);
      const at = new Map(times.map((t, i) => [t, i]));
      const columns = subjects.map(() => times.map(() => null));
      for (const e of incident.evidence) columns[subjects.indexOf(e.subject)][at.get(e.t_ns)] = e.value;
      plot.setData([times.map((t) => t / 1e9), ...columns]);
    }
    const rems = await api(`/api/ops/incidents/${incidentId}/remediations`);
    remediations.replaceChildren(...(rems.ok && rems.data.remediations.length
      ? rems.data.remediations.map(remediationItem) : [el("li", { class: "muted", text: "none yet" })]));
  }

  analysis.load();

  async function earlier() { // once: what came before does not change while the page is open
    const reply = await api(`/api/ops/incidents/${incidentId}/similar`);
    similar.replaceChildren(...(reply.ok && reply.data.incidents.length
      ? reply.data.incidents.map((i) => el("li", {}, el("a", { href: `/incidents/${i.incident_id}`, text: i.title }),
        el("span", { class: "muted", text: ` · ${when(i.opened_ns)}` })))
      : [el("li", { class: "muted", text: "not that we know of" })]));
  }

  function remediationItem(r) {
    const status = r.status === "awaiting_approval" ? "waiting for approval" : r.status.replace("_", " ");
    const item = el("li", { "data-remediation": r.remediation_id },
      el("strong", { text: r.what }), " ", el("span", { class: "status", text: status }),
      el("span", { class: "muted", text: ` · requested by ${r.requested_by}${
        r.approved_by ? `, approved by ${r.approved_by}` : ""}` }));
    if (r.status === "awaiting_approval" && me.is_admin) {
      item.append(" ", el("button", {
        type: "button", class: "approve", text: "Approve",
        onclick: async () => {
          const reply = await api(`/api/ops/remediations/${r.remediation_id}/approve`, {});
          approveError.textContent = reply.ok ? "" : `Not approved: ${problem(reply)}`;
          refresh();
        },
      }));
    }
    return item;
  }

  await Promise.all([refresh(), earlier()]);
  let last = Date.now();
  onSnapshot.push(() => { if (Date.now() - last >= 2000) { last = Date.now(); refresh(); } });
}

function actionDialog(incidentId, done) {
  const actions = ACTIONS.filter((a) => me.is_admin || !RISKY.has(a));
  const action = el("select", { id: "action" }, ...actions.map((a) => el("option", { value: a, text: a })));
  const pid = el("input", { id: "pid", type: "number", min: "1", size: "8" });
  const executable = el("input", { id: "executable", size: "16" });
  const processFields = el("span", { id: "process-fields" },
    el("label", {}, "pid ", pid), el("label", {}, "executable ", executable));
  const result = el("p", { id: "dry-run-result" });
  const status = el("p", { id: "request-status" });
  const request = el("button", { id: "request", type: "button", text: "Request", disabled: "" });
  let planned = null;
  const body = (dryRun) => {
    const b = { action: action.value, dry_run: dryRun };
    if (PROCESS_ACTIONS.has(action.value)) { b.pid = Number(pid.value); b.executable = executable.value; }
    return b;
  };
  const reset = () => {
    processFields.hidden = !PROCESS_ACTIONS.has(action.value);
    request.setAttribute("disabled", "");
    planned = null;
    result.textContent = "";
  };
  for (const input of [action, pid, executable]) input.addEventListener("input", reset);
  const dry = el("button", {
    id: "dry-run", type: "button", text: "Dry run",
    onclick: async () => {
      const reply = await api(`/api/ops/incidents/${incidentId}/remediations`, body(true));
      if (!reply.ok) { result.textContent = `Refused: ${problem(reply)}`; return; }
      const reachable = reply.data.sessions.filter((s) => s.reachable).length;
      result.textContent = `Would ${reply.data.what} (${reachable} of ${reply.data.sessions.length} reachable)` +
        (RISKY.has(action.value) ? "; a second admin must approve it." : ".");
      planned = JSON.stringify(body(false));
      request.removeAttribute("disabled");
    },
  });
  request.addEventListener("click", async () => {
    if (planned !== JSON.stringify(body(false))) return; // changed since the dry run
    const reply = await api(`/api/ops/incidents/${incidentId}/remediations`, JSON.parse(planned));
    status.textContent = reply.ok
      ? (reply.data.status === "awaiting_approval" ? "Requested: waiting for approval by another admin."
        : `Requested: ${reply.data.status}.`)
      : `Refused: ${problem(reply)}`;
    request.setAttribute("disabled", "");
    done();
  });
  reset();
  return el("div", { class: "panel", id: "action-dialog" }, el("h2", { text: "Act on this incident" }),
    el("label", {}, "Action ", action), processFields, " ", dry, " ", request, result, status);
}

// --- Audit log and search -------------------------------------------------------------------------

async function auditPage() {
  const chain = el("p", { id: "chain" });
  const body = el("tbody");
  view.append(el("h1", { text: "Audit log" }), chain, el("table", { id: "audit" },
    el("thead", {}, el("tr", {}, ...["#", "When", "Who", "What", "Why", "Sessions", "Result"]
      .map((h) => el("th", { text: h })))), body));
  const reply = await api("/api/ops/audit?limit=500");
  if (!reply.ok) { chain.textContent = `Refused: ${reply.status}`; return; }
  chain.className = reply.data.intact ? "intact" : "broken";
  chain.textContent = reply.data.intact
    ? `Hash chain intact (${reply.data.entries.length} entries)` : `Hash chain BROKEN: ${reply.data.problem}`;
  body.replaceChildren(...reply.data.entries.map((e) => el("tr", {},
    el("td", { text: String(e.seq) }), el("td", { text: when(e.at_ns) }), el("td", { text: e.actor }),
    el("td", { text: e.action }), el("td", { text: e.reason }), el("td", { text: e.subjects.join(", ") }),
    el("td", { text: e.result.what || "" }))));
}

async function searchPage() {
  const params = new URLSearchParams(location.search);
  const q = el("input", { id: "q", size: "40", value: params.get("q") || "", placeholder: "disk, memory, chromium…" });
  const results = el("ul", { class: "list", id: "results" });
  const run = async () => {
    const reply = await api(`/api/ops/incidents?state=all&limit=100&q=${encodeURIComponent(q.value)}`);
    results.replaceChildren(...(reply.ok && reply.data.incidents.length ? reply.data.incidents.map((i) =>
      el("li", {}, el("a", { href: `/incidents/${i.incident_id}`, text: i.title }), " ", badge(i.severity),
        el("span", { class: "muted", text: ` · ${when(i.opened_ns)} · ${i.resolved_ns ? "resolved" : "open"}` })))
      : [el("li", { class: "muted", text: "no incident matches" })]));
  };
  const form = el("form", { id: "search-form", onsubmit: (event) => { event.preventDefault(); run(); } },
    q, " ", el("button", { id: "search", type: "submit", text: "Search" }));
  view.append(el("h1", { text: "Has this happened before?" }), form, results);
  if (q.value) await run();
}

// --- Start ----------------------------------------------------------------------------------------

async function main() {
  const reply = await api("/api/me");
  if (!reply.ok) return;
  me = reply.data;
  document.getElementById("who").textContent = `${me.username} (${me.role})`;
  document.getElementById("sign-out").addEventListener("click", async () => {
    await api("/api/logout", {});
    location.assign("/login");
  });
  const path = location.pathname;
  if (path.startsWith("/sessions/")) sessionPage(path.split("/")[2]);
  else if (path.startsWith("/incidents/")) await incidentPage(path.split("/")[2]);
  else if (path === "/audit") await auditPage();
  else if (path === "/search") await searchPage();
  else overview();
  connect();
}

main();
