// Turns a failed call into sentences a person understands, from the gRPC status
// code and the google.rpc details the gateway attaches (ErrorInfo reason,
// RetryInfo, QuotaFailure, PreconditionFailure, BadRequest field violations).

import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  PreconditionFailureSchema,
  QuotaFailureSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb.js";
import { durationSeconds, formatClock } from "./util.js";

export interface Problem {
  /** One or two sentences for the person. */
  message: string;
  /** Field name (last path segment, e.g. `duration_seconds`) to what is wrong with it. */
  fields: Record<string, string>;
  code: Code | undefined;
  /** ErrorInfo.reason, e.g. `INSUFFICIENT_CREDITS`. */
  reason: string;
}

function sentence(text: string): string {
  const t = text.trim();
  if (!t) return t;
  const capital = t.charAt(0).toUpperCase() + t.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

export function explain(e: unknown): Problem {
  if (e instanceof DOMException && e.name === "AbortError") {
    return { message: "Cancelled.", fields: {}, code: Code.Canceled, reason: "" };
  }
  const err = ConnectError.from(e);
  const info = err.findDetails(ErrorInfoSchema)[0];
  const reason = info?.reason ?? "";
  const retry = err.findDetails(RetryInfoSchema)[0];
  const retrySeconds = retry ? Math.max(1, Math.ceil(durationSeconds(retry.retryDelay))) : 0;
  const quota = err.findDetails(QuotaFailureSchema).flatMap((q) => q.violations);
  const precondition = err.findDetails(PreconditionFailureSchema).flatMap((p) => p.violations);
  const fields: Record<string, string> = {};
  for (const bad of err.findDetails(BadRequestSchema)) {
    for (const v of bad.fieldViolations) {
      const key = v.field.slice(v.field.lastIndexOf(".") + 1);
      fields[key] = fields[key] ? `${fields[key]} ${sentence(v.description)}` : sentence(v.description);
    }
  }
  const problem = (message: string): Problem => ({ message, fields, code: err.code, reason });
  const raw = sentence(err.rawMessage);

  // A fetch that never reached the gateway surfaces as UNKNOWN "Failed to fetch".
  const unreachable = err.code === Code.Unknown && /failed to fetch|networkerror|load failed|network/i.test(err.rawMessage);
  switch (unreachable ? Code.Unavailable : err.code) {
    case Code.Unavailable:
      return problem("Cadenza can't be reached right now. Check your connection and try again in a moment.");
    case Code.ResourceExhausted:
      if (quota.length > 0 && retry) {
        const resets = formatClock(new Date(Date.now() + retrySeconds * 1000));
        const what = quota[0]?.description ? `${sentence(quota[0].description)} ` : "";
        return problem(`${what}Your daily allowance resets at ${resets}.`);
      }
      if (reason === "LOGIN_THROTTLED" && retry) {
        return problem(`Too many failed sign-ins — try again in ${retrySeconds} seconds.`);
      }
      if (retry) return problem(`Too many requests — try again in ${retrySeconds} seconds.`);
      return problem(raw || "Too many requests — try again shortly.");
    case Code.FailedPrecondition:
      if (reason === "INSUFFICIENT_CREDITS") {
        const detail = quota[0]?.description ? ` ${sentence(quota[0].description)}` : "";
        return problem(`You don't have enough credits for this song.${detail}`);
      }
      if (precondition.length > 0) {
        return problem(precondition.map((v) => sentence(v.description)).join(" "));
      }
      return problem(raw || "This can't be done right now.");
    case Code.InvalidArgument:
      if (Object.keys(fields).length > 0) {
        return problem("Some details need fixing: see the messages beside the fields.");
      }
      return problem(raw || "Something in the request was not accepted.");
    case Code.Unauthenticated:
      return problem(raw && reason !== "UNAUTHENTICATED" ? raw : "Please sign in again.");
    case Code.PermissionDenied:
      return problem("Your account is not allowed to do this. Viewers can listen but not create songs.");
    case Code.NotFound:
      return problem(raw || "That could not be found.");
    case Code.AlreadyExists:
      return problem(raw || "That already exists.");
    case Code.Unimplemented:
      return problem("This server does not offer that yet.");
    case Code.DeadlineExceeded:
      return problem("Cadenza took too long to answer. Please try again.");
    case Code.Canceled:
      return problem("Cancelled.");
    default:
      return problem(raw && err.code !== Code.Internal ? raw : "Something went wrong on Cadenza's side. Please try again.");
  }
}
