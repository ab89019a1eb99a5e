// The one door to the gateway: a gRPC-web transport on the page's own origin (the
// gateway serves both the studio and the API), typed clients generated from the
// service contracts, and the session that authenticates them.
//
// The access token lives only in memory; the refresh token in localStorage so a
// reload or a new tab stays signed in. Refresh tokens rotate and a spent one
// presented again revokes the whole session family, so refreshing is serialised
// across tabs with a Web Lock and always uses the newest stored token.

import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AssetService } from "./gen/cadenza/v1/asset_pb.js";
import { AuthService, type Session, type User } from "./gen/cadenza/v1/auth_pb.js";
import { DevService } from "./gen/cadenza/v1/dev_pb.js";
import { ProjectService } from "./gen/cadenza/v1/project_pb.js";
import { ShareService } from "./gen/cadenza/v1/share_pb.js";
import { UsageService } from "./gen/cadenza/v1/usage_pb.js";
import { timestampDate } from "./util.js";

const REFRESH_KEY = "cadenza.refreshToken";
/** Refresh this long before the access token expires (less for short-lived tokens). */
const REFRESH_MARGIN_MS = 60_000;
/** Calls that need no access token. */
const ANONYMOUS = new Set(["Register", "Login", "Refresh", "Logout", "GetSharedSong", "IssueDevToken"]);

export interface SignedIn {
  accessToken: string;
  /** Milliseconds since the epoch; Infinity when unknown. */
  expiresAt: number;
  /** When to refresh: a minute before expiry, or a fifth of the lifetime if shorter. */
  refreshAt: number;
  user?: User;
  /** A dev-mode token: no refresh token, no account. */
  dev: boolean;
}

let current: SignedIn | null = null;
let refreshing: Promise<boolean> | null = null;
const listeners = new Set<() => void>();
let onExpired: () => void = () => {};

export function session(): SignedIn | null {
  return current;
}

/** Called when the session changes (sign-in, sign-out, user updated). */
export function onSessionChange(listener: () => void): void {
  listeners.add(listener);
}

/** Called when a call was refused for want of a valid session and refreshing failed. */
export function onSessionExpired(handler: () => void): void {
  onExpired = handler;
}

function notify(): void {
  for (const listener of listeners) listener();
}

/** Adopts a session from Register, Login or Refresh. */
export function adopt(s: Session): void {
  const now = Date.now();
  const expiresAt = timestampDate(s.accessTokenExpireTime)?.getTime() ?? Infinity;
  current = {
    accessToken: s.accessToken,
    expiresAt,
    refreshAt: expiresAt - Math.min(REFRESH_MARGIN_MS, (expiresAt - now) / 5),
    user: s.user,
    dev: false,
  };
  if (s.refreshToken) localStorage.setItem(REFRESH_KEY, s.refreshToken);
  notify();
}

export function adoptDevToken(token: string, expiresAt: Date | undefined): void {
  const end = expiresAt?.getTime() ?? Infinity;
  current = { accessToken: token, expiresAt: end, refreshAt: end, dev: true };
  notify();
}

export function updateUser(user: User): void {
  if (current) {
    current.user = user;
    notify();
  }
}

function forget(): void {
  current = null;
  localStorage.removeItem(REFRESH_KEY);
  notify();
}

export function hasRefreshToken(): boolean {
  return localStorage.getItem(REFRESH_KEY) !== null;
}

/**
 * Exchanges the stored refresh token for a new session. True on success; false
 * when there is no usable refresh token (the user must sign in). Network errors
 * are thrown, and keep the stored token for a later try.
 */
export function refreshSession(): Promise<boolean> {
  if (!refreshing) {
    const run = async (): Promise<boolean> => {
      const token = localStorage.getItem(REFRESH_KEY);
      if (!token) {
        if (current && !current.dev) forget();
        return false;
      }
      try {
        adopt(await anonymousAuth.refresh({ refreshToken: token }));
        return true;
      } catch (e) {
        const err = ConnectError.from(e);
        if (
          err.code === Code.Unauthenticated ||
          err.code === Code.InvalidArgument ||
          err.code === Code.NotFound ||
          err.code === Code.PermissionDenied
        ) {
          forget();
          return false;
        }
        throw err;
      }
    };
    const locks = typeof navigator !== "undefined" ? navigator.locks : undefined;
    const attempt = locks ? locks.request("cadenza.refresh", run) : run();
    refreshing = attempt.finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/** Ends the session on the server (best effort) and here. */
export async function signOut(): Promise<void> {
  const token = localStorage.getItem(REFRESH_KEY);
  forget();
  if (token) {
    try {
      await anonymousAuth.logout({ refreshToken: token });
    } catch {
      // The session is gone from this browser either way.
    }
  }
}

/** Refreshes ahead of expiry so calls rarely meet an expired token. */
async function ensureFresh(): Promise<void> {
  if (current && !current.dev && Date.now() >= current.refreshAt) {
    try {
      await refreshSession();
    } catch {
      // Unreachable: let the call itself fail with a clearer error.
    }
  }
}

const authenticate: Interceptor = (next) => async (req) => {
  if (ANONYMOUS.has(req.method.name)) return next(req);
  await ensureFresh();
  const used = current?.accessToken;
  if (used) req.header.set("authorization", `Bearer ${used}`);
  if (req.stream) return next(req);
  try {
    return await next(req);
  } catch (e) {
    const err = ConnectError.from(e);
    if (err.code !== Code.Unauthenticated) throw err;
    // Another call may have refreshed meanwhile; otherwise refresh now, once.
    const fresh = current && current.accessToken !== used ? true : !current?.dev && (await refreshSession().catch(() => false));
    if (!fresh || !current) {
      onExpired();
      throw err;
    }
    req.header.set("authorization", `Bearer ${current.accessToken}`);
    return await next(req);
  }
};

const transport = createGrpcWebTransport({
  baseUrl: window.location.origin,
  interceptors: [authenticate],
});

const anonymousTransport = createGrpcWebTransport({ baseUrl: window.location.origin });

export const auth = createClient(AuthService, transport);
const anonymousAuth = createClient(AuthService, anonymousTransport);
export const dev = createClient(DevService, transport);
export const projects = createClient(ProjectService, transport);
export const assets = createClient(AssetService, transport);
export const usage = createClient(UsageService, transport);
export const shares = createClient(ShareService, transport);

/** Tells the app a streaming call found the session gone (unary calls do it themselves). */
export function sessionExpired(): void {
  onExpired();
}
