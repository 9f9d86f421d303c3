// Draw on #pad with mouse, pen or finger (pointer events); while drawing, the pad is sent
// as a PNG to /api/predict at most every THROTTLE_MS with one request in flight, and the
// answer fills #digit, #probabilities and #preview. Answers to older requests are dropped.
"use strict";

const THROTTLE_MS = 150;
const STROKE = 20; // px on the 240 px tall pad: MNIST's stroke for a digit about 200 px tall

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const digitOut = document.getElementById("digit");
const bars = document.getElementById("probabilities");
const preview = document.getElementById("preview");
const statusOut = document.getElementById("status");

let drawing = false;
let last = null;
let inked = false;
let dirty = false; // the pad changed since the last request was sent
let inFlight = false;
let lastSent = 0;
let timer = null;
let generation = 0; // bumped by clear and upload: answers from before are stale

function resetPad() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.lineWidth = STROKE;
  ctx.strokeStyle = "#000";
  ctx.fillStyle = "#000";
}

function point(event) {
  const rect = pad.getBoundingClientRect();
  return {
    x: (event.clientX - rect.left) * (pad.width / rect.width),
    y: (event.clientY - rect.top) * (pad.height / rect.height),
  };
}

function dot(p) {
  ctx.beginPath();
  ctx.arc(p.x, p.y, STROKE / 2, 0, 2 * Math.PI);
  ctx.fill();
}

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  drawing = true;
  last = point(event);
  dot(last);
  changed();
});

pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of events.length ? events : [event]) {
    const p = point(e);
    ctx.beginPath();
    ctx.moveTo(last.x, last.y);
    ctx.lineTo(p.x, p.y);
    ctx.stroke();
    last = p;
  }
  changed();
});

function endStroke() {
  if (!drawing) return;
  drawing = false;
  schedule(0); // the finished stroke is read at once
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

function changed() {
  inked = true;
  dirty = true;
  schedule(THROTTLE_MS);
}

function schedule(minGap) {
  if (timer !== null || inFlight) return; // sent again when the answer arrives
  const wait = Math.max(0, lastSent + minGap - performance.now());
  timer = setTimeout(() => { timer = null; sendPad(); }, wait);
}

function sendPad() {
  if (!dirty || !inked || inFlight) return;
  dirty = false;
  lastSent = performance.now();
  const asked = generation;
  pad.toBlob((blob) => post(blob, "image/png", asked), "image/png");
}

async function post(body, type, asked) {
  inFlight = true;
  try {
    const init = { method: "POST", body };
    if (type) init.headers = { "Content-Type": type };
    const response = await fetch("/api/predict", init);
    const answer = await response.json();
    if (asked !== generation) return;
    if (response.ok) show(answer);
    else showError(answer.error || `error ${response.status}`, response.status);
  } catch (error) {
    if (asked === generation) showError(`the server did not answer (${error.message})`, 0);
  } finally {
    inFlight = false;
    if (dirty && asked === generation) schedule(THROTTLE_MS);
  }
}

function show(answer) {
  const unsure = answer.digits.some((d) => d.unsure);
  digitOut.textContent = answer.number;
  statusOut.textContent = unsure ? "dashed: the network is unsure of this digit" : "";
  bars.replaceChildren(...answer.digits.map(candidates));
  preview.replaceChildren(...answer.seen.map(seenCanvas));
}

function showError(message, status) {
  empty();
  statusOut.textContent = status === 422 ? "no digit found yet" : message;
}

function empty() {
  digitOut.textContent = "";
  bars.replaceChildren();
  preview.replaceChildren();
}

function candidates(entry) {
  const box = document.createElement("div");
  box.className = entry.unsure ? "candidates unsure" : "candidates";
  const ranked = entry.probabilities.map((p, k) => [k, p]).sort((a, b) => b[1] - a[1]);
  for (const [k, p] of ranked.slice(0, 3)) {
    const row = document.createElement("div");
    row.className = "bar";
    const name = document.createElement("span");
    name.textContent = String(k);
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.display = "block";
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    track.append(fill);
    const share = document.createElement("span");
    share.className = "share";
    share.textContent = `${(100 * p).toFixed(1)}%`;
    row.append(name, track, share);
    box.append(row);
  }
  return box;
}

function seenCanvas(image) {
  const canvas = document.createElement("canvas");
  canvas.width = 28;
  canvas.height = 28;
  const c = canvas.getContext("2d");
  const data = c.createImageData(28, 28);
  image.flat().forEach((v, i) => {
    const level = Math.round(255 * Math.min(1, Math.max(0, v)));
    data.data.set([level, level, level, 255], 4 * i);
  });
  c.putImageData(data, 0, 0);
  return canvas;
}

document.getElementById("clear").addEventListener("click", () => {
  generation += 1;
  clearTimeout(timer);
  timer = null;
  inked = false;
  dirty = false;
  resetPad();
  empty();
  statusOut.textContent = "";
});

document.getElementById("upload").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (!file) return;
  generation += 1;
  clearTimeout(timer);
  timer = null;
  inked = false;
  dirty = false;
  resetPad();
  empty();
  statusOut.textContent = `reading ${file.name}...`;
  const form = new FormData();
  form.append("image", file);
  const asked = generation;
  post(form, null, asked).then(() => {
    if (asked === generation && digitOut.textContent) statusOut.textContent = file.name;
  });
  event.target.value = ""; // the same file can be chosen again
});

fetch("/api/model").then((r) => r.json()).then((info) => {
  const accuracy = info.test_accuracy == null ? "" :
    `, ${(100 * info.test_accuracy).toFixed(2)}% on the test set`;
  const numbers = Array.isArray(info.layers) && typeof info.layers[0] === "number";
  const layers = Array.isArray(info.layers) ?
    (numbers ? ` ${info.layers.join("-")}` : ` (${info.layers.join("; ")})`) : "";
  document.getElementById("model").textContent =
    `${info.kind}${layers} trained on ${info.dataset}${accuracy}`;
}).catch(() => {});

resetPad();
