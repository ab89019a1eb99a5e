// One project: its settings, every stage of its latest run updated live from
// WatchProject (on top of a GetProjectStatus snapshot: the watch starts after the
// snapshot's `last_event_id`, so history is not replayed), Cancel and
// Regenerate, and once the song is complete the player, downloads and share links.

import * as api from "../api.js";
import { h, replace } from "../dom.js";
import { explain } from "../errors.js";
import { RunState, StageKind, StageState } from "../gen/cadenza/v1/common_pb.js";
import { StageEvent_Type, type Project, type ProjectStatus, type Run, type StageEvent } from "../gen/cadenza/v1/project_pb.js";
import { RUN_STATE_IDS, RUN_STATES, STAGE_IDS, STAGE_NAMES, STAGE_STATE_IDS, STAGE_STATES } from "../labels.js";
import type { PageContext } from "../router.js";
import { alertBox, heading, setBusy, showAlert } from "../ui.js";
import { durationSeconds, formatEta, songCost, uuid } from "../util.js";
import { watchProject, type WatchStats } from "../watch.js";
import { showOutputs } from "./project-outputs.js";
import { shareSection } from "./project-share.js";

interface StageView {
  kind: StageKind;
  state: StageState;
  progress: number;
  attempt: number;
  /** For a failed stage: what went wrong, for a person. */
  message: string;
  /** For a failed stage: the machine-readable reason, when there is no message. */
  code: string;
}

/** A server's message as a sentence: capitalised, ending with a full stop. */
function sentence(text: string): string {
  const t = text.trim();
  if (!t) return "";
  return t[0]!.toUpperCase() + t.slice(1) + (/[.!?…]$/.test(t) ? "" : ".");
}

/** Why a stage failed, in a sentence ("" when nothing is known). */
function failure(s: StageView): string {
  if (s.message) return sentence(s.message);
  return s.code ? `It stopped with the error ${s.code}.` : "";
}

/** Stage states only move forward within an attempt (common.proto). */
function stageRank(state: StageState): number {
  switch (state) {
    case StageState.PENDING:
      return 1;
    case StageState.QUEUED:
      return 2;
    case StageState.RUNNING:
      return 3;
    case StageState.SUCCEEDED:
    case StageState.FAILED:
    case StageState.CANCELLED:
    case StageState.SKIPPED:
      return 4;
    default:
      return 0;
  }
}

function runRank(state: RunState): number {
  if (state === RunState.QUEUED) return 1;
  if (state === RunState.RUNNING) return 2;
  if (state === RunState.UNSPECIFIED) return 0;
  return 3;
}

const finished = (state: RunState) => runRank(state) === 3;

/** A stage's state implied by an event's type, for events that do not name it. */
const STATE_OF_EVENT: Partial<Record<StageEvent_Type, StageState>> = {
  [StageEvent_Type.STAGE_QUEUED]: StageState.QUEUED,
  [StageEvent_Type.STAGE_STARTED]: StageState.RUNNING,
  [StageEvent_Type.STAGE_PROGRESS]: StageState.RUNNING,
  [StageEvent_Type.STAGE_SUCCEEDED]: StageState.SUCCEEDED,
  [StageEvent_Type.STAGE_FAILED]: StageState.FAILED,
  [StageEvent_Type.STAGE_CANCELLED]: StageState.CANCELLED,
};

