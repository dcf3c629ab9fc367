// The bodyparts web page: sends camera frames (one at a time) through the server's WebSocket
// /stream (persons keep ids across frames; POST /render when the stream cannot be opened) or a
// chosen file to POST /render, and shows the drawing, the person count and the measured
// round-trip time. When the server
// offers the model for the browser (/info browser_model), the page runs it itself with ONNX
// Runtime Web (inbrowser.js) and draws the result; the server stays the fallback.
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_FRAME_SIDE = 640; // camera frames are scaled down to this longest side before sending
const state = { stream: null, running: false, frames: 0, authRequired: false, shownUrl: null };
Object.assign(state, { browser: null, palette: {}, threshold: 0.5, frameTimes: [] });

function setStatus(text, isError) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", Boolean(isError));
}

function authHeaders() {
  const token = $("token").value.trim();
  return token ? { Authorization: "Bearer " + token } : {};
}

async function loadInfo() {
  const resp = await fetch("info");
  if (!resp.ok) {
    setStatus("cannot read /info: HTTP " + resp.status, true);
    return;
  }
  const info = await resp.json();
  $("model").textContent = info.model + " · " + info.part_taxonomy;
  state.threshold = info.score_threshold;
  state.authRequired = info.auth_required;
  $("token-row").hidden = !info.auth_required;
  const legend = $("legend");
  legend.replaceChildren();
  for (const part of info.parts) {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = "rgb(" + part.color.join(",") + ")";
    item.append(swatch, document.createTextNode(part.name));
    item.dataset.label = part.label;
    legend.append(item);
    state.palette[part.label] = part.color;
  }
  if (info.browser_model) loadBrowserModel(info.browser_model);
}

// ---------------------------------------------------------------------------------------------
// the model in the browser (inbrowser.js); the server is the fallback

const useBrowser = () => state.browser !== null && $("engine-choice").value === "browser";

function showEngine() {
  const browser = useBrowser();
  $("engine").textContent = browser ? state.browser.label : "server";
  $("result").hidden = browser;
  $("result-canvas").hidden = !browser;
}

async function loadBrowserModel(offer) {
  setStatus("loading the model into the browser ...");
  try {
    state.browser = await window.BodypartsInBrowser.createEngine(offer);
  } catch (err) {
    console.warn("the in-browser model is not available:", err);
    setStatus("the model cannot run in this browser (" + err.message + "): the server runs it");
    return;
  }
  $("engine-row").hidden = false;
  showEngine();
  setStatus("");
}

// Frames per second over the last frames (one frame: 1000 / its time).
function countFrame(ms) {
  const now = performance.now();
  state.frameTimes.push(now);
  if (state.frameTimes.length > 10) state.frameTimes.shift();
  const times = state.frameTimes;
  const span = times[times.length - 1] - times[0];
  const fps = times.length > 1 && span > 0 ? (1000 * (times.length - 1)) / span : 1000 / ms;
  $("fps").textContent = fps.toFixed(1);
  state.frames += 1;
  $("frames").textContent = String(state.frames);
  $("result").dataset.frames = String(state.frames);
}

// Run the model here on ImageData; shows the drawing and the figures. Returns {ok, retryAfter}.
async function runInBrowser(imageData) {
  const t0 = performance.now();
  let result;
  try {
    result = await state.browser.run(imageData, state.threshold);
  } catch (err) {
    console.warn("the in-browser model failed:", err);
    state.browser = null;
    $("engine-row").hidden = true;
    showEngine();
    setStatus("the in-browser model failed (" + err.message + "): the server runs it now", true);
    return { ok: false, retryAfter: 0 };
  }
  window.BodypartsInBrowser.draw($("result-canvas"), imageData, result, state.palette);
  const ms = performance.now() - t0;
  window.bodypartsLastResult = result;
  $("persons").textContent = String(result.scores.length);
  $("rtt").textContent = ms.toFixed(0) + " ms";
  $("model-ms").textContent = result.timings.model.toFixed(1) + " ms";
  countFrame(ms);
  setStatus("");
  return { ok: true, retryAfter: 0 };
}

