// The page: camera list (polled), live scores (WebSocket), snapshots, add-camera and clip forms.
"use strict";

const MAX_POINTS = 300;
const state = { threshold: 3, key: localStorage.getItem("ocrganApiKey") || "", cams: new Map(), ws: null };
const $ = (sel, root = document) => root.querySelector(sel);

function say(text, isError = false) {
  const m = $("#message");
  m.textContent = text;
  m.className = isError ? "error" : "";
}

function headers(extra = {}) {
  return state.key ? { ...extra, "X-API-Key": state.key } : extra;
}

async function api(path, options = {}) {
  const r = await fetch(path, { ...options, headers: headers(options.headers || {}) });
  if (!r.ok) {
    let detail = r.statusText;
    try {
      const body = await r.json();
      detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch (e) { /* not JSON */ }
    throw new Error(`${r.status}: ${detail}`);
  }
  return r.status === 204 ? null : r.json();
}

// --- cameras ---------------------------------------------------------------------------------
function card(id) {
  let cam = state.cams.get(id);
  if (cam) return cam;
  const el = $("#camera-card").content.firstElementChild.cloneNode(true);
  el.dataset.id = id;
  $(".cam-id", el).textContent = id;
  $(".delete", el).addEventListener("click", () => removeCamera(id));
  $(".snapshot", el).hidden = true; // until the first frame arrives
  $("#cameras").appendChild(el);
  cam = { el, values: [], anomalies: [], lastTs: 0, dirty: true, view: null };
  state.cams.set(id, cam);
  seedHistory(id, cam);
  return cam;
}

async function seedHistory(id, cam) {
  try {
    const h = await api(`/streams/${encodeURIComponent(id)}/scores?limit=${MAX_POINTS}`);
    for (const m of h.items) addScore(cam, m);
  } catch (e) { /* the live feed fills it */ }
}

function addScore(cam, m) {
  if (m.timestamp <= cam.lastTs) return; // already drawn (history and live feed overlap)
  cam.lastTs = m.timestamp;
  cam.values.push(m.normalised);
  cam.anomalies.push(m.anomaly);
  if (cam.values.length > MAX_POINTS) {
    cam.values.shift();
    cam.anomalies.shift();
  }
  cam.dirty = true;
}

// One stat of a card: its name and value kept together on one line (the list wraps between stats).
function stat(dl, name, value) {
  const item = document.createElement("div");
  item.className = "stat";
  const dt = document.createElement("dt");
  dt.textContent = name;
  const dd = document.createElement("dd");
  dd.textContent = value;
  dd.title = String(value);
  item.append(dt, dd);
  dl.append(item);
}

// Why a camera is not running, headed by what it is doing about it: a camera that failed has given up.
const PROBLEM = {
  failed: "gave up reconnecting; last error",
  reconnecting: "reconnecting after",
  connecting: "connecting; last error",
  stopped: "stopped",
  pending: "waiting for a replica; last error",
};

function renderProblem(cam, v) {
  const box = $(".cam-error", cam.el);
  const shown = v.state === "failed" || (Boolean(v.last_error) && v.state !== "running");
  box.hidden = !shown;
  if (!shown) return;
  $(".cam-error-title", box).textContent = `${PROBLEM[v.state] || v.state}:`;
  $(".cam-error-text", box).textContent = v.last_error || "(none recorded)";
  box.title = v.last_error_at ? `at ${new Date(v.last_error_at * 1000).toLocaleString()}` : "";
}

// What a camera's scores are normalised by: "calibrating 37/600" during its warm-up, "calibrated on 600 frames,
// learnt again 2x" once it has refitted its level from the frames it did not flag.
function calibrationText(v) {
  const n = v.normalisation;
  if (v.calibrate === false || (n && n.calibration === "off")) return "checkpoint scale";
  if (!n) return "not calibrated yet";
  if (n.calibration === "warming") return `calibrating ${n.calibration_frames}/${n.calibration_target}`;
  const again = n.recalibrations ? `, learnt again ${n.recalibrations}x` : "";
  return `calibrated on ${n.calibration_target} frames${again}`;
}

// How a camera is scored: "frames" (each frame on arrival) or "windows every 8" (a window every `stride` frames).
function scoringText(scoring, stride) {
  return scoring === "windows" ? `windows every ${stride}` : scoring;
}

function renderView(cam, v) {
  cam.view = v;
  const s = $(".state", cam.el);
  s.textContent = v.state;
  s.className = `state pill ${v.state}`;
  cam.el.dataset.state = v.state;
  $(".cam-url", cam.el).textContent = v.url || "";
  $(".anomaly", cam.el).hidden = !v.anomaly_active;
  const dl = $(".stats", cam.el);
  dl.replaceChildren();
  const last = v.last_score;
  stat(dl, "score", last ? last.normalised.toFixed(2) : "–");
  stat(dl, "fps", v.fps_measured !== undefined ? `${v.fps_measured} / ${v.fps}` : String(v.fps));
  stat(dl, "scoring", v.scoring ? scoringText(v.scoring, v.stride) : "–");
  stat(dl, "scored", v.frames_scored ?? "–");
  stat(dl, "dropped", v.frames_dropped ?? "–");
  stat(dl, "reconnects", v.reconnects ?? "–");
  const cal = $(".calibration", cam.el);
  cal.textContent = calibrationText(v);
  cal.className = `calibration pill ${(v.normalisation && v.normalisation.calibration) || ""}`;
  const n = v.normalisation;
  cal.title = n && n.calibration === "done" ? `mean ${n.mean.toPrecision(4)}, std ${n.std.toPrecision(4)}` : "";
  if (v.replica) stat(dl, "replica", v.replica);
  renderProblem(cam, v);
}

async function refreshCameras() {
  try {
    const { streams } = await api("/streams");
    const seen = new Set();
    for (const v of streams) {
      seen.add(v.id);
      renderView(card(v.id), v);
    }
    for (const [id, cam] of state.cams) {
      if (!seen.has(id)) {
        cam.el.remove();
        state.cams.delete(id);
      }
    }
    cameraChoices(streams);
    $("#no-cameras").hidden = streams.length > 0;
    $("#camera-count").textContent = streams.length ? `(${streams.length})` : "";
  } catch (e) {
    say(`cannot list cameras: ${e.message}`, true);
  }
}

// The clip form's list of cameras whose calibration a clip may use (the choice is kept across refreshes).
function cameraChoices(streams) {
  const select = $("#score-form select[name=camera]");
  const options = streams.map((v) => new Option(`${v.id} (${calibrationText(v)})`, v.id));
  if (!options.length) options.push(new Option("(none registered)", ""));
  const texts = (list) => [...list].map((o) => o.textContent).join("\n");
  if (texts(options) === texts(select.options)) return; // unchanged: leave an open list alone
  const chosen = select.value;
  select.replaceChildren(...options);
  if (streams.some((v) => v.id === chosen)) select.value = chosen;
}

function refreshSnapshots() {
  for (const [id, cam] of state.cams) {
    if (!cam.view || !cam.view.frames_scored) continue;
    const img = $(".snapshot", cam.el);
    const next = new Image();
    next.onload = () => { img.src = next.src; img.hidden = false; };
    next.src = `/streams/${encodeURIComponent(id)}/snapshot.jpg?t=${Date.now()}`;
  }
}

async function removeCamera(id) {
  if (!confirm(`Delete camera ${id}?`)) return;
  try {
    await api(`/streams/${encodeURIComponent(id)}`, { method: "DELETE" });
    say(`camera ${id} deleted`);
    refreshCameras();
  } catch (e) {
    say(`cannot delete ${id}: ${e.message}`, true);
  }
}

// --- live feed -------------------------------------------------------------------------------
function connect(delay = 500) {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const q = state.key ? `?api_key=${encodeURIComponent(state.key)}` : "";
  const ws = new WebSocket(`${proto}://${location.host}/ws/streams${q}`);
  state.ws = ws;
  const pill = $("#live");
  ws.onopen = () => { pill.textContent = "live"; pill.className = "pill on"; delay = 500; };
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.type === "hello") {
      state.threshold = m.threshold;
      return;
    }
    const cam = state.cams.get(m.stream_id);
    if (m.type === "score" && cam) addScore(cam, m);
    else if (m.type === "event" && cam) $(".anomaly", cam.el).hidden = m.event !== "start";
    else if (m.type === "status") refreshCameras();
  };
  ws.onclose = () => {
    pill.textContent = "offline";
    pill.className = "pill off";
    if (state.ws === ws) setTimeout(() => connect(Math.min(delay * 2, 10000)), delay);
  };
}

