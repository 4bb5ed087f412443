// The page around the pad (pad.js): live predictions while drawing, the result (sure, not sure,
// or "draw a character"), undo/redo, keys, uploads and the model line. The pad is sent as drawn
// (black ink on a transparent background); the server does all the preprocessing.
"use strict";

const $ = (id) => document.getElementById(id);
// Below this probability the top class is not shown as the answer (documented in docs/serving.md).
const CONFIDENT = 0.5;
// A rival with at least this share of the top class's probability is named next to it ("9 or g"):
// any rival when the top class is below CONFIDENT, else only one of its confusable group.
const RIVAL = 0.5;
const MAX_CANDIDATES = 3;
// While drawing, at most one prediction per this many ms (and one request in flight at a time);
// lifting the pen asks at once.
const LIVE_INTERVAL_MS = 80;

let LOOKALIKE = {}; // label -> name, e.g. "l" -> "small L" (/api/info, hwr.evaluation.names)
let GROUP = {}; // label -> the labels a drawing may not tell it from (/api/info confusable_groups)

let version = 0; // bumped by every change of the pad
let epoch = 0; // bumped when ink goes away (clear, undo, redo, upload): older answers are stale
let sentVersion = 0; // the newest version asked for (or answered by an upload)
let inFlight = false; // at most one prediction request at a time
let lastSentAt = -Infinity;
let timer = 0;

function nameOf(label) {
  return LOOKALIKE[label] ? `${label} (${LOOKALIKE[label]})` : label;
}

/** {sure, candidates} from the top-k list: the decision between "7" and "9 or g". */
function verdict(top) {
  const [first] = top;
  const close = top.slice(1).filter((t) => t.prob >= RIVAL * first.prob);
  if (first.prob < CONFIDENT) return { sure: false, candidates: [first, ...close].slice(0, MAX_CANDIDATES) };
  const partners = GROUP[first.label] || [];
  const split = close.filter((t) => partners.includes(t.label));
  if (split.length) return { sure: false, candidates: [first, ...split].slice(0, MAX_CANDIDATES) };
  return { sure: true, candidates: [first] };
}

function announce(state, shown) {
  // for tests and benchmarks/page_latency.py: which pad version the result now on screen is for
  document.dispatchEvent(
    new CustomEvent("hwr:result", { detail: { state, version: shown, current: shown === version } }),
  );
}

function setBusy(busy) {
  $("result").classList.toggle("busy", busy);
  $("result").setAttribute("aria-busy", String(busy));
}

function resetResult(lead, prompt) {
  $("lead").textContent = lead;
  $("label").textContent = "";
  $("label").classList.remove("unsure");
  $("label-name").textContent = "";
  $("prompt").textContent = prompt;
  $("bars").replaceChildren();
  $("error").textContent = "";
}

/** "Draw a character": an empty pad, a dot, or a blank image. */
function showPrompt(reason, shown = version) {
  resetResult("", reason ? `Draw a character (${reason})` : "Draw a character");
  $("seen").removeAttribute("src");
  setBusy(false);
  announce("prompt", shown);
}

function bar(label, prob) {
  const item = document.createElement("li");
  const name = document.createElement("span");
  const track = document.createElement("span");
  const fill = document.createElement("span");
  const value = document.createElement("span");
  name.textContent = label;
  if (LOOKALIKE[label]) {
    const hint = document.createElement("small");
    hint.textContent = ` ${LOOKALIKE[label]}`;
    name.append(hint);
  }
  const percent = `${(prob * 100).toFixed(1)}%`;
  track.className = "track";
  fill.className = "bar";
  fill.style.width = percent;
  track.append(fill);
  value.className = "prob";
  value.textContent = percent;
  item.setAttribute("aria-label", `${nameOf(label)}: ${(prob * 100).toFixed(1)} percent`);
  item.append(name, track, value);
  return item;
}

/** Show one /api/predict answer, for pad version `shown`. */
function show(result, shown = version) {
  if (result.blank || !result.top || !result.top.length) {
    showPrompt("no ink to read", shown);
    if (result.seen) $("seen").src = result.seen;
    return;
  }
  const { sure, candidates } = verdict(result.top);
  const labels = candidates.map((t) => t.label);
  resetResult(sure ? "Prediction:" : "Not sure:", "");
  $("label").textContent = sure || labels.length > 1 ? labels.join(" or ") : `maybe ${labels[0]}`;
  $("label").classList.toggle("unsure", !sure);
  // unsure between case partners (s or S): how sure it is of the character, whatever its case
  const fold = result.casefold;
  const oneGroup = !sure && fold && labels.every((l) => fold.labels.includes(l));
  if (oneGroup) {
    $("label-name").textContent = `${fold.labels.join(" or ")}: ${Math.round(fold.prob * 100)}%`;
  } else {
    $("label-name").textContent = labels.some((l) => LOOKALIKE[l])
      ? labels.map((l) => LOOKALIKE[l] || l).join(" or ")
      : "";
  }
  $("bars").replaceChildren(...result.top.map(({ label, prob }) => bar(label, prob)));
  if (result.seen) $("seen").src = result.seen;
  setBusy(shown !== version);
  announce(sure ? "sure" : "unsure", shown);
}

function showError(message) {
  // one line, and nothing else changes: the drawing and the last result stay
  $("error").textContent = `Error: ${String(message).split("\n")[0]}`;
  setBusy(false);
  document.dispatchEvent(new CustomEvent("hwr:error", { detail: { message } }));
}

