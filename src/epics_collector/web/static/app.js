// The dashboard page: a websocket of updates, uPlot plots, a status line per device,
// a history browser at its channel, and control buttons (when the server allows them).
"use strict";
const MAX_POINTS = 300;            // points per live trace (as the server keeps)
const SEVERITY = ["", "MINOR", "MAJOR", "INVALID"];
const COLOURS = ["#1f5fbf", "#e0b000", "#d00000", "#c000c0"];
const traces = {};                 // key -> {t: [], v: [], s: []}
const meta = {};                   // key -> {label, device, units, precision}
window.__plots = {};               // key -> uPlot (read by tests)
window.__errors = [];              // every error the page met (read by tests)
let allowControl = false;

// Errors: every one is shown on the page, none is only in the console.
function showError(text) {
  window.__errors.push(text);
  const box = document.getElementById("error");
  box.textContent = text;
}
window.addEventListener("error", event => showError(`page error: ${event.message}`));
window.addEventListener("unhandledrejection", event => showError(`page error: ${event.reason}`));

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function fmt(value, precision) {  // as the source's PREC says, else 6 significant digits
  if (value === null || value === undefined) return "";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(precision) && Math.abs(value) < 1e15) return value.toFixed(precision);
  return String(Number(value.toPrecision(6)));
}

function withUnits(value, info) {
  return info && info.units ? `${fmt(value, info.precision)} ${info.units}` : fmt(value, info && info.precision);
}

// Control requests carry the token of this page (another site's page cannot read it).
const TOKEN = (document.querySelector('meta[name="dashboard-token"]') || {}).content || "";

async function request(url, options) {  // JSON reply, or an Error with the server's reason
  if (options && options.method === "POST") {
    options.headers = Object.assign({}, options.headers || {}, { "X-Dashboard-Token": TOKEN });
  }
  const reply = await fetch(url, options);
  let body;
  try { body = await reply.json(); } catch (e) { body = { detail: `${reply.status} ${reply.statusText}` }; }
  if (!reply.ok) throw new Error(body.detail || `${reply.status}`);
  return body;
}

async function act(name, action) {
  let url = `/api/devices/${encodeURIComponent(name)}/${action}`;
  const file = document.querySelector(`#dev-${CSS.escape(name)} input.export-name`);
  if (action === "export" && file && file.value.trim()) {
    url += "?file=" + encodeURIComponent(file.value.trim());
  }
  const note = document.getElementById("note");
  try {
    const body = await request(url, { method: "POST" });
    note.textContent = `${name}: ${action} -> ${body.result}`;
  } catch (error) {
    note.textContent = `${name}: ${action} refused: ${error.message}`;
  }
}

async function setParam(name, param, value) {
  const note = document.getElementById("note");
  try {
    await request(`/api/devices/${encodeURIComponent(name)}/param`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: param, value: value }),
    });
    note.textContent = `${name}: ${param} = ${value}`;
  } catch (error) {
    note.textContent = `${name}: ${param} refused: ${error.message}`;
  }
}

const READ_ONLY = "read-only dashboard: start it with --allow-control to use this";

function controlled(node) {  // disabled, and saying why, unless the server allows control
  node.disabled = !allowControl;
  node.title = allowControl ? "" : READ_ONLY;
  node.classList.add("control");
  return node;
}

function deviceBox(info) {
  const id = "dev-" + info.name;
  let box = document.getElementById(id);
  if (!box) {
    box = el("div", { id: id, class: "device", "data-type": info.type, "data-prefix": info.prefix });
    const title = el("h2");
    title.append(el("span", {}, `${info.name} (${info.type}) `), el("span", { class: "state" }));
    box.append(title, el("div", { class: "status" }));
    if (info.type === "collector") {
      for (const action of ["start", "stop", "export"]) {
        const button = controlled(el("button", { "data-action": action }, action));
        button.onclick = () => act(info.name, action);
        box.append(button);
      }
      box.append(controlled(el("input", { class: "export-name", size: 24,
                                          placeholder: "export file (default: name-time.nxs)" })));
    }
    if (info.type === "processing") {
      const form = el("form", { class: "param" });
      const pname = el("select", { class: "param-name" });
      const pvalue = controlled(el("input", { placeholder: "value", size: 16 }));
      const submit = controlled(el("button", { type: "submit" }, "set"));
      controlled(pname);
      form.onsubmit = e => { e.preventDefault(); setParam(info.name, pname.value, pvalue.value); };
      form.append(pname, pvalue, submit);
      box.append(form);
    }
    box.append(el("div", { class: "traces" }));
    document.getElementById("devices").append(box);
  }
  for (const node of box.querySelectorAll(".control")) {
    node.disabled = !allowControl;
    node.title = allowControl ? "" : READ_ONLY;
  }
  const select = box.querySelector("select.param-name");
  if (select && select.options.length !== (info.params || []).length) {
    select.replaceChildren(...(info.params || []).map(p => el("option", { value: p }, p)));
  }
  box.querySelector(".state").textContent = info.state;
  showStatus(box, info);
  return box;
}

