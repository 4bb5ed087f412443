// "Wrong? It was: [ ]": shown when the server keeps corrections (serve.py collect=<folder>).
// The pad as drawn goes to /api/collect with the character the person typed; the server
// checks it is one of the model's classes and stores it for fine-tuning (experiment=personal).
"use strict";

(() => {
  const form = document.getElementById("teach");
  const truth = document.getElementById("truth");
  const said = document.getElementById("collected");

  function tell(text, failed = false) {
    said.textContent = text;
    said.classList.toggle("failed", failed);
  }

  const counted = (c) => `${c.count} collected`;

  async function start() {
    const info = await (await fetch("/api/info")).json().catch(() => ({}));
    if (!info.collect) return; // collecting is off: nothing to offer
    form.hidden = false;
    tell(counted(info.collect));
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const label = truth.value;
    if (!enoughInk()) {
      tell("draw the character first, then say what it is", true);
      return;
    }
    let answer;
    try {
      const response = await fetch("/api/collect", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ image: padDataUrl(), label }),
      });
      answer = await response.json().catch(() => ({ detail: `HTTP ${response.status}` }));
      if (!response.ok) throw new Error(answer.detail || `HTTP ${response.status}`);
    } catch (error) {
      tell(`not saved: ${String(error.message).split("\n")[0]}`, true);
      return;
    }
    truth.value = "";
    tell(`saved as “${answer.label}” · ${counted(answer)}`);
    document.dispatchEvent(new CustomEvent("hwr:collected", { detail: answer }));
  });

  start();
})();
