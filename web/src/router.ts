// Client-side routing with the History API. The gateway answers index.html for
// any unknown path, so deep links (`/projects/{id}`, `/s/{token}`) load the app
// and land here.

export interface PageContext {
  /** The route pattern's capture groups. */
  params: string[];
  query: URLSearchParams;
  /** Aborted when the user navigates away: stop streams and timers. */
  signal: AbortSignal;
  main: HTMLElement;
}

export interface Route {
  pattern: RegExp;
  page: (ctx: PageContext) => void | Promise<void>;
  /** Pages that need a signed-in user; others (sign-in, gift pages) work signed out. */
  signedIn: boolean;
}

let routes: Route[] = [];
let controller: AbortController | null = null;
let guard: (route: Route, path: string) => Promise<string | null> = async () => null;
let firstRender = true;

export function setRoutes(list: Route[], signedInGuard: typeof guard): void {
  routes = list;
  guard = signedInGuard;
}

export function navigate(path: string, options: { replace?: boolean } = {}): void {
  if (options.replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  void render();
}

export function currentPath(): string {
  return location.pathname + location.search;
}

export async function render(): Promise<void> {
  controller?.abort();
  const own = new AbortController();
  controller = own;
  const main = document.getElementById("main")!;
  const path = location.pathname;
  const route = routes.find((r) => r.pattern.test(path)) ?? routes[routes.length - 1]!;
  const redirect = await guard(route, currentPath());
  if (own.signal.aborted) return;
  if (redirect) {
    navigate(redirect, { replace: true });
    return;
  }
  main.replaceChildren();
  const params = (path.match(route.pattern) ?? []).slice(1).map((p) => decodeURIComponent(p));
  // Pages draw their heading at once and fill in the rest as calls answer.
  const drawing = route.page({ params, query: new URLSearchParams(location.search), signal: own.signal, main });
  if (!firstRender) {
    // Tell assistive technology the page changed: focus its heading.
    main.querySelector<HTMLElement>("h1")?.focus();
  }
  firstRender = false;
  try {
    await drawing;
  } catch (e) {
    if (!own.signal.aborted) throw e;
  }
}

/** Same-origin links navigate inside the app, without a page load. */
export function interceptLinks(): void {
  document.addEventListener("click", (event) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) {
      return;
    }
    const link = (event.target as Element | null)?.closest?.("a");
    if (!link || link.target || link.hasAttribute("download") || link.dataset.external !== undefined) return;
    const url = new URL(link.href, location.href);
    if (url.origin !== location.origin) return;
    if (url.hash && url.pathname === location.pathname) return; // in-page anchors (skip link)
    event.preventDefault();
    if (url.pathname + url.search !== currentPath()) navigate(url.pathname + url.search);
  });
  window.addEventListener("popstate", () => void render());
}
