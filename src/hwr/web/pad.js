// The drawing pad: strokes kept as vectors in pad units (280 x 280, whatever the canvas's size on
// screen), so the pad can be redrawn after a resize, after undo/redo, and at the fixed size the
// server is sent. Nothing here shrinks, thresholds or centres: the server's preprocessing does.
"use strict";

const PAD = 280; // pad units per side: pen sizes and stroke points are in these
const SEND_SIZE = 280; // pixels per side of the PNG sent to the server, the same on every screen
// A drawing whose ink strokes add up to less pen travel than this (pad units, the default pen's
// width) is a tap or a dot: too little ink to read, so the page asks for a character instead.
const MIN_INK_TRAVEL = 16;

const pad = {
  canvas: document.getElementById("canvas"),
  ops: [], // strokes, uploaded images and clears, oldest first; undo pops the last
  undone: [], // what undo took off, for redo; a new stroke forgets it
  erasing: false,
  penSize: 16,
  stroke: null, // the stroke being drawn (already the last of `ops`)
  onchange: () => {}, // called after every change: (kind) with kind "draw", "end" or "history"
};
pad.ctx = pad.canvas.getContext("2d");

/** The ops shown now: those after the last clear. */
function visibleOps() {
  const start = pad.ops.findLastIndex((op) => op.kind === "clear");
  return pad.ops.slice(start + 1);
}

function travel(points) {
  let length = 0;
  for (let i = 1; i < points.length; i++) {
    length += Math.hypot(points[i].x - points[i - 1].x, points[i].y - points[i - 1].y);
  }
  return length;
}

/** Whether the pad holds enough ink to be worth reading (an upload always is). */
function enoughInk() {
  let length = 0;
  for (const op of visibleOps()) {
    if (op.kind === "image") return true;
    if (op.kind === "stroke" && !op.erase) length += travel(op.points);
  }
  return length >= MIN_INK_TRAVEL;
}

function styleFor(ctx, op) {
  // Erasing removes ink (back to transparent) rather than painting white over it.
  ctx.globalCompositeOperation = op.erase ? "destination-out" : "source-over";
  ctx.strokeStyle = ctx.fillStyle = "#000";
  ctx.lineWidth = op.width;
  ctx.lineCap = ctx.lineJoin = "round";
}

function drawOp(ctx, op) {
  if (op.kind === "image") {
    ctx.globalCompositeOperation = "source-over";
    ctx.drawImage(op.bitmap, op.x, op.y, op.w, op.h);
    return;
  }
  styleFor(ctx, op);
  ctx.beginPath();
  if (op.points.length === 1) {
    // a filled disc: browsers draw nothing for a zero-length line, so a tap (the dot of an i)
    // would otherwise leave no ink
    ctx.arc(op.points[0].x, op.points[0].y, op.width / 2, 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  ctx.moveTo(op.points[0].x, op.points[0].y);
  for (const p of op.points.slice(1)) ctx.lineTo(p.x, p.y);
  ctx.stroke();
}

/** Draw the visible ops on `target` (a canvas of any size), scaled from pad units. */
function renderTo(target) {
  const ctx = target.getContext("2d");
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, target.width, target.height);
  ctx.setTransform(target.width / PAD, 0, 0, target.height / PAD, 0, 0);
  for (const op of visibleOps()) drawOp(ctx, op);
}

const sendCanvas = document.createElement("canvas");
sendCanvas.width = sendCanvas.height = SEND_SIZE;

/** The pad as a PNG data: URL at SEND_SIZE: toDataURL encodes at once, where toBlob waited
 * about a second in Chromium before calling back. */
function padDataUrl() {
  renderTo(sendCanvas);
  return sendCanvas.toDataURL("image/png");
}

function fitCanvas(force = false) {
  // A backing store of the on-screen size x devicePixelRatio keeps strokes sharp on any screen.
  const side = Math.max(1, Math.round(pad.canvas.clientWidth * (window.devicePixelRatio || 1)));
  if (!force && pad.canvas.width === side && pad.canvas.height === side) return;
  pad.canvas.width = pad.canvas.height = side; // this wipes the canvas: draw it again
  renderTo(pad.canvas); // and sets the pad-units transform the live strokes draw with
}

function point(event) {
  // Pad units, relative to the drawing area (the bounding box also counts the border), read
  // from the layout at each event, so they stay right after the canvas is resized.
  const box = pad.canvas.getBoundingClientRect();
  return {
    x: (event.clientX - box.left - pad.canvas.clientLeft) * (PAD / pad.canvas.clientWidth),
    y: (event.clientY - box.top - pad.canvas.clientTop) * (PAD / pad.canvas.clientHeight),
  };
}

function push(op) {
  pad.ops.push(op);
  pad.undone = [];
}

function hasContent() {
  return visibleOps().length > 0;
}

/** Clear the pad (undoable); false when it was empty already. */
function clearPad() {
  if (!hasContent()) return false;
  push({ kind: "clear" });
  renderTo(pad.canvas);
  return true;
}

function undo() {
  if (!pad.ops.length || pad.stroke) return false;
  pad.undone.push(pad.ops.pop());
  renderTo(pad.canvas);
  return true;
}

function redo() {
  if (!pad.undone.length || pad.stroke) return false;
  pad.ops.push(pad.undone.pop());
  renderTo(pad.canvas);
  return true;
}

/** Replace what the pad shows by `bitmap`, fitted and centred (undoable). */
function showImage(bitmap) {
  const scale = Math.min(PAD / bitmap.width, PAD / bitmap.height);
  const [w, h] = [bitmap.width * scale, bitmap.height * scale];
  if (hasContent()) push({ kind: "clear" });
  push({ kind: "image", bitmap, x: (PAD - w) / 2, y: (PAD - h) / 2, w, h });
  renderTo(pad.canvas);
}

pad.canvas.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  if (!event.isPrimary || pad.stroke) return; // a second finger would make the stroke jump
  pad.canvas.setPointerCapture(event.pointerId);
  pad.stroke = { kind: "stroke", erase: pad.erasing, width: pad.penSize, points: [point(event)] };
  push(pad.stroke);
  drawOp(pad.ctx, pad.stroke); // a tap leaves a dot
  pad.onchange("draw");
});

pad.canvas.addEventListener("pointermove", (event) => {
  if (!pad.stroke || !event.isPrimary) return;
  // Coalesced events keep fast strokes smooth where the browser batches pointer moves.
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  const points = pad.stroke.points;
  styleFor(pad.ctx, pad.stroke);
  pad.ctx.beginPath();
  pad.ctx.moveTo(points.at(-1).x, points.at(-1).y);
  for (const e of events.length ? events : [event]) {
    const p = point(e);
    points.push(p);
    pad.ctx.lineTo(p.x, p.y);
  }
  pad.ctx.stroke();
  pad.onchange("draw");
});

function endStroke(event) {
  if (!pad.stroke || !event.isPrimary) return;
  pad.stroke = null;
  pad.onchange("end");
}
pad.canvas.addEventListener("pointerup", endStroke);
pad.canvas.addEventListener("pointercancel", endStroke);

new ResizeObserver(() => fitCanvas()).observe(pad.canvas);
fitCanvas(true);
