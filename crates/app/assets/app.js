// Steward status page: one hand-written module, no dependencies.
//
// It reads the API (racks, components, runs, targets, history) with the token kept in
// sessionStorage, follows GET /v1/events/stream through fetch() (so the token travels as an
// Authorization header, never in a URL) and refreshes what each event touches, at most a few
// times a second. The fleet grid is one <canvas>, so 10,000 racks cost one element; every phase
// has a colour, a pattern and a text label. Views are chosen by the URL hash:
// #/ (fleet and runs), #/runs/ID, #/racks/ID, #/components/ID.

const PHASES = ["error", "unknown", "deleting", "initializing", "in_use", "ready"]; // worst first
const LABEL = { error: "ERR", unknown: "UNK", deleting: "DEL", initializing: "INIT", in_use: "USE", ready: "OK" };
const TARGET_STATUSES = ["completed", "submitted", "claimed", "blocked", "pending", "failed", "terminated", "skipped"];
const ACTIVE_TARGET = new Set(["claimed", "blocked", "submitted"]);
const TERMINAL_RUN = new Set(["completed", "completed_with_failures", "failed", "cancelled"]);
const TOKEN_KEY = "steward.token";
const REFRESH_MS = 300;

const state = {
  racks: [], // [{id, name, row}]
  components: new Map(), // id -> ComponentView
  runs: [],
  activeRacks: new Map(), // rack id -> run id acting on it
  targets: new Map(), // run id -> targets (for the open run and active runs)
  lastSeq: null,
  stats: { loadMs: null, lastUpdateMs: null, events: 0, racks: 0 },
  dirty: { all: false, racks: new Set(), runs: false },
  layout: null,
  ready: false,
};
window.steward = { state, drawnRackIds: () => (state.layout ? state.layout.cells.map((c) => c.rack.id) : []) };

// ---------- API ----------

class Unauthorized extends Error {}

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function api(path) {
  const response = await fetch(path, { headers: authHeaders() });
  if (response.status === 401) throw new Unauthorized();
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    throw new Error(problem.detail || `${path}: ${response.status}`);
  }
  return response.json();
}

const enc = encodeURIComponent;

// ---------- data ----------

function worstPhase(rackId) {
  let worst = PHASES.length - 1;
  let outOfService = 0;
  let count = 0;
  for (const c of componentsOf(rackId)) {
    count += 1;
    worst = Math.min(worst, Math.max(0, PHASES.indexOf(c.status.phase)));
    if (c.service_state !== "in_service") outOfService += 1;
  }
  return { phase: count ? PHASES[worst] : "unknown", outOfService, count };
}

const byRack = new Map(); // rack id -> Set of component ids
function componentsOf(rackId) {
  const ids = byRack.get(rackId) || new Set();
  return [...ids].map((id) => state.components.get(id)).filter(Boolean);
}

function storeComponents(list, rackId) {
  if (rackId) {
    for (const id of byRack.get(rackId) || []) state.components.delete(id);
    byRack.delete(rackId);
  }
  for (const c of list) {
    state.components.set(c.id, c);
    if (!byRack.has(c.rack_id)) byRack.set(c.rack_id, new Set());
    byRack.get(c.rack_id).add(c.id);
  }
}

async function loadAll() {
  const [racks, components] = await Promise.all([api("/v1/racks"), api("/v1/components")]);
  state.racks = racks.map((r) => ({ id: r.id, name: r.name || r.id, row: (r.location && r.location.row) || "—" }));
  state.components.clear();
  byRack.clear();
  storeComponents(components);
  state.stats.racks = state.racks.length;
  await loadRuns();
}

async function loadRuns() {
  state.runs = await api("/v1/runs");
  const active = state.runs.filter((r) => !TERMINAL_RUN.has(r.status));
  const open = currentRoute().run;
  const wanted = new Set(active.map((r) => r.id));
  if (open) wanted.add(open);
  const lists = await Promise.all([...wanted].map((id) => api(`/v1/runs/${enc(id)}/targets`).then((t) => [id, t])));
  state.targets = new Map(lists);
  state.activeRacks = new Map();
  for (const run of active) {
    for (const t of state.targets.get(run.id) || []) {
      if (ACTIVE_TARGET.has(t.status)) state.activeRacks.set(t.rack_id, run.id);
    }
  }
}