function draw() {
  for (const cam of state.cams.values()) {
    if (cam.dirty) {
      drawChart($(".chart", cam.el), cam.values, cam.anomalies, state.threshold);
      cam.dirty = false;
    }
  }
  requestAnimationFrame(draw);
}

// --- forms -----------------------------------------------------------------------------------
async function addCamera(ev) {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const body = { id: f.get("id").trim(), url: f.get("url").trim(), calibrate: f.get("calibrate") === "on" };
  if (f.get("fps")) body.fps = Number(f.get("fps"));
  if (f.get("stride")) body.stride = Number(f.get("stride"));
  try {
    await api("/streams", { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });
    say(`camera ${body.id} added`);
    ev.target.reset();
    refreshCameras();
  } catch (e) {
    say(`cannot add ${body.id}: ${e.message}`, true);
  }
}

// The query that picks the clip's scale: the checkpoint's, its own first N seconds, or a camera's calibration.
function scaleQuery(f) {
  const q = new URLSearchParams();
  const scale = f.scale.value;
  if (scale === "clip") q.set("calibrate_seconds", f.calibrate_seconds.value);
  if (scale === "camera") {
    if (!f.camera.value) throw new Error("no camera to take the calibration from");
    q.set("camera", f.camera.value);
  }
  return q.toString() ? `?${q}` : "";
}

