// The dashboard page: a websocket of updates, canvas plots, control buttons.
"use strict";
const traces = {};          // key -> [[t, v], ...]
const MAX_POINTS = 300;
let allowControl = false;

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function draw(canvas, points) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width = canvas.clientWidth, h = canvas.height = canvas.clientHeight;
  ctx.clearRect(0, 0, w, h);
  if (points.length < 1) return;
  const ts = points.map(p => p[0]), vs = points.map(p => p[1]);
  const t0 = Math.min(...ts), t1 = Math.max(...ts);
  let v0 = Math.min(...vs), v1 = Math.max(...vs);
  if (v0 === v1) { v0 -= 1; v1 += 1; }
  const x = t => 4 + (w - 8) * (t1 === t0 ? 1 : (t - t0) / (t1 - t0));
  const y = v => h - 4 - (h - 8) * (v - v0) / (v1 - v0);
  ctx.strokeStyle = "#1f5fbf"; ctx.lineWidth = 1.5; ctx.beginPath();
  points.forEach((p, i) => (i ? ctx.lineTo(x(p[0]), y(p[1])) : ctx.moveTo(x(p[0]), y(p[1]))));
  ctx.stroke();
  ctx.fillStyle = "#555"; ctx.font = "11px sans-serif";
  ctx.fillText(v1.toPrecision(6), 6, 12); ctx.fillText(v0.toPrecision(6), 6, h - 6);
}

async function act(name, action) {
  let url = `/api/devices/${name}/${action}`;
  const file = document.querySelector(`#dev-${CSS.escape(name)} input.export-name`);
  if (action === "export" && file && file.value.trim()) {
    url += "?file=" + encodeURIComponent(file.value.trim());
  }
  const reply = await fetch(url, { method: "POST" });
  const body = await reply.json();
  document.getElementById("note").textContent =
    reply.ok ? `${name}: ${action} -> ${body.result}` : `${name}: ${action} refused: ${body.detail}`;
}

async function setParam(name, param, value) {
  const reply = await fetch(`/api/devices/${name}/param`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name: param, value: value }),
  });
  const body = await reply.json();
  document.getElementById("note").textContent =
    reply.ok ? `${name}: ${param} = ${value}` : `${name}: ${param} refused: ${body.detail}`;
}

function deviceBox(info) {
  const id = "dev-" + info.name;
  let box = document.getElementById(id);
  if (!box) {
    box = el("div", { id: id, class: "device", "data-type": info.type });
    const title = el("h2");
    title.append(el("span", {}, `${info.name} (${info.type}) `), el("span", { class: "state" }));
    box.append(title);
    if (info.type === "collector") {
      for (const action of ["start", "stop", "export"]) {
        const button = el("button", { "data-action": action }, action);
        button.disabled = !allowControl;
        button.onclick = () => act(info.name, action);
        box.append(button);
      }
      const file = el("input", { class: "export-name", size: 24,
                                 placeholder: "export file (default: name-time.nxs)" });
      file.disabled = !allowControl;
      box.append(file);
    }
    if (info.type === "processing") {
      const form = el("form", { class: "param" });
      const pname = el("input", { placeholder: "parameter", size: 12 });
      const pvalue = el("input", { placeholder: "value", size: 16 });
      const submit = el("button", { type: "submit" }, "set");
      submit.disabled = !allowControl;
      form.onsubmit = e => { e.preventDefault(); setParam(info.name, pname.value, pvalue.value); };
      form.append(pname, pvalue, submit);
      box.append(form);
    }
    box.append(el("div", { class: "traces" }));
    document.getElementById("devices").append(box);
  }
  box.querySelector(".state").textContent = info.state;
  return box;
}

function traceBox(box, key, label, info) {
  let holder = box.querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (!holder) {
    holder = el("div", { class: "trace", "data-key": key });
    const title = el("div", { class: "label" }, label + " ");
    if (info.type === "collector") {  // its whole recording, binned on the device
      const open = el("button", { class: "open-history" }, "history");
      open.onclick = () => browse(info.name, label);
      title.append(open);
    }
    holder.append(title, el("canvas"));
    box.querySelector(".traces").append(holder);
  }
  return holder;
}

// The history browser: pan and zoom over a whole recording. Each view asks the device
// for as many minmax bins as the canvas has pixels, so a line never hides a spike and
// the page never holds more than a view's worth of points.
const view = { device: "", alias: "", start: null, end: null, first: null, last: null, seq: 0 };

function browse(device, alias) {
  Object.assign(view, { device, alias, start: null, end: null, first: null, last: null });
  document.getElementById("browser").hidden = false;
  document.getElementById("browser-title").textContent = `${device}: ${alias}`;
  loadView();
}

async function loadView() {
  const canvas = document.getElementById("browser-canvas");
  const seq = ++view.seq;
  const query = new URLSearchParams({ points: String(canvas.clientWidth || 800) });
  if (view.start !== null) query.set("start", String(view.start));
  if (view.end !== null) query.set("end", String(view.end));
  canvas.setAttribute("data-loading", "1");
  const reply = await fetch(`/api/history/${encodeURIComponent(view.device)}/${encodeURIComponent(view.alias)}?${query}`);
  const body = await reply.json();
  if (seq !== view.seq) return;  // a newer view was asked for meanwhile
  canvas.removeAttribute("data-loading");
  if (!reply.ok) { document.getElementById("note").textContent = `history: ${body.detail}`; return; }
  if (view.start === null && body.time.length) {  // the whole recording: remember its span
    const half = body.time.length > 1 ? (body.time[1] - body.time[0]) / 2 : 0;
    view.first = body.time[0] - half; view.last = body.time[body.time.length - 1] + half;
    view.start = view.first; view.end = view.last;
  }
  const finite = xs => xs.filter(x => x !== null);
  canvas.setAttribute("data-start", String(view.start));
  canvas.setAttribute("data-end", String(view.end));
  canvas.setAttribute("data-bins", String(body.time.length));
  canvas.setAttribute("data-min", String(Math.min(...finite(body.min))));
  canvas.setAttribute("data-max", String(Math.max(...finite(body.max))));
  canvas.setAttribute("data-samples", String(body.count.reduce((a, b) => a + b, 0)));
  document.getElementById("browser-range").textContent =
    `${new Date(view.start * 1000).toISOString()} to ${new Date(view.end * 1000).toISOString()}: ` +
    `${body.time.length} bins of ${body.recorded} samples recorded`;
  drawBand(canvas, body);
}