// ---------- live updates ----------

function collectIds(value, out) {
  if (Array.isArray(value)) {
    value.forEach((v) => collectIds(v, out));
  } else if (value && typeof value === "object") {
    for (const [key, v] of Object.entries(value)) {
      if (typeof v === "string" && (key === "rack_id" || key === "component_id")) out.push([key, v]);
      else collectIds(v, out);
    }
  }
  return out;
}

function onEvent(record) {
  state.lastSeq = record.seq;
  state.stats.events += 1;
  const text = `${record.kind} ${JSON.stringify(record.data)}`;
  if (text.includes("run")) state.dirty.runs = true;
  const ids = collectIds(record.data, []);
  let touched = false;
  for (const [key, id] of ids) {
    const rack = key === "rack_id" ? id : state.components.get(id) && state.components.get(id).rack_id;
    if (rack) { state.dirty.racks.add(rack); touched = true; }
  }
  if (!touched && !state.dirty.runs) state.dirty.all = true;
  scheduleRefresh(performance.now());
}

let refreshTimer = null;
let refreshing = false;
function scheduleRefresh(eventAt) {
  if (state.pendingSince == null) state.pendingSince = eventAt;
  if (refreshTimer || refreshing || !state.ready) return; // start() refreshes once loaded
  refreshTimer = setTimeout(refresh, REFRESH_MS);
}

async function refresh() {
  refreshTimer = null;
  refreshing = true;
  const since = state.pendingSince;
  state.pendingSince = null;
  const dirty = state.dirty;
  state.dirty = { all: false, racks: new Set(), runs: false };
  try {
    if (dirty.all || dirty.racks.size > 50) {
      storeComponents(await api("/v1/components"));
    } else {
      await Promise.all([...dirty.racks].map(async (rack) => storeComponents(await api(`/v1/components?rack=${enc(rack)}`), rack)));
    }
    if (dirty.runs || dirty.all) await loadRuns();
    await render();
    if (since != null) state.stats.lastUpdateMs = Math.round(performance.now() - since);
  } catch (error) {
    handleError(error);
  } finally {
    refreshing = false;
    if (state.pendingSince != null) scheduleRefresh(state.pendingSince);
  }
}

// Opened before the first load, so no event between that load and the stream is missed; after a
// reconnect everything is re-read, since events may have been missed while disconnected.
async function follow() {
  let connectedBefore = false;
  for (;;) {
    try {
      const headers = authHeaders();
      if (state.lastSeq != null) headers["Last-Event-ID"] = String(state.lastSeq);
      const response = await fetch("/v1/events/stream", { headers });
      if (response.status === 401) throw new Unauthorized();
      if (!response.ok || !response.body) throw new Error(`event stream: ${response.status}`);
      setConn("live", "live");
      if (connectedBefore) { state.dirty.all = true; state.dirty.runs = true; scheduleRefresh(performance.now()); }
      connectedBefore = true;
      await readStream(response.body);
    } catch (error) {
      if (error instanceof Unauthorized) { following = false; askToken(); return; }
    }
    setConn("reconnecting…", "down");
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function readStream(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (data) onEvent(JSON.parse(data));
    }
  }
}

// ---------- rendering helpers ----------

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null) continue;
    if (key === "class") node.className = value;
    else if (key === "style") node.style.cssText = value; // CSSOM: the CSP forbids style attributes
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child == null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const statusBadge = (status) => h("span", { class: `status ${status}` }, status.replace(/_/g, " "));
const phaseText = (phase) => h("span", { class: `phase ${phase}` }, `${LABEL[phase] || phase} · ${phase.replace(/_/g, " ")}`);
const when = (at) => (at ? new Date(at).toLocaleString() : "—");

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(`--${name}`).trim() || "#888";
}

