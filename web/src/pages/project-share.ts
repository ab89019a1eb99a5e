// Gift links for a finished song (ShareService): create one with an optional
// message, copy its address, see and revoke the project's links.

import { Code } from "@connectrpc/connect";
import * as api from "../api.js";
import { h, replace } from "../dom.js";
import { explain } from "../errors.js";
import type { ShareLink } from "../gen/cadenza/v1/share_pb.js";
import { alertBox, clearFieldErrors, field, setBusy, showAlert, showProblem } from "../ui.js";
import { formatDate, timestampDate, uuid } from "../util.js";

export function shareUrl(token: string): string {
  return `${location.origin}/s/${encodeURIComponent(token)}`;
}

/** Copies text; falls back to selecting it where the Clipboard API is missing (plain-http origins). */
async function copy(text: string, input: HTMLInputElement): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    input.focus();
    input.select();
    try {
      return document.execCommand("copy");
    } catch {
      return false;
    }
  }
}

function copyableUrl(url: string, testid: string): HTMLElement {
  const input = h("input", { type: "text", readonly: true, value: url, "aria-label": "Share address", "data-testid": testid });
  const status = h("span", { role: "status", class: "muted" });
  const button = h(
    "button",
    {
      type: "button",
      class: "secondary small",
      onclick: async () => {
        replace(status, (await copy(url, input)) ? "Copied." : "Select the address and copy it.");
      },
    },
    "Copy",
  );
  return h("div", { class: "copy-row" }, input, button, status);
}

export function shareSection(project: string, signal: AbortSignal): HTMLElement {
  const message = h("textarea", { name: "message", rows: 2, maxlength: 500 });
  const submit = h("button", { type: "submit", "data-testid": "create-share" }, "Create share link");
  const box = alertBox();
  const created = h("div", { class: "created", "data-testid": "share-created" });
  const list = h("ul", { class: "share-links", "data-testid": "share-links" });
  const listStatus = h("p", { class: "muted", role: "status" });
  const form = h("form", { class: "share-form", novalidate: true }, box, field("Message for the listener (optional)", message, "Shown on the gift page; up to 500 characters."), submit);
  let links: ShareLink[] = [];

  const draw = () => {
    replace(list, links.map((link) => linkItem(link)));
    replace(listStatus, links.length ? "" : "No links yet.");
  };

  const linkItem = (link: ShareLink): HTMLLIElement => {
    const revoked = timestampDate(link.revokeTime);
    const expires = timestampDate(link.expireTime);
    const expired = expires !== undefined && expires.getTime() <= Date.now();
    const state = revoked ? `Revoked ${formatDate(revoked)}` : expired ? "Expired" : expires ? `Works until ${formatDate(expires)}` : "Works until revoked";
    const revoke = h("button", { type: "button", class: "secondary small" }, "Revoke");
    revoke.addEventListener("click", async () => {
      setBusy(revoke, true, "Revoking…");
      try {
        const updated = await api.shares.revokeShareLink({ name: link.name });
        links = links.map((l) => (l.name === updated.name ? updated : l));
        draw();
      } catch (e) {
        setBusy(revoke, false);
        replace(listStatus, explain(e).message);
      }
    });
    return h(
      "li",
      { class: revoked || expired ? "inactive" : "" },
      h("a", { href: shareUrl(link.token) }, shareUrl(link.token)),
      link.message ? h("q", {}, link.message) : null,
      h("span", { class: "muted" }, `Created ${formatDate(timestampDate(link.createTime))}. ${state}.`),
      revoked || expired ? null : revoke,
    );
  };

  // One submission = one key: a retry after a lost answer repeats it and gets the
  // same link back; another message is another submission.
  let attempt = { key: uuid(), message: "" };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    showAlert(box, null);
    setBusy(submit, true, "Creating…");
    try {
      const text = message.value.trim();
      if (text !== attempt.message) attempt = { key: uuid(), message: text };
      const link = await api.shares.createShareLink({ parent: project, message: text, requestId: attempt.key });
      attempt = { key: uuid(), message: "" };
      links = [link, ...links.filter((l) => l.name !== link.name)];
      draw();
      message.value = "";
      replace(created, h("p", {}, "Anyone with this address can listen to the song:"), copyableUrl(shareUrl(link.token), "share-url"));
      created.querySelector("input")?.focus();
    } catch (e) {
      showProblem(form, box, explain(e));
    } finally {
      setBusy(submit, false);
    }
  });

  void (async () => {
    try {
      links = (await api.shares.listShareLinks({ parent: project }, { signal })).shareLinks;
      draw();
    } catch (e) {
      if (signal.aborted) return;
      const problem = explain(e);
      replace(listStatus, problem.code === Code.Unimplemented ? "Sharing is not available on this server yet." : problem.message);
    }
  })();

  return h(
    "section",
    { class: "card", "aria-labelledby": "share-title", "data-testid": "share" },
    h("h2", { id: "share-title" }, "Share"),
    h("p", {}, "Send a gift link: the page plays the song and shows your message, never your email or prompt."),
    form,
    created,
    h("h3", {}, "Links"),
    list,
    listStatus,
  );
}
