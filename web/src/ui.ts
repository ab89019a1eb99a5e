// Small accessible building blocks shared by the pages: labelled fields with an
// error slot, an alert box, busy buttons.

import { h, replace, uid, type Child } from "./dom.js";
import type { Problem } from "./errors.js";

type Control = HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement;

/** A labelled control with an optional hint and a slot for its error message. */
export function field(label: Child, control: Control, hint?: Child): HTMLDivElement {
  const id = control.id || uid("field");
  control.id = id;
  const name = control.getAttribute("name") ?? "";
  const hintEl = hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null;
  const errorEl = h("p", { class: "field-error", id: `${id}-error`, "data-error-for": name, hidden: true });
  control.setAttribute("aria-describedby", [hintEl?.id, errorEl.id].filter(Boolean).join(" "));
  const isCheck = control instanceof HTMLInputElement && (control.type === "checkbox" || control.type === "radio");
  return h(
    "div",
    { class: isCheck ? "field check" : "field" },
    isCheck ? [control, h("label", { for: id }, label)] : [h("label", { for: id }, label), control],
    hintEl,
    errorEl,
  );
}

/** A region that announces errors to screen readers when filled. */
export function alertBox(): HTMLDivElement {
  return h("div", { class: "alert", role: "alert", hidden: true, "data-testid": "alert" });
}

export function showAlert(box: HTMLElement, message: string | null, kind: "error" | "info" = "error"): void {
  box.hidden = !message;
  box.className = `alert alert-${kind}`;
  replace(box, message ?? "");
}

/**
 * Shows a failed call's problem on a form: each field violation beside its
 * control, the rest in the alert box. Focuses the first control in error.
 */
export function showProblem(form: HTMLElement, box: HTMLElement, problem: Problem): void {
  clearFieldErrors(form);
  const unmatched: string[] = [];
  let first: HTMLElement | null = null;
  for (const [name, message] of Object.entries(problem.fields)) {
    const slot = form.querySelector<HTMLElement>(`[data-error-for="${CSS.escape(name)}"]`);
    if (!slot) {
      unmatched.push(message);
      continue;
    }
    slot.hidden = false;
    replace(slot, message);
    const control = form.querySelector<HTMLElement>(`[name="${CSS.escape(name)}"]`);
    control?.setAttribute("aria-invalid", "true");
    first ??= control;
  }
  const matched = Object.keys(problem.fields).length - unmatched.length;
  const text = matched > 0 ? [problem.message, ...unmatched].join(" ") : unmatched.length ? unmatched.join(" ") : problem.message;
  showAlert(box, text);
  first?.focus();
}

export function clearFieldErrors(form: HTMLElement): void {
  for (const slot of form.querySelectorAll<HTMLElement>("[data-error-for]")) {
    slot.hidden = true;
    replace(slot);
  }
  for (const control of form.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
}

/** Disables a button while work runs, with a label saying so. */
export function setBusy(button: HTMLButtonElement, busy: boolean, busyLabel = "Working…"): void {
  if (busy) {
    button.dataset.label ??= button.textContent ?? "";
    button.textContent = busyLabel;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
  } else {
    if (button.dataset.label !== undefined) button.textContent = button.dataset.label;
    delete button.dataset.label;
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

/** The page's main heading; the router moves focus to it after navigating. */
export function heading(text: Child): HTMLHeadingElement {
  return h("h1", { tabindex: -1 }, text);
}