// A pattern per phase on top of its colour, so phases stay distinguishable without colour.
function paintCell(ctx, x, y, size, phase) {
  ctx.fillStyle = cssVar(phase);
  ctx.fillRect(x, y, size, size);
  ctx.strokeStyle = "rgba(255,255,255,0.8)";
  ctx.fillStyle = "rgba(255,255,255,0.85)";
  ctx.lineWidth = Math.max(1, size / 10);
  ctx.beginPath();
  if (phase === "error") {
    ctx.moveTo(x, y); ctx.lineTo(x + size, y + size); ctx.moveTo(x + size, y); ctx.lineTo(x, y + size);
  } else if (phase === "initializing") {
    ctx.moveTo(x, y + size); ctx.lineTo(x + size, y);
  } else if (phase === "deleting") {
    ctx.moveTo(x, y + size / 2); ctx.lineTo(x + size, y + size / 2);
  } else if (phase === "unknown") {
    ctx.arc(x + size / 2, y + size / 2, Math.max(1, size / 6), 0, 2 * Math.PI);
    ctx.fill();
  } else if (phase === "in_use") {
    ctx.moveTo(x + size / 2, y); ctx.lineTo(x + size / 2, y + size);
  }
  ctx.stroke();
}

function legend() {
  return h("div", { class: "legend", "aria-label": "legend" },
    PHASES.map((phase) => {
      const swatch = h("canvas", { width: 14, height: 14 });
      paintCell(swatch.getContext("2d"), 0, 0, 14, phase);
      return h("span", {}, swatch, " ", phaseText(phase));
    }),
    h("span", {}, "■ black corner: components out of service"),
    h("span", {}, "□ outline: a run is acting on the rack"));
}

// ---------- fleet grid ----------

function layoutGrid(width) {
  const rows = new Map();
  for (const rack of state.racks) {
    if (!rows.has(rack.row)) rows.set(rack.row, []);
    rows.get(rack.row).push(rack);
  }
  const names = [...rows.keys()].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const widest = Math.max(1, ...[...rows.values()].map((r) => r.length));
  const labelWidth = 70;
  const gap = state.racks.length > 2000 ? 1 : 3;
  const size = Math.max(4, Math.min(56, Math.floor((width - labelWidth) / widest) - gap));
  const perLine = Math.max(1, Math.floor((width - labelWidth) / (size + gap)));
  const cells = [];
  const labels = [];
  let y = 0;
  for (const name of names) {
    const racks = rows.get(name);
    labels.push({ name, y, count: racks.length });
    racks.forEach((rack, i) => {
      cells.push({ rack, x: labelWidth + (i % perLine) * (size + gap), y: y + Math.floor(i / perLine) * (size + gap), size });
    });
    y += Math.ceil(racks.length / perLine) * (size + gap) + gap * 2;
  }
  return { cells, labels, height: Math.max(y, 20), width, size };
}

function drawGrid(canvas) {
  const width = canvas.parentElement.clientWidth || 800;
  const layout = layoutGrid(width);
  state.layout = layout;
  const ratio = window.devicePixelRatio || 1;
  canvas.width = width * ratio;
  canvas.height = layout.height * ratio;
  canvas.style.height = `${layout.height}px`;
  canvas.dataset.racks = String(layout.cells.length);
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.font = "12px system-ui, sans-serif";
  ctx.textBaseline = "top";
  for (const label of layout.labels) {
    ctx.fillStyle = "#5b6475";
    ctx.fillText(fitText(ctx, label.name, 64), 0, label.y + 2);
  }
  for (const cell of layout.cells) drawCell(ctx, cell);
}

function drawCell(ctx, cell) {
  const { phase, outOfService } = worstPhase(cell.rack.id);
  cell.phase = phase;
  cell.outOfService = outOfService;
  const { x, y, size } = cell;
  paintCell(ctx, x, y, size, phase);
  if (outOfService) {
    ctx.fillStyle = "#000";
    ctx.beginPath();
    ctx.moveTo(x + size, y); ctx.lineTo(x + size, y + size / 2.2); ctx.lineTo(x + size - size / 2.2, y);
    ctx.fill();
  }
  if (state.activeRacks.has(cell.rack.id)) {
    ctx.strokeStyle = "#000";
    ctx.lineWidth = Math.max(1, size / 12);
    ctx.strokeRect(x + 0.5, y + 0.5, size - 1, size - 1);
  }
  if (size >= 40) {
    ctx.fillStyle = "#fff";
    ctx.font = "bold 11px system-ui, sans-serif";
    ctx.fillText(LABEL[phase], x + 3, y + size - 14);
    ctx.font = "9px system-ui, sans-serif";
    ctx.fillText(fitText(ctx, cell.rack.name, size - 5), x + 3, y + 3);
    if (outOfService) ctx.fillText(`${outOfService}✕`, x + size - 16, y + size / 2);
  }
}

