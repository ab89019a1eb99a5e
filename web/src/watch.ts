// Follows a project's stage events (ProjectService.WatchProject) for as long as
// the page is open, starting after the event id the caller already knows (its
// GetProjectStatus snapshot's). The stream resumes after a drop from the last
// event id seen, with growing pauses between attempts, and since event ids only
// increase, an event at or below the last one seen is a repeat and is skipped:
// nothing is applied twice and nothing is missed.

import { Code, ConnectError } from "@connectrpc/connect";
import * as api from "./api.js";
import { explain, type Problem } from "./errors.js";
import type { StageEvent } from "./gen/cadenza/v1/project_pb.js";
import { sleep } from "./util.js";

export type Connection = "connecting" | "live" | "reconnecting";

export interface WatchOptions {
  /** `projects/{id}` */
  project: string;
  signal: AbortSignal;
  onEvent: (event: StageEvent) => void;
  onConnection: (state: Connection, retryInSeconds?: number) => void;
  /** The watch stopped for good (unknown project, no permission, signed out). */
  onFatal: (problem: Problem) => void;
}

export interface WatchStats {
  /**
   * Events up to this id are known: set it to the snapshot's
   * `ProjectStatus.last_event_id` to start there; it then follows the events
   * received, and a reconnect resumes after it.
   */
  lastEventId: bigint;
  applied: number;
  repeats: number;
  reconnects: number;
}

/**
 * Dispatching this event on `window` breaks the current stream as a network drop
 * would, so tests (and people checking by hand) can watch the resume happen.
 */
export const DROP_EVENT = "cadenza:drop-watch";

const FATAL = new Set([Code.NotFound, Code.PermissionDenied, Code.InvalidArgument, Code.Unimplemented]);

/** Pause before reconnect attempt `n` (0-based): 0.5 s doubling to 15 s, with jitter. */
export function backoffMs(n: number): number {
  const base = Math.min(15_000, 500 * 2 ** n);
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

export async function watchProject(opts: WatchOptions, stats: WatchStats): Promise<void> {
  let failures = 0;
  while (!opts.signal.aborted) {
    opts.onConnection(stats.reconnects === 0 && failures === 0 ? "connecting" : "reconnecting");
    const connection = new AbortController();
    const stop = () => connection.abort();
    const drop = () => connection.abort(new Error("dropped on request"));
    opts.signal.addEventListener("abort", stop);
    window.addEventListener(DROP_EVENT, drop);
    try {
      const stream = api.projects.watchProject(
        { name: opts.project, afterEventId: stats.lastEventId },
        // Response headers mean the gateway accepted the watch: it is live.
        { signal: connection.signal, onHeader: () => opts.onConnection("live") },
      );
      for await (const event of stream) {
        failures = 0;
        if (event.eventId <= stats.lastEventId) {
          stats.repeats += 1;
          continue;
        }
        stats.lastEventId = event.eventId;
        stats.applied += 1;
        opts.onEvent(event);
      }
      // The server ended the stream (a restart, an idle timeout): resume.
    } catch (e) {
      if (opts.signal.aborted) return;
      const err = ConnectError.from(e);
      if (err.code === Code.Unauthenticated) {
        const refreshed = await api.refreshSession().catch(() => null);
        if (refreshed === false) {
          api.sessionExpired();
          return;
        }
        if (refreshed === true) continue;
      } else if (FATAL.has(err.code)) {
        opts.onFatal(explain(err));
        return;
      }
      failures += 1;
    } finally {
      opts.signal.removeEventListener("abort", stop);
      window.removeEventListener(DROP_EVENT, drop);
    }
    if (opts.signal.aborted) return;
    stats.reconnects += 1;
    const wait = failures === 0 ? 1000 : backoffMs(failures - 1);
    opts.onConnection("reconnecting", Math.ceil(wait / 1000));
    try {
      await sleep(wait, opts.signal);
    } catch {
      return;
    }
  }
}
