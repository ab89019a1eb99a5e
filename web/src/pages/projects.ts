// The signed-in user's projects, newest first, a page at a time. The search box
// asks the server (ListProjects' `title_contains`, ignoring case) a quarter of a
// second after the typing stops, starts again from the first page, and keeps
// "Load more" on the same filter; the search lives in the address as `?q=`.

import * as api from "../api.js";
import { h, replace } from "../dom.js";
import { explain } from "../errors.js";
import type { Project } from "../gen/cadenza/v1/project_pb.js";
import { PROJECT_STATES } from "../labels.js";
import type { PageContext } from "../router.js";
import { alertBox, heading, setBusy, showAlert } from "../ui.js";
import { formatDate, lastSegment, timestampDate } from "../util.js";

const PAGE_SIZE = 20;
/** Wait this long after the last keystroke before searching. */
const DEBOUNCE_MS = 250;
/** ListProjectsRequest.title_contains allows up to 100 characters. */
const MAX_QUERY = 100;

export function projectsPage(ctx: PageContext): void {
  document.title = "Your songs · Cadenza";
  let loaded: Project[] = [];
  let nextToken = "";
  /** The filter the list shows (trimmed). */
  let query = (ctx.query.get("q") ?? "").trim().slice(0, MAX_QUERY);
  /** Aborts the calls of the search shown, when another replaces it. */
  let searching = new AbortController();
  let timer = 0;
  /** Whether the last call failed (its error is in the alert box). */
  let failed = false;

  const search = h("input", {
    type: "search",
    id: "project-search",
    name: "q",
    autocomplete: "off",
    spellcheck: "false",
    maxlength: MAX_QUERY,
    placeholder: "Part of a title",
    "aria-describedby": "project-search-hint",
    "aria-controls": "project-list",
  });
  search.value = query;
  const list = h("ul", { class: "projects", id: "project-list", "data-testid": "project-list", "aria-busy": "true" });
  const status = h("p", { class: "muted", role: "status", "data-testid": "project-status" });
  const more = h("button", { type: "button", class: "secondary", hidden: true, "data-testid": "load-more" }, "Load more");
  const box = alertBox();
  const form = h(
    "form",
    { class: "search", role: "search", "aria-label": "Search your songs" },
    h("label", { for: search.id }, "Search by title"),
    search,
    h("p", { class: "hint", id: "project-search-hint" }, "Shows the songs whose title contains this text, in any case."),
  );

  ctx.main.append(
    h(
      "section",
      {},
      h("div", { class: "title-row" }, heading("Your songs"), h("a", { href: "/new", class: "button" }, "New song")),
      form,
      box,
      list,
      status,
      more,
    ),
  );

  const draw = () => {
    replace(list, loaded.map(item));
    list.dataset.query = query;
    const n = loaded.length;
    if (failed && n === 0) replace(status, "");
    else if (n > 0) replace(status, query ? `${n} song${n === 1 ? "" : "s"} with “${query}” in the title${nextToken ? ", and more to load" : ""}.` : "");
    else if (query) replace(status, `No songs have “${query}” in their title.`);
    else replace(status, "No songs yet. Make your first one!");
  };

  /** Loads the next page of the current search (the first when `fresh`). */
  const load = async (fresh: boolean) => {
    if (fresh) {
      searching.abort();
      searching = new AbortController();
      loaded = [];
      nextToken = "";
      more.hidden = true;
      replace(status, query ? `Searching for “${query}”…` : "Loading…");
    }
    const own = searching.signal;
    setBusy(more, true, "Loading…");
    list.setAttribute("aria-busy", "true");
    try {
      const page = await api.projects.listProjects({ pageSize: PAGE_SIZE, pageToken: nextToken, titleContains: query }, { signal: own });
      if (own.aborted) return;
      loaded.push(...page.projects);
      nextToken = page.nextPageToken;
      failed = false;
      showAlert(box, null);
    } catch (e) {
      if (own.aborted) return;
      failed = true;
      showAlert(box, explain(e).message);
    } finally {
      if (!own.aborted) {
        setBusy(more, false);
        list.setAttribute("aria-busy", "false");
      }
    }
    if (own.aborted) return;
    more.hidden = !nextToken;
    draw();
  };

  /** Searches for what the box says now, if it changed. */
  const apply = () => {
    clearTimeout(timer);
    timer = 0;
    const q = search.value.trim().slice(0, MAX_QUERY);
    if (q === query || ctx.signal.aborted) return;
    query = q;
    // Keep the search in the address (without a history entry per keystroke).
    const params = new URLSearchParams(location.search);
    if (q) params.set("q", q);
    else params.delete("q");
    const qs = params.toString();
    history.replaceState(history.state, "", `${location.pathname}${qs ? `?${qs}` : ""}`);
    void load(true);
  };

  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = window.setTimeout(apply, DEBOUNCE_MS);
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    apply();
  });
  more.addEventListener("click", () => void load(false));
  ctx.signal.addEventListener("abort", () => {
    clearTimeout(timer);
    searching.abort();
  });
  void load(true);
}

function item(p: Project): HTMLLIElement {
  const id = lastSegment(p.name);
  return h(
    "li",
    { class: "project", "data-testid": "project-item" },
    h("a", { href: `/projects/${encodeURIComponent(id)}` }, p.title || "Untitled song"),
    h(
      "span",
      { class: "meta" },
      h("span", { class: `badge state-${PROJECT_STATES[p.state].toLowerCase()}` }, PROJECT_STATES[p.state]),
      ` ${p.durationSeconds} s${p.hasVocals ? ", vocals" : ""} · ${formatDate(timestampDate(p.createTime))}`,
    ),
  );
}