// The longest tail of `text` that fits `width` pixels (rack names differ at their end).
function fitText(ctx, text, width) {
  let shown = text;
  while (shown.length > 1 && ctx.measureText(shown).width > width) shown = shown.slice(1);
  return shown;
}

function cellAt(event, canvas) {
  if (!state.layout) return null;
  const rect = canvas.getBoundingClientRect();
  const px = event.clientX - rect.left;
  const py = event.clientY - rect.top;
  return state.layout.cells.find((c) => px >= c.x && px < c.x + c.size && py >= c.y && py < c.y + c.size) || null;
}

function gridCard() {
  const counts = {};
  const canvas = h("canvas", { id: "grid", role: "img" });
  const tooltip = h("div", { class: "tooltip" });
  canvas.addEventListener("mousemove", (event) => {
    const cell = cellAt(event, canvas);
    tooltip.style.display = cell ? "block" : "none";
    if (!cell) return;
    const run = state.activeRacks.get(cell.rack.id);
    tooltip.textContent = `${cell.rack.name} (row ${cell.rack.row})\n${cell.phase}` +
      (cell.outOfService ? `\n${cell.outOfService} out of service` : "") + (run ? `\nrun ${run}` : "");
    tooltip.style.left = `${event.clientX + 12}px`;
    tooltip.style.top = `${event.clientY + 12}px`;
  });
  canvas.addEventListener("mouseleave", () => { tooltip.style.display = "none"; });
  canvas.addEventListener("click", (event) => {
    const cell = cellAt(event, canvas);
    if (cell) location.hash = `#/racks/${enc(cell.rack.id)}`;
  });
  for (const rack of state.racks) {
    const { phase } = worstPhase(rack.id);
    counts[phase] = (counts[phase] || 0) + 1;
  }
  const summary = PHASES.filter((p) => counts[p]).map((p) => `${counts[p]} ${p.replace(/_/g, " ")}`).join(" · ");
  canvas.setAttribute("aria-label", `${state.racks.length} racks: ${summary}`);
  const card = h("div", { class: "card" },
    h("h2", {}, "Fleet"),
    h("p", { class: "muted", id: "fleet-summary" }, `${state.racks.length} racks · ${state.components.size} components · worst phase per rack: ${summary || "—"}`),
    legend(), canvas, tooltip);
  requestAnimationFrame(() => drawGrid(canvas));
  return card;
}

// ---------- runs ----------

function waveText(run) {
  const total = (run.waves || []).length;
  return total ? `wave ${run.current_wave || 0}/${total}` : "no waves";
}

function progressBar(counts) {
  const total = TARGET_STATUSES.reduce((sum, s) => sum + (counts[s] || 0), 0) || 1;
  return h("div", { class: "bar", role: "img", "aria-label": TARGET_STATUSES.map((s) => `${counts[s] || 0} ${s}`).join(", ") },
    TARGET_STATUSES.filter((s) => counts[s]).map((s) =>
      h("span", { class: s, style: `width:${(100 * counts[s]) / total}%`, title: `${counts[s]} ${s}` })));
}

function pausedNote(run) {
  if (run.status !== "paused") return null;
  const command = run.status_reason === "wave_gate" ? `steward run advance ${run.id}` : `steward run resume ${run.id}`;
  const why = run.status_message || run.status_reason.replace(/_/g, " ");
  return h("div", { class: "paused-note" },
    h("strong", {}, "Paused: "), h("span", { class: "reason" }, why), h("br"),
    run.status_reason === "wave_gate" ? "To open the next wave, run " : "To continue, run ",
    h("code", {}, command),
    run.status_reason === "wave_gate" ? "." : " (after fixing the cause).");
}

