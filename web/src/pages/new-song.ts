// The new-song form. Before anything is submitted it shows what the plan allows
// and what this song will cost (UsageService.GetUsage), then creates the project
// and starts generating it, each call with an idempotency key kept across retries
// of the same submission.

import { Code } from "@connectrpc/connect";
import * as api from "../api.js";
import { h, replace } from "../dom.js";
import { explain } from "../errors.js";
import type { Usage } from "../gen/cadenza/v1/usage_pb.js";
import { navigate, type PageContext } from "../router.js";
import { alertBox, clearFieldErrors, field, heading, setBusy, showAlert, showProblem } from "../ui.js";
import { formatClock, lastSegment, songCost, timestampDate, uuid } from "../util.js";

const MIN_SECONDS = 5;
/** The server's default maximum when the plan names none (project.proto). */
const DEFAULT_MAX_SECONDS = 600;
/** One credit per second when the server does not say (usage.proto). */
const DEFAULT_CREDITS_PER_SECOND = 1;

export function newSongPage(ctx: PageContext): void {
  document.title = "New song · Cadenza";
  let usage: Usage | null = null;
  // One submission = one pair of keys: a retry after a lost answer repeats them,
  // so the server returns the first project and run instead of making more.
  let keys = { project: uuid(), run: uuid() };
  let createdProject = "";

  const title = h("input", { type: "text", name: "title", maxlength: 200, autocomplete: "off" });
  const prompt = h("textarea", { name: "prompt", rows: 3, maxlength: 2000, required: true });
  const duration = h("input", { type: "number", name: "duration_seconds", min: MIN_SECONDS, max: DEFAULT_MAX_SECONDS, step: 1, value: 30, required: true, inputmode: "numeric" });
  const vocals = h("input", { type: "checkbox", name: "has_vocals" });
  const style = h("input", { type: "range", name: "style_strength", min: 0, max: 1, step: 0.05, value: 0.5 });
  const styleOut = h("output", { for: "style", "aria-live": "off" }, "0.50");
  const lyrics = h("textarea", { name: "lyrics", rows: 6, maxlength: 10000 });
  const seed = h("input", { type: "text", name: "seed", inputmode: "numeric", pattern: "[0-9]*", autocomplete: "off" });
  const submit = h("button", { type: "submit", "data-testid": "generate" }, "Generate");
  const box = alertBox();
  const costLine = h("p", { class: "cost", "data-testid": "cost", "aria-live": "polite" });
  const limitsList = h("ul", { class: "limits", "data-testid": "limits" }, h("li", {}, "Loading your plan…"));

  const lyricsField = field("Lyrics (optional)", lyrics, "Sung instead of generated lyrics, up to 10,000 characters. Needs vocals.");
  const form = h(
    "form",
    { class: "card", novalidate: true },
    box,
    field("Title (optional)", title, "Up to 200 characters; the start of the prompt if empty."),
    field("Describe the song", prompt, "Genre, mood, instruments, tempo… up to 2,000 characters."),
    field("Duration (seconds)", duration, h("span", { "data-testid": "duration-hint" }, `${MIN_SECONDS} to ${DEFAULT_MAX_SECONDS} seconds.`)),
    field("Vocals (a sung melody with lyrics)", vocals),
    h("div", { class: "field" }, h("label", { for: "style" }, "Style strength: ", styleOut), Object.assign(style, { id: "style" }), h("p", { class: "hint", id: "style-hint" }, "0 is neutral; 1 follows the genre's idioms closely."), h("p", { class: "field-error", "data-error-for": "style_strength", hidden: true })),
    lyricsField,
    field("Seed (optional)", seed, "The same settings and seed give the same song."),
    h("section", { class: "usage", "aria-labelledby": "usage-title" }, h("h2", { id: "usage-title" }, "Your plan"), limitsList, costLine),
    submit,
  );
  style.setAttribute("aria-describedby", "style-hint");
  ctx.main.append(h("section", {}, heading("New song"), form));

  const maxSeconds = () => usage?.limits?.maxSongSeconds || DEFAULT_MAX_SECONDS;
  const perSecond = () => usage?.limits?.creditsPerSecond || DEFAULT_CREDITS_PER_SECOND;

  const update = () => {
    styleOut.value = Number(style.value).toFixed(2);
    lyricsField.hidden = !vocals.checked;
    const seconds = Math.round(Number(duration.value));
    const valid = Number.isFinite(seconds) && seconds >= MIN_SECONDS && seconds <= maxSeconds();
    if (!valid) {
      replace(costLine, `Choose a duration from ${MIN_SECONDS} to ${maxSeconds()} seconds to see the cost.`);
      submit.textContent = "Generate";
      return;
    }
    const cost = songCost(seconds, vocals.checked, perSecond());
    const parts = [`This song costs ${cost} credit${cost === 1 ? "" : "s"}`];
    if (usage) {
      parts.push(usage.balance >= BigInt(cost) ? `; you have ${usage.balance}.` : `, but you have only ${usage.balance}.`);
    } else parts.push(".");
    replace(costLine, parts.join(""));
    costLine.classList.toggle("short", usage !== null && usage.balance < BigInt(cost));
    submit.textContent = `Generate (${cost} credit${cost === 1 ? "" : "s"})`;
  };

  const drawLimits = () => {
    if (!usage) return;
    const l = usage.limits;
    const items = [h("li", {}, `Balance: ${usage.balance} credits`, usage.reserved > 0n ? ` (${usage.reserved} held for songs in progress)` : "")];
    items.push(h("li", {}, `Cost: ${perSecond()} credit${perSecond() === 1 ? "" : "s"} per second, half as much again with vocals`));
    if (l?.maxSongSeconds) items.push(h("li", {}, `Longest song: ${l.maxSongSeconds} seconds`));
    if (l?.songsPerDay) {
      const reset = timestampDate(l.dayResetTime);
      items.push(h("li", {}, `Songs today: ${l.songsToday} of ${l.songsPerDay}`, reset ? ` (the count resets at ${formatClock(reset)})` : ""));
    }
    replace(limitsList, items);
    duration.max = String(maxSeconds());
    const hint = form.querySelector('[data-testid="duration-hint"]');
    if (hint) replace(hint, `${MIN_SECONDS} to ${maxSeconds()} seconds.`);
  };

  for (const el of [duration, vocals, style]) el.addEventListener("input", update);
  // Changed settings after a failed attempt make a new submission (new keys).
  form.addEventListener("input", () => {
    if (createdProject) {
      createdProject = "";
      keys = { project: uuid(), run: uuid() };
    }
  });
  update();

  void (async () => {
    try {
      usage = await api.usage.getUsage({}, { signal: ctx.signal });
      drawLimits();
      update();
    } catch (e) {
      if (ctx.signal.aborted) return;
      const problem = explain(e);
      replace(limitsList, h("li", {}, problem.code === Code.Unimplemented ? "This server does not report plans and credits." : `Your plan could not be loaded: ${problem.message}`));
    }
  })();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    showAlert(box, null);
    const local: Record<string, string> = {};
    const seconds = Number(duration.value);
    if (!prompt.value.trim()) local.prompt = "Describe the song: the prompt cannot be empty.";
    if (!Number.isInteger(seconds) || seconds < MIN_SECONDS || seconds > maxSeconds()) {
      local.duration_seconds = `The duration must be a whole number from ${MIN_SECONDS} to ${maxSeconds()} seconds.`;
    }
    const seedText = seed.value.trim();
    if (seedText && (!/^\d+$/.test(seedText) || BigInt(seedText) >= 2n ** 64n)) local.seed = "The seed is a whole number from 0 to 18446744073709551615.";
    if (Object.keys(local).length > 0) {
      showProblem(form, box, { message: "Some details need fixing: see the messages beside the fields.", fields: local, code: undefined, reason: "" });
      return;
    }
    setBusy(submit, true, "Starting…");
    try {
      if (!createdProject) {
        const project = await api.projects.createProject({
          requestId: keys.project,
          project: {
            title: title.value.trim(),
            prompt: prompt.value.trim(),
            durationSeconds: seconds,
            hasVocals: vocals.checked,
            styleStrength: Number(style.value),
            seed: seedText ? BigInt(seedText) : undefined,
            lyrics: vocals.checked && lyrics.value.trim() ? lyrics.value.trim() : undefined,
          },
        });
        createdProject = project.name;
      }
      await api.projects.generateSong({ name: createdProject, requestId: keys.run });
      keys = { project: uuid(), run: uuid() };
      navigate(`/projects/${encodeURIComponent(lastSegment(createdProject))}`);
    } catch (e) {
      const problem = explain(e);
      // The project exists but could not be generated (credits, limits): say so,
      // and leave the project to retry from its page.
      if (createdProject && problem.code !== Code.Unavailable && problem.code !== Code.Unknown) {
        const link = h("a", { href: `/projects/${encodeURIComponent(lastSegment(createdProject))}` }, "open the saved project");
        showProblem(form, box, problem);
        box.append(" The song was saved as a draft: ", link, ".");
      } else {
        showProblem(form, box, problem);
      }
    } finally {
      setBusy(submit, false);
      update();
    }
  });
}