// The pixels of an image file (no colour conversion: the bytes the server would decode).
async function filePixels(file) {
  const bitmap = await createImageBitmap(file, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const g = canvas.getContext("2d");
  g.drawImage(bitmap, 0, 0);
  bitmap.close();
  return g.getImageData(0, 0, canvas.width, canvas.height);
}

function show(pngBlob) {
  const img = $("result");
  const url = URL.createObjectURL(pngBlob);
  const previous = state.shownUrl;
  state.shownUrl = url;
  return new Promise((resolve) => {
    img.onload = () => {
      if (previous) URL.revokeObjectURL(previous);
      resolve(true);
    };
    img.onerror = () => resolve(false);
    img.src = url;
  });
}

// POST one image; returns {ok, retryAfter}. Shows the result and the figures when ok.
async function sendImage(blob) {
  const headers = Object.assign({ "Content-Type": blob.type || "application/octet-stream" }, authHeaders());
  const t0 = performance.now();
  let resp;
  try {
    resp = await fetch("render?legend=false", { method: "POST", headers, body: blob });
  } catch (err) {
    setStatus("the server cannot be reached (" + err.message + ")", true);
    return { ok: false, retryAfter: 2 };
  }
  if (!resp.ok) {
    let detail = resp.statusText;
    try {
      detail = (await resp.json()).detail || detail;
    } catch (err) {
      // not JSON: keep the status text
    }
    setStatus("HTTP " + resp.status + ": " + detail, true);
    return { ok: false, retryAfter: Number(resp.headers.get("Retry-After")) || 1 };
  }
  const png = await resp.blob();
  const rtt = performance.now() - t0;
  const shown = await show(png);
  const persons = resp.headers.get("X-Person-Count");
  $("persons").textContent = persons === null ? "–" : persons;
  $("rtt").textContent = rtt.toFixed(0) + " ms";
  $("model-ms").textContent = (resp.headers.get("X-Inference-Ms") || "–") + " ms";
  window.bodypartsLastResult = { engine: "server", persons: Number(persons) };
  countFrame(rtt);
  setStatus(shown ? "" : "the answer is not a displayable image", !shown);
  return { ok: shown, retryAfter: 0 };
}

// ---------------------------------------------------------------------------------------------
// the camera through the server's WebSocket /stream: one tracker per connection, so persons keep
// their ids (drawn by the server as #id in a colour per id)

const stream = { socket: null, failed: false };

function openStream() {
  return new Promise((resolve) => {
    const url = new URL("stream", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const token = $("token").value.trim();
    if (token) url.searchParams.set("token", token);
    let socket;
    try {
      socket = new WebSocket(url);
    } catch (err) {
      resolve(null);
      return;
    }
    socket.binaryType = "blob";
    socket.onopen = () => resolve(socket);
    socket.onerror = () => resolve(null); // refused before opening: the page posts frames instead
    socket.addEventListener("close", () => {
      if (stream.socket === socket) stream.socket = null;
    });
  });
}

function closeStream() {
  if (stream.socket) stream.socket.close(1000);
  stream.socket = null;
  stream.failed = false;
}

// Send one frame on the stream; resolves with {ok, retryAfter} once it is answered (a JSON text
// message, then the PNG drawing) or refused ({"error", "detail"}).
function streamFrame(socket, blob) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let meta = null;
    const onClose = () => done({ ok: false, retryAfter: 1 });
    const done = (result) => {
      socket.onmessage = null;
      socket.removeEventListener("close", onClose);
      resolve(result);
    };
    socket.addEventListener("close", onClose);
    socket.onmessage = async (event) => {
      if (typeof event.data === "string") {
        meta = JSON.parse(event.data);
        if (meta.error) {
          setStatus(meta.error + ": " + meta.detail, true);
          done({ ok: false, retryAfter: meta.retry_after || 1 });
        }
        return;
      }
      const rtt = performance.now() - t0;
      const shown = await show(event.data);
      const ids = meta.persons.map((p) => p.id).filter((id) => id !== null);
      $("persons").textContent = String(meta.person_count === null ? "–" : meta.person_count);
      $("ids").textContent = ids.length ? ids.map((id) => "#" + id).join(" ") : "–";
      $("rtt").textContent = rtt.toFixed(0) + " ms";
      $("model-ms").textContent = meta.inference_ms.toFixed(1) + " ms";
      window.bodypartsLastResult = { engine: "server (stream)", persons: meta.persons };
      countFrame(rtt);
      setStatus(shown ? "" : "the answer is not a displayable image", !shown);
      done({ ok: shown, retryAfter: 0 });
    };
    socket.send(blob);
  });
}