function showStatus(box, info) {  // State, counters, Message: each with its alarm colour
  const line = box.querySelector(".status");
  const items = [];
  let worst = 0;
  for (const [name, entry] of Object.entries(info.status || {})) {
    const severity = entry.severity || 0;
    worst = Math.max(worst, severity);
    const text = `${name}: ${entry.value}` + (severity ? ` (${SEVERITY[severity]})` : "");
    items.push(el("span", { class: `sev-${severity}`, "data-pv": name, "data-severity": severity }, text));
  }
  if (info.problem) items.push(el("span", { class: "problem" }, info.problem));
  line.replaceChildren(...items);
  box.classList.remove("sev-0", "sev-1", "sev-2", "sev-3");
  box.classList.add(`sev-${worst}`);
  box.setAttribute("data-severity", String(worst));
}

function plotOptions(info, width, height) {
  const alarm = severity => ({
    label: SEVERITY[severity], stroke: COLOURS[severity], paths: () => null,
    points: { show: true, size: 7, width: 1, stroke: COLOURS[severity], fill: COLOURS[severity] },
  });
  const ticks = Number.isInteger(info.precision)
    ? { values: (u, splits) => splits.map(v => fmt(v, info.precision)) } : {};
  return {
    width: width, height: height,
    scales: { x: { time: true } },   // seconds since 1970, shown in local time
    series: [
      {},
      { label: info.label, stroke: COLOURS[0], width: 1.5, spanGaps: false,
        points: { show: false }, value: (u, v) => (v === null ? "gap" : withUnits(v, info)) },
      alarm(1), alarm(2), alarm(3),
    ],
    axes: [{}, { label: info.units || "", size: 64, ...ticks }],
    legend: { show: false },
  };
}

function plotData(trace) {  // [times, values, then the values in each alarm, else null]
  const only = severity => trace.v.map((v, i) => (trace.s[i] === severity ? v : null));
  return [trace.t, trace.v, only(1), only(2), only(3)];
}

function traceBox(box, key, info, device) {
  let holder = box.querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (!holder) {
    holder = el("div", { class: "trace", "data-key": key });
    const title = el("div", { class: "label" }, info.label + " ");
    title.append(el("span", { class: "units" }, info.units ? `[${info.units}] ` : ""));
    if (device.type === "collector") {  // its whole recording, binned on the device
      const open = el("button", { class: "open-history" }, "history");
      open.onclick = () => browse(device.name, info.label, key, holder);
      title.append(open);
    }
    const area = el("div", { class: "plot" });
    holder.append(title, area, el("div", { class: "empty" }));
    box.querySelector(".traces").append(holder);
    window.__plots[key] = new uPlot(plotOptions(info, 440, 170), plotData(traces[key]), area);
    holder.setAttribute("data-units", info.units || "");
  }
  return holder;
}

// A plot with no point yet says so, and why, rather than stay a blank area.
function showEmpty(holder, trace, device) {
  const empty = trace.t.length === 0;
  holder.classList.toggle("no-data", empty);
  if (!empty) return;
  const why = device.type !== "collector" ? "waiting for the first output"
    : device.state === "Recording" ? "waiting for the first update"
    : "not recording. Press start, or run: epics-collector start " + device.name;
  holder.querySelector(".empty").textContent = `no data yet: ${why}`;
}

