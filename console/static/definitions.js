/* The definition editor: checks the YAML as it is typed (debounced; POST /api/v1/definitions/validate, the same
   loader and checker as saving), lists each problem as "line L, column C: message" and marks its line in the
   gutter; "Test" shows the API's dry run, "Save as version" stores it through POST /api/v1/definitions. Every
   answer is the API's; nothing is decided here. */
(() => {
  "use strict";
  const editor = document.querySelector("[data-editor]");
  if (!editor) return;
  const source = editor.querySelector("#source");
  const gutter = editor.querySelector("[data-gutter]");
  const status = editor.querySelector("[data-check-status]");
  const list = editor.querySelector("[data-check-errors]");
  const formError = editor.querySelector("[data-form-error]");
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const DEBOUNCE_MS = 350;
  let badLines = new Set();
  let timer = null;
  let asked = 0;

  function drawGutter() {
    const lines = source.value.split("\n").length;
    const frag = document.createDocumentFragment();
    for (let n = 1; n <= lines; n++) {
      const span = document.createElement("span");
      span.textContent = String(n);
      if (badLines.has(n)) span.className = "bad";
      frag.append(span);
    }
    gutter.replaceChildren(frag);
    gutter.scrollTop = source.scrollTop;
  }

  function goTo(line, column) {
    const lines = source.value.split("\n");
    let at = 0;
    for (let i = 0; i < Math.min(line - 1, lines.length); i++) at += lines[i].length + 1;
    at += Math.max(0, Math.min(column - 1, (lines[line - 1] || "").length));
    source.focus();
    source.setSelectionRange(at, at);
    source.scrollTop = Math.max(0, (line - 4) * 20);
  }

  function showProblems(problem) {
    const errors = (problem && problem.errors) || [];
    badLines = new Set(errors.filter((e) => e.line).map((e) => e.line));
    list.replaceChildren();
    for (const error of errors) {
      const item = document.createElement("li");
      if (error.line) {
        const jump = document.createElement("button");
        jump.type = "button";
        jump.className = "link";
        jump.textContent = `line ${error.line}, column ${error.column}: ${error.message}`;
        jump.addEventListener("click", () => goTo(error.line, error.column));
        item.append(jump);
      } else {
        item.textContent = error.message;
      }
      list.append(item);
    }
    list.hidden = errors.length === 0;
    source.setAttribute("aria-invalid", errors.length ? "true" : "false");
    drawGutter();
  }

  function say(text, kind) {
    status.textContent = text;
    status.className = `check ${kind || ""}`;
  }

  async function send(url, body, type) {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin", body,
      headers: { "Content-Type": type, Accept: "application/json", "X-CSRF-Token": csrf() },
    });
    let data = null;
    try { data = await response.json(); } catch (_) { /* not JSON */ }
    return { ok: response.ok, status: response.status, data };
  }

  function dayZero(starts) {
    // "2026-12-07T09:00:00-05:00": the simulated day 0 as written in the sample's zone (not the browser's)
    const parts = /^(\d{4})-(\d\d)-(\d\d)T(\d\d:\d\d)/.exec(starts || "");
    if (!parts) return "the first day";
    const day = new Date(Date.UTC(+parts[1], +parts[2] - 1, +parts[3]));
    const name = day.toLocaleDateString("en-US", { weekday: "long", day: "numeric", month: "long", timeZone: "UTC" });
    return `${name}, from ${parts[4]}`;
  }

  function refusal(answer) {
    const data = answer.data || {};
    return data.detail || data.title || `The request failed (${answer.status}).`;
  }

  async function check() {
    const mine = ++asked;
    say("Checking…");
    let answer;
    try {
      answer = await send("/api/v1/definitions/validate", source.value, "application/yaml");
    } catch (error) {
      say(`Could not reach Dealflow: ${error.message}`, "bad");
      return null;
    }
    if (mine !== asked) return null;  // a newer check is on its way
    if (answer.ok) {
      const d = answer.data;
      showProblems(null);
      say(`No problems: ${d.key} v${d.version}, about a ${d.subject}, on ${d.trigger}, ${d.steps} step${d.steps === 1 ? "" : "s"}.`, "ok");
    } else if (answer.status === 422 && answer.data && answer.data.errors) {
      showProblems(answer.data);
      say(`${answer.data.errors.length} problem${answer.data.errors.length === 1 ? "" : "s"}:`, "bad");
    } else {
      showProblems(null);
      say(refusal(answer), "bad");
    }
    return answer;
  }

  function toast(text) {
    const box = document.querySelector("[data-toast]");
    if (!box) return;
    box.textContent = text;
    box.classList.add("show");
    setTimeout(() => box.classList.remove("show"), 2500);
  }

  function showError(text) {
    if (!formError) return;
    formError.textContent = text || "";
    formError.hidden = !text;
  }

  source.addEventListener("input", () => {
    drawGutter();
    clearTimeout(timer);
    if (source.readOnly) return;
    timer = setTimeout(check, DEBOUNCE_MS);
  });
  source.addEventListener("scroll", () => { gutter.scrollTop = source.scrollTop; });
  drawGutter();
  if (!source.readOnly) check();

  const save = editor.querySelector("[data-save]");
  if (save) save.addEventListener("click", async () => {
    showError("");
    save.disabled = true;
    try {
      const answer = await send("/api/v1/definitions", source.value, "application/yaml");
      if (answer.ok) {
        toast(`Saved ${answer.data.key} v${answer.data.version} as a draft`);
        setTimeout(() => { location.href = `/app/definitions/${encodeURIComponent(answer.data.key)}?version=${answer.data.version}`; }, 300);
        return;
      }
      if (answer.status === 422 && answer.data && answer.data.errors) showProblems(answer.data);
      showError(refusal(answer));
    } catch (error) {
      showError(`Could not reach Dealflow: ${error.message}`);
    } finally {
      save.disabled = false;
    }
  });

  const run = editor.querySelector("[data-test]");
  const result = document.querySelector("[data-test-result]");
  if (run && result) run.addEventListener("click", async () => {
    showError("");
    const body = { source: source.value };
    for (const [id, name] of [["subject", "subject"], ["events", "events"]]) {
      const raw = document.getElementById(id).value.trim();
      if (!raw) continue;
      try { body[name] = JSON.parse(raw); } catch (error) { showError(`${name}: not JSON (${error.message})`); return; }
    }
    const startOn = document.getElementById("start-on").value;
    if (startOn) body.start_on = startOn;
    const startAt = document.getElementById("start-at").value;
    if (startAt) body.start_at = startAt.slice(0, 5);
    run.disabled = true;
    run.textContent = "Testing…";
    try {
      const answer = await send("/api/v1/definitions/test", JSON.stringify(body), "application/json");
      if (!answer.ok) {
        if (answer.status === 422 && answer.data && answer.data.errors) showProblems(answer.data);
        showError(refusal(answer));
        return;
      }
      const lines = result.querySelector("[data-test-lines]");
      lines.replaceChildren();
      for (const line of answer.data.lines) {
        const item = document.createElement("li");
        const parts = /^(day \d+ \d\d:\d\d) (\S+) (.*)$/.exec(line);
        if (parts) {
          const when = document.createElement("time");
          when.textContent = parts[1];
          const step = document.createElement("span");
          step.className = "step";
          step.textContent = parts[2];
          const what = document.createElement("span");
          what.textContent = parts[3];
          item.append(when, step, what);
        } else {
          item.textContent = line;
        }
        lines.append(item);
      }
      if (!answer.data.lines.length) lines.innerHTML = '<li class="empty">No step ran.</li>';
      result.querySelector("[data-test-summary]").textContent =
        `Ended ${answer.data.status}; times in the sample's zone (${answer.data.zone}); day 0 is ${dayZero(answer.data.starts)}. Nothing was sent.`;
      result.hidden = false;
      result.scrollIntoView({ block: "nearest" });
    } catch (error) {
      showError(`Could not reach Dealflow: ${error.message}`);
    } finally {
      run.disabled = false;
      run.textContent = "Test";
    }
  });
})();