async function post(body, headers = {}) {
  const response = await fetch("/api/predict", { method: "POST", body, headers });
  const answer = await response.json().catch(() => ({ detail: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(answer.detail || `HTTP ${response.status}`);
  return answer;
}

/** Ask for a prediction of the pad as it is now: at once, or (live) throttled. */
function request(live) {
  clearTimeout(timer);
  if (!enoughInk()) {
    // a stroke just begun is not a dot yet: wait for more ink rather than flash the prompt
    if (!live) showPrompt(hasContent() ? "a dot is too little ink to read" : "", version);
    return;
  }
  if (inFlight) return; // the answer in flight asks again for the newest pad
  setBusy(true);
  const wait = live ? lastSentAt + LIVE_INTERVAL_MS - performance.now() : 0;
  if (wait > 0) timer = setTimeout(sendPad, wait);
  else sendPad();
}

async function sendPad() {
  const sent = { version, epoch };
  sentVersion = version;
  inFlight = true;
  lastSentAt = performance.now();
  let answer = null;
  let failure = null;
  try {
    answer = await post(JSON.stringify({ image: padDataUrl() }), { "content-type": "application/json" });
  } catch (error) {
    failure = error;
  }
  inFlight = false;
  if (sent.epoch === epoch) {
    // newer ink only adds to what was sent: a live answer is worth showing until the next one
    if (answer) show(answer, sent.version);
    else showError(failure.message);
  }
  if (version !== sentVersion) request(Boolean(pad.stroke)); // newest wins
}

pad.onchange = (kind) => {
  if (kind === "history") {
    epoch++;
    version++;
    request(false);
  } else if (kind === "draw") {
    version++;
    request(true);
  } else if (version !== sentVersion || !enoughInk()) {
    request(false); // pen up: ask now for what the throttle held back (or say it is a dot)
  }
};

function historyAction(action) {
  if (action()) pad.onchange("history");
  updateButtons();
}
const clearAll = () => historyAction(clearPad);

function updateButtons() {
  $("undo").disabled = !pad.ops.length;
  $("redo").disabled = !pad.undone.length;
}
pad.canvas.addEventListener("pointerdown", updateButtons);

$("clear").addEventListener("click", clearAll);
$("undo").addEventListener("click", () => historyAction(undo));
$("redo").addEventListener("click", () => historyAction(redo));

document.addEventListener("keydown", (event) => {
  if (event.target.matches("input[type=text]")) return; // typing a label (collect.js), not a command
  const key = event.key.toLowerCase();
  const command = event.ctrlKey || event.metaKey; // Ctrl, or Cmd on a Mac
  let action = null;
  if (command && key === "z") action = event.shiftKey ? redo : undo;
  else if (command && key === "y") action = redo;
  else if (!command && (key === "escape" || key === "delete")) action = clearPad;
  if (!action) return;
  event.preventDefault(); // Ctrl+Y would open the browser's history, Ctrl+Z undo in a field
  historyAction(action);
});

$("erase").addEventListener("click", () => {
  pad.erasing = !pad.erasing;
  $("erase").setAttribute("aria-pressed", String(pad.erasing));
  pad.canvas.classList.toggle("erasing", pad.erasing);
});

$("pen-size").addEventListener("input", () => {
  pad.penSize = Number($("pen-size").value);
  $("pen-size-value").textContent = $("pen-size").value;
});

$("upload").addEventListener("change", async () => {
  const file = $("upload").files[0];
  if (!file) return;
  $("upload").value = ""; // picking the same file again still triggers a prediction
  const form = new FormData();
  form.append("file", file, file.name);
  setBusy(true);
  let answer;
  try {
    answer = await post(form);
  } catch (error) {
    showError(`upload failed: ${error.message}`); // the drawing stays as it was
    setBusy(version !== sentVersion);
    return;
  }
  // shown on the pad, fitted and centred, so what is predicted is what is on the pad
  const bitmap = await createImageBitmap(file).catch(() => null);
  if (bitmap) showImage(bitmap);
  else clearPad(); // the server reads formats the browser cannot show (TIFF): an empty pad
  epoch++;
  sentVersion = ++version;
  updateButtons();
  show(answer, version);
});

function describeCheckpoints(files) {
  if (!files || !files.length) return "";
  const one = (f) =>
    f.bundled
      ? `the bundled model (${f.name}, hwr/bundled/MODEL_CARD.md)`
      : f.modified
        ? `${f.name} (${f.modified.slice(0, 16).replace("T", " ")} UTC)`
        : f.name;
  if (files.length > 1) return `ensemble of ${files.map(one).join(", ")}`;
  return files[0].bundled ? one(files[0]) : `checkpoint ${one(files[0])}`;
}

async function loadInfo() {
  try {
    const info = await (await fetch("/api/info")).json();
    LOOKALIKE = info.lookalike_names || {};
    GROUP = {};
    for (const group of info.confusable_groups || []) for (const label of group) GROUP[label] = group;
    const accuracy = info.test_acc == null ? "not recorded" : `${(info.test_acc * 100).toFixed(1)}%`;
    const data = info.sources && info.sources.length ? info.sources.join(" + ") : info.dataset;
    $("info").textContent =
      `${info.model} trained on ${data}: ${info.num_classes} classes, test accuracy ${accuracy}`;
    $("checkpoint").textContent = describeCheckpoints(info.checkpoint_files);
  } catch (error) {
    $("info").textContent = `model info unavailable (${error.message})`;
  }
}

updateButtons();
showPrompt("");
loadInfo();
