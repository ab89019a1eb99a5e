// The studio's entry: the page frame (header, navigation, terms notice), the
// routes, and the rule that signed-in pages restore or ask for a session.

import "./styles.css";
import * as api from "./api.js";
import { h, replace } from "./dom.js";
import { explain } from "./errors.js";
import { authPage } from "./pages/auth.js";
import { newSongPage } from "./pages/new-song.js";
import { notFoundPage } from "./pages/not-found.js";
import { projectPage } from "./pages/project.js";
import { projectsPage } from "./pages/projects.js";
import { sharedSongPage } from "./pages/shared.js";
import { currentPath, interceptLinks, navigate, render, setRoutes, type Route } from "./router.js";

const routes: Route[] = [
  { pattern: /^\/s\/([^/]+)\/?$/, page: sharedSongPage, signedIn: false },
  { pattern: /^\/signin\/?$/, page: (ctx) => authPage(ctx, "signin"), signedIn: false },
  { pattern: /^\/signup\/?$/, page: (ctx) => authPage(ctx, "signup"), signedIn: false },
  { pattern: /^\/(?:projects\/?)?$/, page: projectsPage, signedIn: true },
  { pattern: /^\/new\/?$/, page: newSongPage, signedIn: true },
  { pattern: /^\/projects\/([^/]+)\/?$/, page: projectPage, signedIn: true },
  { pattern: /.*/, page: notFoundPage, signedIn: false },
];

/** Signed-in pages first try the stored refresh token, then send to sign-in. */
async function guard(route: Route, path: string): Promise<string | null> {
  if (!route.signedIn || api.session()) return null;
  if (api.hasRefreshToken()) {
    const main = document.getElementById("main")!;
    replace(main, h("p", { class: "muted", role: "status" }, "Signing you in…"));
    try {
      if (await api.refreshSession()) return null;
    } catch (e) {
      replace(main, h("div", { class: "alert alert-error", role: "alert" }, explain(e).message));
      return null;
    }
  }
  return `/signin?next=${encodeURIComponent(path)}`;
}

function renderHeader(): void {
  const nav = document.getElementById("nav")!;
  const s = api.session();
  if (!s) {
    replace(nav, h("a", { href: "/signin" }, "Sign in"), h("a", { href: "/signup", class: "button small" }, "Sign up"));
  } else {
    replace(
      nav,
      h("a", { href: "/projects" }, "Your songs"),
      h("a", { href: "/new" }, "New song"),
      h("span", { class: "who", title: s.user?.email ?? "" }, s.dev ? "dev token" : (s.user?.email ?? "")),
      h(
        "button",
        {
          type: "button",
          class: "link",
          onclick: async () => {
            await api.signOut();
            navigate("/signin");
          },
        },
        "Sign out",
      ),
    );
  }
  renderTermsNotice();
}

/** New terms of service wait for acceptance: say so, with a button to accept. */
function renderTermsNotice(): void {
  const notice = document.getElementById("notice")!;
  const user = api.session()?.user;
  const version = user?.currentTermsVersion ?? "";
  if (!user || !version || user.acceptedTermsVersion === version) {
    notice.hidden = true;
    replace(notice);
    return;
  }
  const status = h("span", { role: "status" });
  const button = h(
    "button",
    {
      type: "button",
      class: "small",
      onclick: async () => {
        button.disabled = true;
        try {
          api.updateUser(await api.auth.acceptTerms({ version }));
        } catch (e) {
          button.disabled = false;
          replace(status, explain(e).message);
        }
      },
    },
    `Accept the terms (version ${version})`,
  );
  notice.hidden = false;
  replace(notice, h("p", {}, `The terms of service changed (version ${version}). Please read and accept them to keep making songs. `, button, " ", status));
}

api.onSessionChange(renderHeader);
api.onSessionExpired(() => {
  const path = currentPath();
  if (!path.startsWith("/signin")) navigate(`/signin?next=${encodeURIComponent(path)}&expired=1`);
});

setRoutes(routes, guard);
interceptLinks();
renderHeader();
// A stored session is restored on every page, also those that work signed out
// (the header then shows who is signed in); signed-in pages wait for it.
if (api.hasRefreshToken()) void api.refreshSession().catch(() => {});
void render();