function runSummary(run) {
  const counts = run.counts || {};
  const done = (counts.completed || 0) + (counts.skipped || 0) + (counts.failed || 0) + (counts.terminated || 0);
  const total = TARGET_STATUSES.reduce((sum, s) => sum + (counts[s] || 0), 0);
  return h("div", { class: "run", "data-run": run.id, "data-status": run.status },
    h("div", { class: "title" },
      h("a", { href: `#/runs/${enc(run.id)}` }, run.name || run.id), statusBadge(run.status),
      h("span", { class: "muted" }, `${opText(run.operation)} · ${waveText(run)} · `),
      h("span", { class: "progress" }, `${done}/${total} done`)),
    run.status_reason && run.status_reason !== "none" && run.status !== "paused"
      ? h("div", { class: "muted" }, `reason: ${run.status_message || run.status_reason}`) : null,
    pausedNote(run),
    progressBar(counts),
    h("div", { class: "counts" }, TARGET_STATUSES.filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`).join(" · ")));
}

function opText(op) {
  if (!op) return "";
  return op.kind === "firmware_update" ? `firmware ${op.version}` : op.kind.replace(/_/g, " ");
}

function runsCard() {
  return h("div", { class: "card", id: "runs" }, h("h2", {}, "Runs"),
    state.runs.length ? state.runs.map(runSummary) : h("p", { class: "muted" }, "No runs yet."));
}

function runDetail(id, gateFilter) {
  const run = state.runs.find((r) => r.id === id);
  if (!run) return h("div", { class: "card" }, h("p", {}, `Run ${id} not found.`));
  const targets = state.targets.get(id) || [];
  const gates = [...new Set(targets.filter((t) => t.hold).map((t) => t.hold.gate))].sort();
  const shown = targets.filter((t) => !gateFilter || (t.hold && t.hold.gate === gateFilter));
  const select = h("select", { id: "gate-filter", onchange: (e) => { location.hash = `#/runs/${enc(id)}${e.target.value ? `?gate=${enc(e.target.value)}` : ""}`; } },
    h("option", { value: "" }, "all targets"),
    gates.map((g) => { const o = h("option", { value: g }, `held by ${g}`); if (g === gateFilter) o.selected = true; return o; }));
  const limit = 1000;
  return h("div", { class: "card", id: "run-detail" },
    runSummary(run),
    h("h3", {}, "Targets ", h("label", {}, "filter: ", select)),
    h("table", {},
      h("thead", {}, h("tr", {}, ["rack", "wave", "status", "attempt", "hold gate", "hold message", "held since", "last message"].map((c) => h("th", {}, c)))),
      h("tbody", {}, shown.slice(0, limit).map((t) => h("tr", { "data-target": t.id },
        h("td", {}, h("a", { href: `#/racks/${enc(t.rack_id)}` }, t.rack_id)), h("td", {}, t.wave),
        h("td", {}, statusBadge(t.status)), h("td", {}, t.attempt),
        h("td", {}, t.hold ? t.hold.gate : ""), h("td", {}, t.hold ? t.hold.message : ""),
        h("td", {}, t.hold ? when(t.hold.since) : ""), h("td", { class: "muted" }, t.message || ""))))),
    shown.length > limit ? h("p", { class: "muted" }, `${shown.length - limit} more targets not shown; filter by gate.`) : null);
}

// ---------- racks and components ----------

async function rackDetail(id) {
  const rack = await api(`/v1/racks/${enc(id)}`);
  return h("div", { class: "card", id: "rack-detail" },
    h("h2", {}, `Rack ${rack.name || rack.id}`),
    h("p", { class: "muted" }, `row ${(rack.location && rack.location.row) || "—"} · ${rack.components.length} components`),
    componentTable(rack.components));
}

function componentTable(components) {
  return h("table", {},
    h("thead", {}, h("tr", {}, ["component", "kind", "phase", "raw reason", "blocked", "service state", "firmware"].map((c) => h("th", {}, c)))),
    h("tbody", {}, components.map((c) => h("tr", {},
      h("td", {}, h("a", { href: `#/components/${enc(c.id)}` }, c.name || c.id)), h("td", {}, c.kind),
      h("td", {}, phaseText(c.status.phase)), h("td", { class: "mono" }, c.status.reason),
      h("td", {}, c.status.blocked_operations.join(", ") || "—"), h("td", {}, c.service_state),
      h("td", {}, c.firmware_version || "—")))));
}

async function componentDetail(id) {
  const [c, history] = await Promise.all([api(`/v1/components/${enc(id)}`), api(`/v1/components/${enc(id)}/history`)]);
  return h("div", { class: "card", id: "component-detail" },
    h("h2", {}, `Component ${c.name || c.id}`),
    h("dl", { class: "kv" },
      h("dt", {}, "rack"), h("dd", {}, h("a", { href: `#/racks/${enc(c.rack_id)}` }, c.rack_id)),
      h("dt", {}, "kind"), h("dd", {}, c.kind),
      h("dt", {}, "phase"), h("dd", { id: "component-phase" }, phaseText(c.status.phase)),
      h("dt", {}, "raw reason"), h("dd", { class: "mono" }, c.status.reason),
      h("dt", {}, "blocked operations"), h("dd", {}, c.status.blocked_operations.join(", ") || "none"),
      h("dt", {}, "service state"), h("dd", { id: "service-state" }, c.service_state),
      h("dt", {}, "firmware"), h("dd", {}, c.firmware_version || "—"),
      h("dt", {}, "power"), h("dd", {}, c.power_state || "—")),
    h("h3", {}, "Service-state history"),
    history.length
      ? h("table", { id: "history" },
        h("thead", {}, h("tr", {}, ["at", "from", "to", "by", "note"].map((x) => h("th", {}, x)))),
        h("tbody", {}, history.map((e) => h("tr", {}, h("td", {}, when(e.at)), h("td", {}, e.from), h("td", {}, e.to), h("td", {}, e.initiator), h("td", {}, e.note || "")))))
      : h("p", { class: "muted", id: "history" }, "No service-state changes yet."));
}

// ---------- routing, auth, status line ----------

function currentRoute() {
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query || "");
  if (parts[0] === "runs" && parts[1]) return { run: parts[1], gate: params.get("gate") || "" };
  if (parts[0] === "racks" && parts[1]) return { rack: parts[1] };
  if (parts[0] === "components" && parts[1]) return { component: parts[1] };
  return {};
}