// The history browser: pan and zoom over a whole recording, in a panel at its channel.
// Each view asks the device for as many minmax bins as the plot has pixels, so a line
// never hides a spike and the page never holds more than a view's worth of points.
// Views stay inside the recording: the page never asks for time past the newest row.
const view = { device: "", alias: "", key: "", path: "", start: null, end: null, first: null,
               last: null, seq: 0, plot: null };

// A live collector's channel (path: /api/history/NAME/ALIAS), or a retired recording's
// (/api/recordings/ID/ALIAS: read through the factory).
function browse(device, alias, key, holder, path) {
  path = path || `/api/history/${encodeURIComponent(device)}/${encodeURIComponent(alias)}`;
  Object.assign(view, { device, alias, key, path, start: null, end: null, first: null, last: null });
  const panel = document.getElementById("browser");
  holder.after(panel);  // at its channel
  panel.hidden = false;
  document.getElementById("browser-title").textContent = `${device}: ${alias} (history)`;
  loadView();
  panel.scrollIntoView({ block: "nearest" });
}

function closeBrowser() {
  view.seq++;  // a view still loading is not drawn
  document.getElementById("browser").hidden = true;
  document.body.append(document.getElementById("browser"));
}

function timeLabel(seconds, span) {  // one line per tick: the date is in the range above
  const d = new Date(seconds * 1000);
  if (span > 2 * 86400) return d.toLocaleDateString([], { month: "short", day: "numeric" });
  const hms = { hour: "2-digit", minute: "2-digit", second: span < 600 ? "2-digit" : undefined,
                hourCycle: "h23" };
  return d.toLocaleTimeString([], hms);
}

function browserOptions(info, width) {
  const alarm = severity => ({
    label: SEVERITY[severity], stroke: COLOURS[severity], paths: () => null,
    points: { show: true, size: 6, width: 1, stroke: COLOURS[severity], fill: COLOURS[severity] },
  });
  return {
    width: width, height: 260,
    scales: { x: { time: true } },
    series: [
      {},
      { label: "mean", stroke: COLOURS[0], width: 1, spanGaps: false,
        value: (u, v) => withUnits(v, info) },
      { label: "min", stroke: "#9ab", width: 0.5, spanGaps: false, value: (u, v) => withUnits(v, info) },
      { label: "max", stroke: "#9ab", width: 0.5, spanGaps: false, value: (u, v) => withUnits(v, info) },
      alarm(1), alarm(2), alarm(3),   // bins whose worst row was in alarm, in its colour
    ],
    bands: [{ series: [3, 2], fill: "rgba(31, 95, 191, 0.15)" }],
    axes: [{ space: 80, values: (u, splits) => splits.map(v => timeLabel(v, u.scales.x.max - u.scales.x.min)) },
           { label: info.units || "", size: 64 }],
    legend: { show: false },
  };
}

// The bins as plot columns. Bins with no sample are left out by the device: where one is
// missing (a gap in the recording), a null is put in, so no line is drawn across it.
function browserData(body) {
  const t = body.time, step = Math.min(...t.slice(1).map((x, i) => x - t[i]));
  const columns = [[], [], [], [], [], [], []];
  for (let i = 0; i < t.length; i++) {
    if (i > 0 && t[i] - t[i - 1] > 1.5 * step) {
      const middle = (t[i] + t[i - 1]) / 2;
      columns.forEach((c, k) => c.push(k === 0 ? middle : null));
    }
    const severity = (body.severity || [])[i] || 0;
    columns[0].push(t[i]); columns[1].push(body.value[i]);
    columns[2].push(body.min[i]); columns[3].push(body.max[i]);
    for (const s of [1, 2, 3]) columns[3 + s].push(severity === s ? body.value[i] : null);
  }
  return columns;
}

