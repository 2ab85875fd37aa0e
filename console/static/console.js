/* Dealflow console: forms marked data-api are sent to the JSON API (the same endpoints, rules and errors as any
   API client) with the session's CSRF token; a refusal's problem document is shown in the form, each error next
   to its field. The pipeline board moves cards by drag and drop through the same endpoint and puts a refused
   card back where it was, with every reason. No framework, no build step. */
(() => {
  "use strict";
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function toast(text) {
    const box = document.querySelector("[data-toast]");
    if (!box || !text) return;
    box.textContent = text;
    box.classList.add("show");
    setTimeout(() => box.classList.remove("show"), 2500);
  }

  function valueOf(el) {
    const type = el.dataset.type;
    if (el.type === "checkbox") return type === "bool" ? el.checked : (el.checked ? el.value : undefined);
    if (el.tagName === "SELECT" && el.multiple) return Array.from(el.selectedOptions, (o) => o.value);
    const raw = el.value.trim();
    if (raw === "" && !("keepEmpty" in el.dataset)) return undefined;
    if (type === "number") return Number(raw);
    if (type === "list") return raw.split(",").map((s) => s.trim()).filter(Boolean);
    if (type === "datetime-utc") return raw.endsWith("Z") || /[+-]\d\d:\d\d$/.test(raw) ? raw : raw + "Z";
    return el.value;
  }

  // "signers.0.name" and "terms.closing_date" build nested JSON (a list of signers, a dict of terms).
  function put(body, name, value) {
    const path = name.split(".");
    let here = body;
    path.forEach((key, i) => {
      if (i === path.length - 1) { here[key] = value; return; }
      if (here[key] === undefined) here[key] = /^\d+$/.test(path[i + 1]) ? [] : {};
      here = here[key];
    });
  }

  function bodyOf(form) {
    const body = {};
    for (const el of form.elements) {
      if (!el.name || el.disabled || el.type === "submit" || el.type === "button") continue;
      if (el.dataset.type === "array") {  // checkboxes of one name (a list's selected rows)
        body[el.name] = body[el.name] || [];
        if (el.checked) body[el.name].push(el.value);
        continue;
      }
      const value = valueOf(el);
      if (value !== undefined) put(body, el.name, value);
    }
    return body;
  }

  function clearErrors(form) {
    form.querySelectorAll("[data-error-for]").forEach((el) => { el.textContent = ""; });
    form.querySelectorAll('[aria-invalid="true"]').forEach((el) => el.removeAttribute("aria-invalid"));
    const top = form.querySelector("[data-form-error]");
    if (top) { top.hidden = true; top.textContent = ""; }
  }

  function showProblem(container, problem, status) {
    const top = container.querySelector("[data-form-error]") || container;
    const detail = (problem && (problem.detail || problem.title)) || `The request failed (${status}).`;
    const unplaced = [];
    for (const error of (problem && problem.errors) || []) {
      const slot = container.querySelector(`[data-error-for="${CSS.escape(error.field || "")}"]`);
      const input = container.querySelector(`[name="${CSS.escape(error.field || "")}"]`);
      if (input) input.setAttribute("aria-invalid", "true");
      if (slot) slot.textContent = error.message; else unplaced.push(error.message);
    }
    top.textContent = detail;
    if (unplaced.length && !(unplaced.length === 1 && detail.includes(unplaced[0]))) {
      const list = document.createElement("ul");
      unplaced.forEach((m) => { const li = document.createElement("li"); li.textContent = m; list.append(li); });
      top.append(list);
    }
    top.hidden = false;
  }

  async function call(url, method, body) {
    const response = await fetch(url, {
      method, credentials: "same-origin", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrf() },
    });
    let data = null;
    try { data = await response.json(); } catch (_) { /* an empty or non-JSON answer */ }
    return { ok: response.ok, status: response.status, data };
  }

  function fill(target, data) {
    target.querySelectorAll("[data-field]").forEach((el) => {
      const value = (data || {})[el.dataset.field];
      if (typeof value === "boolean") el.textContent = value ? el.dataset.true : el.dataset.false;
      else el.textContent = value === null || value === undefined ? "—" : String(value);
    });
    target.hidden = false;
  }

  function after(form, data, submitter) {
    const then = (submitter && submitter.dataset.then) || form.dataset.then || "reload";
    if (then === "bulk") {  // one outcome per lead: refusals listed, the rest done
      if (data && data.failed) {
        showProblem(form, { detail: `${data.done} done, ${data.failed} refused:`,
          errors: data.results.filter((r) => !r.ok).map((r) => ({ field: "", message: `${r.lead_id}: ${r.detail}` })) });
        return;
      }
      toast(`${data ? data.done : 0} done`);
      setTimeout(() => location.reload(), 300);
      return;
    }
    if (then.startsWith("fill:")) { const el = document.querySelector(then.slice(5)); if (el) fill(el, data); return; }
    toast(form.dataset.done);
    if (then === "reload") { setTimeout(() => location.reload(), 300); return; }
    if (then.startsWith("go:")) {
      location.href = then.slice(3).replace(/\{(\w+)\}/g, (_, key) => encodeURIComponent((data || {})[key] ?? ""));
      return;
    }
    if (then.startsWith("remove:")) { const el = document.querySelector(then.slice(7)); if (el) el.remove(); }
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.api) return;
    event.preventDefault();
    clearErrors(form);
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const submitter = event.submitter && event.submitter.dataset.api ? event.submitter : null;
      const url = submitter ? submitter.dataset.api : form.dataset.api;
      const answer = await call(url, form.dataset.method || "POST", bodyOf(form));
      if (answer.ok) after(form, answer.data, submitter); else showProblem(form, answer.data, answer.status);
    } catch (error) {
      showProblem(form, { detail: `Could not reach Dealflow: ${error.message}` }, 0);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  });

  // Live pages: when the server says something this page shows changed (an event on the event path), the page
  // re-reads itself and swaps its [data-region] parts in place (not a region holding the field being typed in).
  const main = document.getElementById("main");
  if (main && main.dataset.live && window.EventSource) {
    let pending = null;
    const refresh = async () => {
      const response = await fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      const focused = document.activeElement;
      document.querySelectorAll("[data-region]").forEach((region) => {
        if (focused && region.contains(focused) && focused.matches("input, textarea, select")) return;
        if (region.querySelector("details[open]")) return;  // someone is writing in it (an inbox reply)
        const next = fresh.querySelector(`[data-region="${CSS.escape(region.dataset.region)}"]`);
        if (next && next.innerHTML !== region.innerHTML) region.innerHTML = next.innerHTML;
      });
      document.dispatchEvent(new CustomEvent("dealflow:refreshed"));
    };
    const source = new EventSource(`/app/live?topic=${encodeURIComponent(main.dataset.live)}`);
    source.addEventListener("change", () => { clearTimeout(pending); pending = setTimeout(refresh, 250); });
  }

  // A list's row selection: select all, and the count beside the bulk actions.
  const bulk = document.getElementById("bulk");
  if (bulk) {
    const boxes = () => document.querySelectorAll('input[form="bulk"][data-type="array"]');
    const count = () => {
      const n = Array.from(boxes()).filter((b) => b.checked).length;
      bulk.querySelector("[data-selected]").textContent = `${n} selected`;
    };
    document.addEventListener("change", (event) => {
      if (event.target.matches("[data-select-all]")) boxes().forEach((b) => { b.checked = event.target.checked; });
      if (event.target.matches("[data-select-all], input[form=bulk]")) count();
    });
  }

  // A composer offers the templates of the chosen channel only (again after a live refresh rebuilt it).
  function onlyChannel(form) {
    const channel = form.querySelector("select[name=channel]");
    const template = form.querySelector("select[name=template]");
    if (!channel || !template) return;
    let first = null;
    for (const option of template.options) {
      option.hidden = option.disabled = option.dataset.channel !== channel.value;
      if (!option.hidden && !first) first = option;
    }
    if (template.selectedOptions[0] && template.selectedOptions[0].hidden && first) first.selected = true;
  }
  const composers = () => document.querySelectorAll("form.composer").forEach(onlyChannel);
  document.addEventListener("change", (event) => {
    const form = event.target.closest && event.target.closest("form.composer");
    if (form && event.target.name === "channel") onlyChannel(form);
  });
  document.addEventListener("dealflow:refreshed", composers);
  composers();

  // The pipeline board: drag a card onto another column; the API's answer decides.
  const board = document.querySelector("[data-board]");
  if (board) {
    const alertBox = document.querySelector("[data-board-error]");
    let dragged = null;
    board.addEventListener("dragstart", (event) => {
      const card = event.target.closest && event.target.closest(".deal");
      if (!card || card.getAttribute("draggable") !== "true") return;
      dragged = { card, from: card.parentElement, next: card.nextElementSibling };
      event.dataTransfer.setData("text/plain", card.dataset.deal);
      event.dataTransfer.effectAllowed = "move";
    });
    board.addEventListener("dragover", (event) => {
      const column = event.target.closest && event.target.closest(".column");
      if (!dragged || !column) return;
      event.preventDefault();
      column.classList.add("over");
    });
    board.addEventListener("dragleave", (event) => {
      const column = event.target.closest && event.target.closest(".column");
      if (column && !column.contains(event.relatedTarget)) column.classList.remove("over");
    });
    board.addEventListener("drop", async (event) => {
      const column = event.target.closest && event.target.closest(".column");
      if (!dragged || !column) return;
      event.preventDefault();
      column.classList.remove("over");
      const { card, from, next } = dragged;
      dragged = null;
      const stage = column.dataset.stage;
      if (stage === card.dataset.stage) return;
      column.querySelector(".cards").append(card);  // shown where it was dropped while the workflow decides
      card.classList.add("moving");
      alertBox.hidden = true;
      let answer;
      try {
        answer = await call(`/api/v1/opportunities/${encodeURIComponent(card.dataset.deal)}/stage`, "POST", { stage });
      } catch (error) {
        answer = { ok: false, status: 0, data: { detail: `Could not reach Dealflow: ${error.message}` } };
      }
      card.classList.remove("moving");
      if (answer.ok) {
        toast(`Moved to ${stage.replace(/_/g, " ")}`);
        setTimeout(() => location.reload(), 400);  // totals, SLA state and the card's own stage menu
        return;
      }
      from.insertBefore(card, next);  // refused: the card snaps back
      const title = card.querySelector("a").textContent;
      alertBox.textContent = "";
      showProblem(alertBox, { ...(answer.data || {}), detail: `${title} stays in ${card.dataset.stage.replace(/_/g, " ")}: ${(answer.data && answer.data.detail) || "refused"}` }, answer.status);
      alertBox.focus && alertBox.focus();
    });
  }
})();