// One camera frame to the server: on the stream when it opens, else POST /render.
async function sendFrame(frame) {
  if (!stream.socket && !stream.failed) {
    stream.socket = await openStream();
    stream.failed = stream.socket === null;
    $("engine").textContent = stream.socket ? "server (stream)" : "server";
  }
  return stream.socket ? streamFrame(stream.socket, frame) : sendImage(frame);
}

function drawFrame() {
  const video = $("video");
  const canvas = $("canvas");
  const scale = Math.min(1, MAX_FRAME_SIDE / Math.max(video.videoWidth, video.videoHeight));
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext("2d", { willReadFrequently: true }).drawImage(video, 0, 0, canvas.width, canvas.height);
  return canvas;
}

function grabFrame() {
  const canvas = drawFrame();
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
}

// The frame's pixels, for the in-browser model.
function grabPixels() {
  const canvas = drawFrame();
  return canvas
    .getContext("2d", { willReadFrequently: true })
    .getImageData(0, 0, canvas.width, canvas.height);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function cameraLoop() {
  while (state.running) {
    if (useBrowser()) {
      await runInBrowser(grabPixels());
      await sleep(0); // the model may finish without yielding: let the page handle its events
      continue;
    }
    const frame = await grabFrame();
    if (!state.running) break;
    if (!frame) {
      await sleep(100);
      continue;
    }
    const result = await sendFrame(frame);
    if (!result.ok) await sleep(1000 * result.retryAfter);
  }
}

async function startCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus("this browser gives no camera here (getUserMedia needs https or localhost)", true);
    return;
  }
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  } catch (err) {
    setStatus("no camera: " + err.name + " (" + err.message + ")", true);
    return;
  }
  const video = $("video");
  video.srcObject = state.stream;
  await video.play();
  while (!video.videoWidth) await sleep(20);
  state.running = true;
  $("camera-start").disabled = true;
  $("camera-stop").disabled = false;
  setStatus("camera on");
  cameraLoop();
}

function stopCamera() {
  state.running = false;
  closeStream();
  showEngine();
  if (state.stream) state.stream.getTracks().forEach((track) => track.stop());
  state.stream = null;
  $("video").srcObject = null;
  $("camera-start").disabled = false;
  $("camera-stop").disabled = true;
  setStatus("camera off");
}

async function sendFile() {
  const file = $("file").files[0];
  if (!file) return;
  if (state.running) stopCamera();
  if (useBrowser()) {
    setStatus("running the model on " + file.name + " ...");
    let pixels;
    try {
      pixels = await filePixels(file);
    } catch (err) {
      setStatus("cannot decode " + file.name + " (" + err.message + ")", true);
      return;
    }
    if ((await runInBrowser(pixels)).ok) return;
    // the in-browser model failed (the page now uses the server): send the file
  }
  setStatus("sending " + file.name + " ...");
  await sendImage(file);
}

$("camera-start").addEventListener("click", startCamera);
$("camera-stop").addEventListener("click", stopCamera);
$("file").addEventListener("change", sendFile);
$("engine-choice").addEventListener("change", () => {
  state.frameTimes = [];
  showEngine();
});
$("token-row").addEventListener("submit", (event) => event.preventDefault());
loadInfo();