async function loadView() {
  const holder = document.getElementById("browser-plot");
  const seq = ++view.seq;
  const width = Math.max(holder.clientWidth || 800, 200);
  const query = new URLSearchParams({ points: String(width) });
  if (view.start !== null) query.set("start", String(view.start));
  if (view.end !== null) query.set("end", String(view.end));
  holder.setAttribute("data-loading", "1");
  let body;
  try {
    body = await request(`${view.path}?${query}`);
  } catch (error) {
    if (seq === view.seq) {
      holder.removeAttribute("data-loading");
      document.getElementById("note").textContent = `history: ${error.message}`;
    }
    return;
  }
  if (seq !== view.seq) return;  // a newer view was asked for meanwhile
  holder.removeAttribute("data-loading");
  if (view.first === null && body.time.length) {  // the whole recording: remember its span
    const half = body.time.length > 1 ? (body.time[1] - body.time[0]) / 2 : 0;
    view.first = body.time[0] - half; view.last = body.time[body.time.length - 1] + half;
    view.start = view.first; view.end = view.last;
  }
  const finite = xs => xs.filter(x => x !== null);
  holder.setAttribute("data-start", String(view.start));
  holder.setAttribute("data-end", String(view.end));
  holder.setAttribute("data-bins", String(body.time.length));
  holder.setAttribute("data-min", String(Math.min(...finite(body.min))));
  holder.setAttribute("data-max", String(Math.max(...finite(body.max))));
  holder.setAttribute("data-samples", String(body.count.reduce((a, b) => a + b, 0)));
  document.getElementById("browser-range").textContent =
    `${new Date(view.start * 1000).toLocaleString()} to ${new Date(view.end * 1000).toLocaleString()}: ` +
    `${body.time.length} bins of ${body.recorded} samples recorded`;
  if (view.plot) view.plot.destroy();
  const columns = browserData(body);
  holder.setAttribute("data-gap-breaks", String(columns[1].filter((v, i) => v === null && columns[2][i] === null).length));
  holder.setAttribute("data-alarm-bins", String((body.severity || []).filter(s => s > 0).length));
  view.plot = new uPlot(browserOptions(meta[view.key] || {}, width), columns, holder);
  view.plot.setScale("x", { min: view.start, max: view.end });
  window.__plots.browser = view.plot;
}

function clamp() {  // keep the view inside the recording (no time past the newest row)
  const span = view.end - view.start, whole = view.last - view.first;
  if (span >= whole) { view.start = view.first; view.end = view.last; return; }
  if (view.start < view.first) { view.start = view.first; view.end = view.first + span; }
  if (view.end > view.last) { view.end = view.last; view.start = view.last - span; }
}

function zoom(factor, at) {  // factor < 1 zooms in around time `at` (default: the middle)
  if (view.start === null) return;
  const middle = at === undefined ? (view.start + view.end) / 2 : at;
  view.start = middle - (middle - view.start) * factor;
  view.end = middle + (view.end - middle) * factor;
  clamp();
  loadView();
}

function pan(fraction) {
  if (view.start === null) return;
  const shift = (view.end - view.start) * fraction;
  view.start += shift; view.end += shift;
  clamp();
  loadView();
}

function setUpBrowser() {
  const buttons = {
    "zoom-in": () => zoom(0.5), "zoom-out": () => zoom(2), "pan-left": () => pan(-0.25),
    "pan-right": () => pan(0.25), "browser-close": closeBrowser,
    "show-all": () => { view.start = view.end = view.first = view.last = null; loadView(); },
  };
  for (const [id, action] of Object.entries(buttons)) document.getElementById(id).onclick = action;
  const holder = document.getElementById("browser-plot");
  holder.addEventListener("wheel", event => {
    event.preventDefault();
    const rect = holder.getBoundingClientRect();
    const at = view.start + (view.end - view.start) * (event.clientX - rect.left) / rect.width;
    zoom(event.deltaY < 0 ? 0.8 : 1.25, at);
  }, { passive: false });
}

// measured by bench/web.py: delay from each point's source timestamp to its arrival
window.__delays = [];
window.__bytes = 0;
window.__updates = 0;  // state messages received (tests wait on a number of them)