export function projectPage(ctx: PageContext): Promise<void> {
  const id = ctx.params[0] ?? "";
  const name = `projects/${id}`;
  const signal = ctx.signal;
  document.title = "Song · Cadenza";

  // The view of the latest run.
  let project: Project | null = null;
  let run = "";
  let runState = RunState.UNSPECIFIED;
  let runError = "";
  let overall = 0;
  let etaText = "";
  let stages: StageView[] = [];
  /** Whether the watch has reached the current run's creation (later creations are newer runs). */
  let currentRunSeen = false;
  let outputsShownFor = "";
  let creditsPerSecond = 1;
  let regenerateKey = uuid();
  const stats: WatchStats = { lastEventId: 0n, applied: 0, repeats: 0, reconnects: 0 };

  const title = heading("Loading…");
  const settings = h("p", { class: "settings muted" });
  const box = alertBox();
  const runLine = h("p", { class: "run-state", "data-testid": "run-state" });
  const connection = h("span", { class: "connection muted", "data-testid": "connection" });
  const bar = h("progress", { max: 1, value: 0, "aria-label": "Overall progress", "data-testid": "overall" });
  const detail = h("p", { class: "muted" });
  const stageList = h("ol", { class: "stages", "data-testid": "stages" });
  const live = h("div", { class: "sr-only", "aria-live": "polite", "data-testid": "announcer" });
  const cancel = h("button", { type: "button", class: "secondary", "data-testid": "cancel", hidden: true }, "Cancel");
  const regenerate = h("button", { type: "button", "data-testid": "regenerate", hidden: true }, "Regenerate");
  const playerSlot = h("div", { class: "player-slot" });
  const downloadsSlot = h("div", { class: "downloads-slot" });
  const outputs = h("section", { class: "card", "aria-labelledby": "listen-title", hidden: true, "data-testid": "outputs" }, h("h2", { id: "listen-title" }, "Listen"), playerSlot, downloadsSlot);
  const shareSlot = h("div");

  ctx.main.append(
    h(
      "article",
      { class: "project-page" },
      title,
      settings,
      box,
      h(
        "section",
        { class: "card", "aria-labelledby": "progress-title" },
        h("div", { class: "title-row" }, h("h2", { id: "progress-title" }, "Progress"), connection),
        runLine,
        bar,
        detail,
        stageList,
        live,
        h("div", { class: "actions" }, cancel, regenerate),
      ),
      outputs,
      shareSlot,
    ),
  );

  const announce = (text: string) => {
    live.textContent = text;
  };

  /** Why the run failed: its own message, else the first failed stage's. */
  const runReason = (): string => {
    if (runError) return runError;
    const stage = stages.find((s) => s.state === StageState.FAILED && failure(s));
    return stage ? `${STAGE_NAMES[stage.kind]}: ${failure(stage)}` : "";
  };

  const draw = () => {
    runLine.dataset.state = RUN_STATE_IDS[runState];
    replace(runLine, h("strong", {}, RUN_STATES[runState]), runState === RunState.FAILED && runReason() ? `: ${runReason()}` : "");
    const shown = runState === RunState.SUCCEEDED ? 1 : overall;
    bar.value = shown;
    bar.setAttribute("aria-valuetext", `${Math.round(shown * 100)} percent`);
    replace(detail, finished(runState) ? "" : etaText);
    replace(
      stageList,
      stages.map((s) => {
        const skipped = s.state === StageState.SKIPPED;
        const value = s.state === StageState.SUCCEEDED ? 1 : s.progress;
        return h(
          "li",
          { class: `stage state-${STAGE_STATE_IDS[s.state]}`, "data-testid": `stage-${STAGE_IDS[s.kind]}`, "data-state": STAGE_STATE_IDS[s.state] },
          h("span", { class: "stage-name" }, STAGE_NAMES[s.kind]),
          h("span", { class: "stage-state" }, STAGE_STATES[s.state], s.attempt > 1 ? ` (attempt ${s.attempt})` : "", s.state === StageState.RUNNING ? ` ${Math.round(value * 100)}%` : ""),
          skipped ? h("span", { class: "stage-bar" }) : h("progress", { class: "stage-bar", max: 1, value, "aria-label": `${STAGE_NAMES[s.kind]} progress` }),
          s.state === StageState.FAILED && failure(s) ? h("span", { class: "stage-error", "data-testid": "stage-error" }, failure(s)) : null,
        );
      }),
    );
    stageList.dataset.events = String(stats.applied);
    stageList.dataset.repeats = String(stats.repeats);
    stageList.dataset.reconnects = String(stats.reconnects);
    cancel.hidden = !run || finished(runState);
    regenerate.hidden = !!run && !finished(runState);
    const cost = project ? songCost(project.durationSeconds, project.hasVocals, creditsPerSecond) : 0;
    const verb = run ? "Regenerate" : "Generate";
    if (!regenerate.disabled) regenerate.textContent = cost ? `${verb} (${cost} credits)` : verb;
    if (runState === RunState.SUCCEEDED && outputsShownFor !== run && project) {
      outputsShownFor = run;
      outputs.hidden = false;
      void showOutputs(run, project.title, playerSlot, downloadsSlot, signal);
      replace(shareSlot, shareSection(name, signal));
    } else if (runState !== RunState.SUCCEEDED && outputsShownFor) {
      outputsShownFor = "";
      outputs.hidden = true;
      replace(playerSlot);
      replace(downloadsSlot);
      replace(shareSlot);
    }
  };

  const adoptStatus = (status: ProjectStatus) => {
    if (status.run !== run) {
      run = status.run;
      currentRunSeen = false;
      stages = [];
      runError = "";
    }
    if (runRank(status.state) >= runRank(runState)) runState = status.state;
    overall = Math.max(overall, status.progress);
    const eta = status.eta ? durationSeconds(status.eta) : 0;
    etaText = [status.queuePosition > 0 ? `${status.queuePosition} stage${status.queuePosition === 1 ? "" : "s"} of other songs ahead in the queue.` : "", eta > 0 ? `Ready in ${formatEta(eta)}.` : ""].filter(Boolean).join(" ");
    for (const s of status.stages) {
      applyStage(s.kind, s.state, s.progress, s.attempt, s.errorMessage, false, s.errorCode);
    }
  };

  const adoptRun = (r: Run) => {
    if (r.name !== run) {
      run = r.name;
      currentRunSeen = false;
      stages = [];
      runState = RunState.UNSPECIFIED;
      overall = 0;
      etaText = "";
    }
    if (runRank(r.state) >= runRank(runState)) runState = r.state;
    runError = r.errorMessage;
    for (const s of r.stages) applyStage(s.kind, s.state, s.progress, s.attempt, s.errorMessage, false, s.errorCode);
  };

  /** Applies a stage change if it moves the stage forward; true when it did. */
  const applyStage = (kind: StageKind, state: StageState, progress: number, attempt: number, message: string, speak: boolean, code = ""): boolean => {
    let s = stages.find((x) => x.kind === kind);
    if (!s) {
      s = { kind, state: StageState.UNSPECIFIED, progress: 0, attempt: 0, message: "", code: "" };
      stages.push(s);
      stages.sort((a, b) => a.kind - b.kind);
    }
    const newer = attempt > s.attempt;
    const sameAttempt = attempt === s.attempt || attempt === 0;
    if (!newer && !(sameAttempt && (stageRank(state) > stageRank(s.state) || (state === s.state && progress > s.progress)))) {
      // A snapshot may carry the reason of a failure an event already applied.
      if (state === StageState.FAILED && s.state === StageState.FAILED && (attempt === s.attempt || attempt === 0)) {
        if (message && !s.message) s.message = message;
        if (code && !s.code) s.code = code;
      }
      return false;
    }
    const changedState = state !== s.state;
    s.state = state === StageState.UNSPECIFIED ? s.state : state;
    s.progress = state === StageState.SUCCEEDED ? 1 : Math.max(newer ? 0 : s.progress, progress);
    if (attempt) s.attempt = attempt;
    if (newer) {
      s.message = "";
      s.code = "";
    }
    if (state === StageState.FAILED) {
      if (message) s.message = message;
      if (code) s.code = code;
    }
    if (speak && changedState && state !== StageState.PENDING) {
      announce(`${STAGE_NAMES[kind]}: ${STAGE_STATES[state].toLowerCase()}.${state === StageState.FAILED && failure(s) ? ` ${failure(s)}` : ""}`);
    }
    return true;
  };

  let statusTimer = 0;
  let lastStatusAt = 0;
  /** A fresh snapshot for the overall progress and estimate, at most every 2 seconds. */
  const refreshStatusSoon = () => {
    if (statusTimer) return;
    const wait = Math.max(0, 2000 - (Date.now() - lastStatusAt));
    statusTimer = window.setTimeout(async () => {
      statusTimer = 0;
      lastStatusAt = Date.now();
      try {
        const status = await api.projects.getProjectStatus({ name }, { signal });
        if (status.run === run) {
          adoptStatus(status);
          draw();
        }
      } catch {
        // The stream keeps the stages current; the estimate waits for the next try.
      }
    }, wait);
  };
  signal.addEventListener("abort", () => clearTimeout(statusTimer));

  const onEvent = (event: StageEvent) => {
    if (event.type === StageEvent_Type.RUN_CREATED) {
      if (event.run === run) {
        currentRunSeen = true;
      } else if (currentRunSeen || !run) {
        // A run newer than the one shown (a regeneration, maybe from elsewhere).
        run = event.run;
        currentRunSeen = true;
        runState = RunState.QUEUED;
        stages = [];
        overall = 0;
        runError = "";
        announce("A new generation started.");
        refreshStatusSoon();
      }
      draw();
      return;
    }
    if (event.run !== run) return; // History of earlier runs.
    const before = runState;
    // Every event carries the run's state as of that event.
    if (runRank(event.runState) > runRank(runState)) runState = event.runState;
    if (runState === RunState.QUEUED && event.type === StageEvent_Type.STAGE_STARTED) runState = RunState.RUNNING;
    if (event.type === StageEvent_Type.RUN_FINISHED && event.message && runState === RunState.FAILED) runError = event.message;
    if (event.stageKind !== StageKind.UNSPECIFIED) {
      const state = event.stageState !== StageState.UNSPECIFIED ? event.stageState : (STATE_OF_EVENT[event.type] ?? StageState.UNSPECIFIED);
      if (applyStage(event.stageKind, state, event.progress, event.attempt, event.message, true)) refreshStatusSoon();
    }
    if (!finished(before) && finished(runState)) {
      announce(`Song ${RUN_STATES[runState].toLowerCase()}.${runState === RunState.FAILED && runError ? ` ${runError}` : ""}`);
      refreshStatusSoon();
    }
    draw();
  };

  cancel.addEventListener("click", async () => {
    setBusy(cancel, true, "Cancelling…");
    try {
      adoptRun(await api.projects.cancelGeneration({ name: run }, { signal }));
      draw();
    } catch (e) {
      showAlert(box, explain(e).message);
    } finally {
      setBusy(cancel, false);
    }
  });

  regenerate.addEventListener("click", async () => {
    setBusy(regenerate, true, "Starting…");
    showAlert(box, null);
    try {
      const started = await api.projects.generateSong({ name, requestId: regenerateKey }, { signal });
      regenerateKey = uuid();
      adoptRun(started);
      overall = 0;
      announce("A new generation started.");
      setBusy(regenerate, false);
      draw();
      cancel.focus();
    } catch (e) {
      setBusy(regenerate, false);
      showAlert(box, explain(e).message);
      draw();
    }
  });

  return (async () => {
    try {
      const [p, status] = await Promise.all([api.projects.getProject({ name }, { signal }), api.projects.getProjectStatus({ name }, { signal })]);
      project = p;
      document.title = `${p.title || "Untitled song"} · Cadenza`;
      replace(title, p.title || "Untitled song");
      replace(settings, `${p.durationSeconds} seconds${p.hasVocals ? ", with vocals" : ""}, style strength ${p.styleStrength.toFixed(2)}${p.seed !== undefined ? `, seed ${p.seed}` : ""}. `, h("span", { class: "prompt" }, `“${p.prompt}”`));
      adoptStatus(status);
      // Follow on from the snapshot rather than replaying the project's history.
      // Everything up to `last_event_id` is in it, the current run's creation
      // included, so a later RUN_CREATED is a newer run. (0: nothing to skip.)
      if (status.lastEventId > stats.lastEventId) stats.lastEventId = status.lastEventId;
      if (status.lastEventId > 0n && run) currentRunSeen = true;
      draw();
    } catch (e) {
      if (signal.aborted) return;
      replace(title, "Song not available");
      showAlert(box, explain(e).message);
      return;
    }
    void api.usage
      .getUsage({}, { signal })
      .then((u) => {
        creditsPerSecond = u.limits?.creditsPerSecond || 1;
        draw();
      })
      .catch(() => {});
    await watchProject(
      {
        project: name,
        signal,
        onEvent,
        onConnection: (state, retry) => {
          connection.dataset.state = state;
          connection.textContent = state === "live" ? "● Live" : state === "connecting" ? "Connecting…" : retry ? `Reconnecting in ${retry} s…` : "Reconnecting…";
        },
        onFatal: (problem) => {
          connection.textContent = "Not updating";
          showAlert(box, problem.message);
        },
      },
      stats,
    );
  })();
}