function drawBand(canvas, body) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width = canvas.clientWidth, h = canvas.height = canvas.clientHeight;
  ctx.clearRect(0, 0, w, h);
  const lows = body.min.filter(v => v !== null), highs = body.max.filter(v => v !== null);
  if (!lows.length) return;
  let v0 = Math.min(...lows), v1 = Math.max(...highs);
  if (v0 === v1) { v0 -= 1; v1 += 1; }
  const x = t => 4 + (w - 8) * (t - view.start) / Math.max(view.end - view.start, 1e-9);
  const y = v => h - 4 - (h - 8) * (v - v0) / (v1 - v0);
  ctx.fillStyle = "#c8d8f0";
  body.time.forEach((t, i) => {
    if (body.min[i] === null) return;
    const top = y(body.max[i]), bottom = y(body.min[i]);
    ctx.fillRect(x(t) - 0.5, top, 1.5, Math.max(bottom - top, 1));
  });
  ctx.strokeStyle = "#1f5fbf"; ctx.lineWidth = 1; ctx.beginPath();
  let started = false;
  body.time.forEach((t, i) => {
    if (body.value[i] === null) { started = false; return; }
    if (started) ctx.lineTo(x(t), y(body.value[i])); else ctx.moveTo(x(t), y(body.value[i]));
    started = true;
  });
  ctx.stroke();
  ctx.fillStyle = "#555"; ctx.font = "11px sans-serif";
  ctx.fillText(v1.toPrecision(6), 6, 12); ctx.fillText(v0.toPrecision(6), 6, h - 6);
}

function zoom(factor, at) {  // factor < 1 zooms in around time `at` (default: the middle)
  if (view.start === null) return;
  const middle = at === undefined ? (view.start + view.end) / 2 : at;
  view.start = middle - (middle - view.start) * factor;
  view.end = middle + (view.end - middle) * factor;
  loadView();
}

function pan(fraction) {
  if (view.start === null) return;
  const shift = (view.end - view.start) * fraction;
  view.start += shift; view.end += shift;
  loadView();
}

function setUpBrowser() {
  const buttons = { "zoom-in": () => zoom(0.5), "zoom-out": () => zoom(2), "pan-left": () => pan(-0.25),
                    "pan-right": () => pan(0.25), "show-all": () => { view.start = view.end = null; loadView(); } };
  for (const [id, action] of Object.entries(buttons)) document.getElementById(id).onclick = action;
  const canvas = document.getElementById("browser-canvas");
  canvas.addEventListener("wheel", event => {
    event.preventDefault();
    const rect = canvas.getBoundingClientRect();
    const at = view.start + (view.end - view.start) * (event.clientX - rect.left) / rect.width;
    zoom(event.deltaY < 0 ? 0.8 : 1.25, at);
  }, { passive: false });
  let dragFrom = null;
  canvas.addEventListener("mousedown", event => { dragFrom = event.clientX; });
  window.addEventListener("mouseup", event => {
    if (dragFrom === null) return;
    const moved = (dragFrom - event.clientX) / canvas.getBoundingClientRect().width;
    dragFrom = null;
    if (Math.abs(moved) > 0.01) pan(moved);
  });
}

// measured by bench/web.py: delay from each point's source timestamp to its arrival
window.__delays = [];
window.__bytes = 0;

function update(message) {
  allowControl = message.allow_control;
  const now = Date.now() / 1000;
  for (const points of Object.values(message.traces)) {
    for (const p of points) if (window.__delays.length < 100000) window.__delays.push(now - p[0]);
  }
  document.getElementById("factory").textContent = message.factory;
  document.getElementById("error").textContent = message.error || "";
  for (const [key, points] of Object.entries(message.traces)) {
    const list = traces[key] || (traces[key] = []);
    list.push(...points);
    if (list.length > MAX_POINTS) list.splice(0, list.length - MAX_POINTS);
  }
  for (const info of message.devices) {
    const box = deviceBox(info);
    for (const key of Object.keys(traces)) {
      if (!key.startsWith(info.prefix)) continue;
      const holder = traceBox(box, key, key.slice(info.prefix.length), info);
      const points = traces[key];
      const last = points[points.length - 1];
      holder.setAttribute("data-last", last ? String(last[1]) : "");
      holder.setAttribute("data-last-time", last ? String(last[0]) : "");
      holder.setAttribute("data-received", String(Date.now() / 1000));
      draw(holder.querySelector("canvas"), points);
    }
  }
}

function connect() {
  const socket = new WebSocket(`ws://${location.host}/ws`);
  socket.onmessage = event => {
    window.__bytes += event.data.length;
    update(JSON.parse(event.data));
  };
  socket.onclose = () => {
    document.getElementById("error").textContent = "connection to the dashboard server lost; retrying";
    setTimeout(connect, 1000);
  };
}
setUpBrowser();
connect();
