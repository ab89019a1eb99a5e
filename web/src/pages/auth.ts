// Sign up and sign in (AuthService.Register / Login), and in dev mode a button
// for a dev token (DevService.IssueDevToken, shown only when that call succeeds).

import { Code } from "@connectrpc/connect";
import * as api from "../api.js";
import { h } from "../dom.js";
import { explain } from "../errors.js";
import type { User } from "../gen/cadenza/v1/auth_pb.js";
import { navigate, type PageContext } from "../router.js";
import { alertBox, clearFieldErrors, field, heading, setBusy, showAlert, showProblem } from "../ui.js";
import { timestampDate } from "../util.js";

/** The terms version a previous session reported, to name it before sign-up. */
const TERMS_KEY = "cadenza.termsVersion";

function safeNext(query: URLSearchParams): string {
  const next = query.get("next") ?? "";
  // Only paths inside the studio: never an absolute or protocol-relative URL.
  return next.startsWith("/") && !next.startsWith("//") ? next : "/projects";
}

export function authPage(ctx: PageContext, mode: "signin" | "signup"): void {
  const signup = mode === "signup";
  document.title = signup ? "Sign up · Cadenza" : "Sign in · Cadenza";
  const next = safeNext(ctx.query);
  const knownTerms = localStorage.getItem(TERMS_KEY) ?? "";

  const email = h("input", { type: "email", name: "email", autocomplete: "email", required: true, maxlength: 254 });
  const password = h("input", {
    type: "password",
    name: "password",
    autocomplete: signup ? "new-password" : "current-password",
    required: true,
    minlength: signup ? 10 : null,
    maxlength: 256,
  });
  const terms = h("input", { type: "checkbox", name: "accept_terms_version", required: true });
  const submit = h("button", { type: "submit" }, signup ? "Create account" : "Sign in");
  const box = alertBox();
  const form = h(
    "form",
    { class: "card narrow", novalidate: true, "aria-labelledby": "auth-title" },
    box,
    field("Email", email),
    field("Password", password, signup ? "At least 10 characters." : null),
    signup
      ? field(
          ["I accept the terms of service", knownTerms ? ` (version ${knownTerms})` : ""],
          terms,
          "Cadenza makes music with AI; the terms say how you may use it.",
        )
      : null,
    submit,
  );
  const devSlot = h("div", { class: "dev-slot" });

  const title = heading(signup ? "Create your Cadenza account" : "Sign in to Cadenza");
  title.id = "auth-title";
  ctx.main.append(
    h(
      "section",
      { class: "auth" },
      title,
      ctx.query.get("expired") ? h("p", { class: "alert alert-info", role: "status" }, "Your session ended. Please sign in again.") : null,
      form,
      h(
        "p",
        { class: "switch" },
        signup ? ["Already have an account? ", h("a", { href: `/signin${location.search}` }, "Sign in")] : ["New to Cadenza? ", h("a", { href: `/signup${location.search}` }, "Create an account")],
      ),
      devSlot,
    ),
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    showAlert(box, null);
    const local: Record<string, string> = {};
    if (!email.value.includes("@")) local.email = "Enter your email address.";
    if (!password.value) local.password = "Enter your password.";
    else if (signup && password.value.length < 10) local.password = "Use at least 10 characters.";
    if (signup && !terms.checked) local.accept_terms_version = "Please accept the terms of service to create an account.";
    if (Object.keys(local).length > 0) {
      showProblem(form, box, { message: "Some details need fixing: see the messages beside the fields.", fields: local, code: undefined, reason: "" });
      return;
    }
    setBusy(submit, true, signup ? "Creating account…" : "Signing in…");
    try {
      const session = signup ? await register(email.value.trim(), password.value, knownTerms) : await api.auth.login({ email: email.value.trim(), password: password.value });
      api.adopt(session);
      if (session.user) await settleTerms(session.user, signup);
      navigate(next, { replace: true });
    } catch (e) {
      const problem = explain(e);
      if (problem.code === Code.Unauthenticated && !signup) {
        problem.message = "That email and password do not match an account.";
      } else if (problem.code === Code.AlreadyExists) {
        problem.message = "An account with this email already exists. Sign in instead.";
        problem.fields = { email: "This email already has an account." };
      }
      showProblem(form, box, problem);
    } finally {
      setBusy(submit, false);
    }
  });

  void offerDevToken(devSlot, next, ctx.signal);
}

/**
 * Registers, naming the terms version a previous visit learnt. If that version is
 * stale the server refuses it; the account is then created without it and the
 * current version accepted right after (settleTerms), since the box was ticked.
 */
async function register(email: string, password: string, termsVersion: string) {
  try {
    return await api.auth.register({ email, password, acceptTermsVersion: termsVersion });
  } catch (e) {
    const problem = explain(e);
    if (termsVersion && problem.code === Code.InvalidArgument && problem.fields.accept_terms_version && Object.keys(problem.fields).length === 1) {
      return await api.auth.register({ email, password, acceptTermsVersion: "" });
    }
    throw e;
  }
}

/** Remembers the current terms version; on sign-up, accepts it if not yet done. */
async function settleTerms(user: User, acceptedNow: boolean): Promise<void> {
  if (user.currentTermsVersion) localStorage.setItem(TERMS_KEY, user.currentTermsVersion);
  if (acceptedNow && user.currentTermsVersion && user.acceptedTermsVersion !== user.currentTermsVersion) {
    try {
      api.updateUser(await api.auth.acceptTerms({ version: user.currentTermsVersion }));
    } catch {
      // The header's terms notice offers it again.
    }
  }
}

/** In dev mode the gateway issues tokens without an account: offer one. */
async function offerDevToken(slot: HTMLElement, next: string, signal: AbortSignal): Promise<void> {
  let issued;
  try {
    issued = await api.dev.issueDevToken({}, { signal });
  } catch {
    return; // UNIMPLEMENTED outside dev mode: show nothing.
  }
  if (signal.aborted) return;
  slot.append(
    h(
      "div",
      { class: "card narrow dev" },
      h("p", {}, "This server runs in dev mode."),
      h(
        "button",
        {
          type: "button",
          class: "secondary",
          onclick: () => {
            api.adoptDevToken(issued.token, timestampDate(issued.expireTime));
            navigate(next, { replace: true });
          },
        },
        "Use dev token",
      ),
    ),
  );
}