function update(message) {
  allowControl = message.allow_control;
  const mode = document.getElementById("mode");
  mode.textContent = (allowControl ? "control allowed" : "read-only")
    + (message.refused ? ` \u00b7 ${message.refused} refused` : "");
  mode.title = message.refused ? "requests this dashboard refused (its log says whose and why)" : "";
  mode.className = "badge " + (allowControl ? "control" : "read-only");
  const now = Date.now() / 1000;
  for (const points of Object.values(message.traces)) {
    for (const p of points) if (window.__delays.length < 100000) window.__delays.push(now - p[0]);
  }
  document.getElementById("factory").textContent = message.factory;
  if (message.error || !window.__errors.length) document.getElementById("error").textContent = message.error || "";
  Object.assign(meta, message.meta);
  for (const key of message.reset) traces[key] = { t: [], v: [], s: [] };
  for (const [key, points] of Object.entries(message.traces)) {
    const trace = traces[key] || (traces[key] = { t: [], v: [], s: [] });
    for (const [t, v, s] of points) { trace.t.push(t); trace.v.push(v); trace.s.push(s); }
    const extra = trace.t.length - MAX_POINTS;
    if (extra > 0) for (const column of [trace.t, trace.v, trace.s]) column.splice(0, extra);
  }
  const shown = new Set();
  for (const info of message.devices) {
    const box = deviceBox(info);
    shown.add(box.id);
    for (const key of Object.keys(traces)) {
      if (!key.startsWith(info.prefix) || !meta[key]) continue;
      const holder = traceBox(box, key, meta[key], info);
      const trace = traces[key];
      const last = trace.t.length - 1;
      holder.setAttribute("data-last", last >= 0 && trace.v[last] !== null ? String(trace.v[last]) : "");
      holder.setAttribute("data-last-time", last >= 0 ? String(trace.t[last]) : "");
      holder.setAttribute("data-gaps", String(trace.v.filter(v => v === null).length));
      holder.setAttribute("data-points", String(trace.t.length));
      showEmpty(holder, trace, info);
      holder.setAttribute("data-received", String(Date.now() / 1000));
      if (key in message.traces) window.__plots[key].setData(plotData(trace));
    }
  }
  for (const box of document.querySelectorAll(".device")) {
    if (shown.has(box.id)) continue;
    if (box.contains(document.getElementById("browser"))) closeBrowser();
    box.remove();
  }
  showRetired(message.recordings || []);
}

// Recordings kept after their collector was destroyed: listed, each numeric channel with
// the history browser (its rows read through the factory).
function showRetired(recordings) {
  const list = document.getElementById("retired");
  document.getElementById("retired-box").hidden = !recordings.length;
  const seen = new Set();
  for (const rec of recordings) {
    const id = `ret-${rec.id}`;
    seen.add(id);
    let row = document.getElementById(id);
    if (!row) {
      row = el("li", { id: id, class: "recording", "data-recording": rec.id });
      row.append(el("span", { class: "what" }));
      for (const ch of rec.channels) {
        const open = el("button", { class: "open-history", "data-alias": ch.alias }, `${ch.pv} history`);
        open.disabled = ch.kind !== "number" || !ch.rows;
        const path = `/api/recordings/${encodeURIComponent(rec.id)}/${encodeURIComponent(ch.alias)}`;
        open.onclick = () => browse(rec.id, ch.alias, `${rec.id}:${ch.alias}`, row, path);
        row.append(open);
      }
      list.append(row);
    }
    const times = rec.channels.filter(c => c.rows).map(c => [c.first, c.last]);
    const span = times.length
      ? `${new Date(Math.min(...times.map(t => t[0])) * 1000).toLocaleString()} to ` +
        `${new Date(Math.max(...times.map(t => t[1])) * 1000).toLocaleString()}`
      : "no rows";
    row.querySelector(".what").textContent = `${rec.id}: ${rec.rows} rows, ${span} `;
  }
  for (const row of list.querySelectorAll("li.recording")) {
    if (seen.has(row.id)) continue;
    if (row.contains(document.getElementById("browser"))) closeBrowser();
    row.remove();
  }
}

function connect() {
  const socket = new WebSocket(`ws://${location.host}/ws`);
  socket.onmessage = event => {
    window.__bytes += event.data.length;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch (error) {
      showError(`the dashboard server sent something that is not JSON: ${error.message}`);
      return;
    }
    update(message);
    window.__updates += 1;
  };
  socket.onclose = () => {
    document.getElementById("error").textContent = "connection to the dashboard server lost; retrying";
    setTimeout(connect, 1000);
  };
}
setUpBrowser();
connect();