function scaleText(c) {
  if (c === "checkpoint") return "on the checkpoint's scale";
  if (c.source === "clip") return `calibrated on the first ${c.seconds} s (${c.frames} frames)`;
  return `with camera ${c.camera}'s calibration`;
}

async function scoreClip(ev) {
  ev.preventDefault();
  const f = ev.target.elements;
  const form = new FormData();
  form.append("file", f.file.files[0]);
  const summary = $("#clip-summary");
  summary.textContent = "scoring…";
  try {
    const r = await api(`/score${scaleQuery(f)}`, { method: "POST", body: form });
    const values = r.frames.map((x) => x.normalised);
    const flags = r.frames.map((x) => x.anomaly);
    const opening = r.frames.filter((x) => x.calibrating).length;
    const n = flags.filter(Boolean).length;
    summary.textContent = `${r.num_frames} frames, ${r.width}x${r.height} @ ${(r.fps || 0).toFixed(1)} fps; ` +
      `${n} anomalous; ${(r.elapsed_ms / 1000).toFixed(2)} s; ${scaleText(r.calibration)}`;
    drawChart($("#clip-chart"), values, flags, r.model.threshold, opening);
  } catch (e) {
    summary.textContent = "";
    say(`cannot score the clip: ${e.message}`, true);
  }
}

// --- start -----------------------------------------------------------------------------------
async function main() {
  $("#api-key").value = state.key;
  $("#key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.key = $("#api-key").value.trim();
    localStorage.setItem("ocrganApiKey", state.key);
    say(state.key ? "API key set" : "API key cleared");
    if (state.ws) state.ws.close();
  });
  $("#add-form").addEventListener("submit", addCamera);
  $("#score-form").addEventListener("submit", scoreClip);
  try {
    const m = await api("/model");
    state.threshold = m.threshold;
    $("#model").textContent = `${m.checkpoint} · ${m.height}x${m.width}x${m.channels} · ` +
      `${m.num_frames}-frame windows · threshold ${m.threshold.toFixed(2)} · ` +
      `cameras scored by ${scoringText(m.camera_scoring, m.camera_stride)} · ${m.device} · ${m.backend}`;
  } catch (e) {
    say(`cannot read the model: ${e.message}`, true);
  }
  await refreshCameras();
  connect();
  requestAnimationFrame(draw);
  setInterval(refreshCameras, 2000);
  setInterval(refreshSnapshots, 2000);
  refreshSnapshots();
}

main();