async function render() {
  const route = currentRoute();
  let content;
  if (route.run) {
    if (!state.targets.has(route.run)) await loadRuns();
    content = runDetail(route.run, route.gate);
  } else if (route.rack) {
    content = await rackDetail(route.rack);
  } else if (route.component) {
    content = await componentDetail(route.component);
  } else {
    content = h("div", { class: "layout" }, gridCard(), runsCard());
  }
  document.getElementById("view").replaceChildren(content);
  showStats();
}

function showStats() {
  const s = state.stats;
  document.getElementById("stats").textContent =
    `${s.racks} racks · loaded in ${s.loadMs ?? "…"} ms (API ${s.fetchMs ?? "…"}, drawing ${s.drawMs ?? "…"}) · last update ${s.lastUpdateMs ?? "—"} ms after its event · ${s.events} events seen`;
}

function setConn(text, cls) {
  const conn = document.getElementById("conn");
  conn.textContent = text;
  conn.className = `conn ${cls}`;
}

function askToken() {
  document.getElementById("login").hidden = false;
  document.getElementById("view").replaceChildren();
  setConn("token needed", "down");
}

function handleError(error) {
  if (error instanceof Unauthorized) {
    if (sessionStorage.getItem(TOKEN_KEY)) {
      sessionStorage.removeItem(TOKEN_KEY);
      document.getElementById("login-error").textContent = "That token was refused.";
    }
    askToken();
    return;
  }
  document.getElementById("view").replaceChildren(h("div", { class: "card error" }, `Error: ${error.message}`));
}

let following = false;
async function start() {
  const started = performance.now();
  try {
    await api("/v1/runs"); // fails fast with 401 before the stream and the big reads start
    if (!following) { following = true; follow(); }
    await loadAll();
  } catch (error) {
    handleError(error);
    return;
  }
  const fetched = performance.now();
  document.getElementById("login").hidden = true;
  document.getElementById("forget").hidden = !sessionStorage.getItem(TOKEN_KEY);
  await render();
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
  const drawn = performance.now();
  Object.assign(state.stats, { loadMs: Math.round(drawn - started), fetchMs: Math.round(fetched - started), drawMs: Math.round(drawn - fetched) });
  state.ready = true;
  showStats();
  if (state.pendingSince != null) scheduleRefresh(state.pendingSince);
}

document.getElementById("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
  document.getElementById("token").value = "";
  document.getElementById("login-error").textContent = "";
  start();
});
document.getElementById("forget").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
});
window.addEventListener("hashchange", () => { render().catch(handleError); });
let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => { const c = document.getElementById("grid"); if (c) drawGrid(c); }, 150);
});
start();
