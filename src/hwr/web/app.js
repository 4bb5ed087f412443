// The drawing page: pointer strokes on a canvas, sent as drawn (a PNG with a transparent
// background) to /api/predict after every stroke. The server does all the preprocessing, so
// the page never shrinks, thresholds or centres anything itself.
"use strict";

const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const ctx = canvas.getContext("2d");
const CSS_SIZE = 280;
let erasing = false;
let drawing = false;
let last = null;
let requestId = 0; // answers to older strokes arriving late are dropped

function setupCanvas() {
  // A backing store of CSS size x devicePixelRatio keeps strokes sharp on high-DPI screens.
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(CSS_SIZE * dpr);
  canvas.height = Math.round(CSS_SIZE * dpr);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
}

function point(event) {
  // Relative to the drawing area: the bounding box also counts the border.
  const box = canvas.getBoundingClientRect();
  return {
    x: (event.clientX - box.left - canvas.clientLeft) * (CSS_SIZE / canvas.clientWidth),
    y: (event.clientY - box.top - canvas.clientTop) * (CSS_SIZE / canvas.clientHeight),
  };
}

function pen() {
  // Erasing removes ink (back to transparent) rather than painting white over it.
  ctx.globalCompositeOperation = erasing ? "destination-out" : "source-over";
  ctx.strokeStyle = ctx.fillStyle = "#000";
  ctx.lineWidth = Number($("pen-size").value);
}

function dot(p) {
  // A filled disc: browsers draw nothing for a zero-length line, so a tap (the dot of an i
  // or a j) would otherwise leave no ink.
  pen();
  ctx.beginPath();
  ctx.arc(p.x, p.y, ctx.lineWidth / 2, 0, 2 * Math.PI);
  ctx.fill();
}

function strokeTo(p) {
  pen();
  ctx.beginPath();
  ctx.moveTo(last.x, last.y);
  ctx.lineTo(p.x, p.y);
  ctx.stroke();
  last = p;
}

canvas.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  if (!event.isPrimary) return; // a second finger would make the stroke jump between fingers
  canvas.setPointerCapture(event.pointerId);
  drawing = true;
  last = point(event);
  dot(last); // a tap leaves a dot
});

canvas.addEventListener("pointermove", (event) => {
  if (!drawing || !event.isPrimary) return;
  // Coalesced events keep fast strokes smooth where the browser batches pointer moves.
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of events.length ? events : [event]) strokeTo(point(e));
});

function endStroke(event) {
  if (!drawing || !event.isPrimary) return;
  drawing = false;
  canvas.toBlob((blob) => send(blob, "canvas.png"), "image/png");
}
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);

async function send(blob, name) {
  const id = ++requestId;
  const form = new FormData();
  form.append("file", blob, name);
  try {
    const response = await fetch("/api/predict", { method: "POST", body: form });
    const body = await response.json().catch(() => ({ detail: `HTTP ${response.status}` }));
    if (id !== requestId) return;
    if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
    show(body);
  } catch (error) {
    if (id === requestId) $("error").textContent = `Error: ${error.message}`;
  }
}

// Characters most fonts draw alike are named as well (a lone "l" could be I, l or 1): the
// server's table (hwr.names) for this model's classes, from /api/info.
let LOOKALIKE = {};

function nameOf(label) {
  return LOOKALIKE[label] ? `${label} (${LOOKALIKE[label]})` : label;
}

function show(result) {
  $("error").textContent = "";
  $("seen").src = result.seen;
  const bars = $("bars");
  bars.replaceChildren();
  if (result.blank) {
    $("label").textContent = "";
    return;
  }
  $("label").textContent = result.label;
  $("label-name").textContent = LOOKALIKE[result.label] || "";
  for (const { label, prob } of result.top) {
    const item = document.createElement("li");
    const name = document.createElement("span");
    const bar = document.createElement("span");
    const value = document.createElement("span");
    name.textContent = label;
    if (LOOKALIKE[label]) {
      const hint = document.createElement("small");
      hint.textContent = ` ${LOOKALIKE[label]}`;
      name.append(hint);
    }
    bar.className = "bar";
    bar.style.width = `${(prob * 100).toFixed(1)}%`;
    value.className = "prob";
    value.textContent = `${(prob * 100).toFixed(1)}%`;
    item.setAttribute("aria-label", `${nameOf(label)}: ${(prob * 100).toFixed(1)} percent`);
    const track = document.createElement("span");
    track.className = "track";
    track.append(bar);
    item.append(name, track, value);
    bars.append(item);
  }
}

function clearAll() {
  requestId++;
  ctx.save();
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.restore();
  $("label").textContent = "";
  $("label-name").textContent = "";
  $("bars").replaceChildren();
  $("seen").removeAttribute("src");
  $("error").textContent = "";
}

$("clear").addEventListener("click", clearAll);

$("erase").addEventListener("click", () => {
  erasing = !erasing;
  $("erase").setAttribute("aria-pressed", String(erasing));
  canvas.classList.toggle("erasing", erasing);
});

$("pen-size").addEventListener("input", () => {
  $("pen-size-value").textContent = $("pen-size").value;
});

$("upload").addEventListener("change", async () => {
  const file = $("upload").files[0];
  if (!file) return;
  clearAll();
  $("upload").value = ""; // picking the same file again still triggers a prediction
  try {
    // shown on the canvas, fitted and centred, so what is predicted is what is on the pad
    const bitmap = await createImageBitmap(file);
    const scale = Math.min(CSS_SIZE / bitmap.width, CSS_SIZE / bitmap.height);
    const [w, h] = [bitmap.width * scale, bitmap.height * scale];
    ctx.globalCompositeOperation = "source-over";
    ctx.drawImage(bitmap, (CSS_SIZE - w) / 2, (CSS_SIZE - h) / 2, w, h);
  } catch (error) {
    // not an image the browser can decode: the server's answer says what is wrong with it
  }
  send(file, file.name);
});

async function loadInfo() {
  try {
    const info = await (await fetch("/api/info")).json();
    LOOKALIKE = info.lookalike_names || {};
    const accuracy = info.test_acc == null ? "not recorded" : `${(info.test_acc * 100).toFixed(1)}%`;
    $("info").textContent =
      `${info.model} trained on ${info.dataset}: ${info.num_classes} classes, test accuracy ${accuracy}`;
  } catch (error) {
    $("info").textContent = `model info unavailable (${error.message})`;
  }
}

setupCanvas();
loadInfo();
