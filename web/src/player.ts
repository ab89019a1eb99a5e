// The song player: a native <audio> element (its own controls stay available),
// a play button, and a waveform that shows progress and seeks. The waveform is a
// slider for assistive technology and the keyboard: arrows move 5 seconds,
// Page Up/Down 15, Home/End to the ends, Space or Enter plays and pauses.

import { h } from "./dom.js";
import { drawPeaks, type Peaks } from "./waveform.js";
import { formatTime } from "./util.js";

export interface PlayerOptions {
  src: string;
  title: string;
  /** Peaks to draw; null draws a flat line (the player still works). */
  peaks: Promise<Peaks | null>;
  /** Stops playback and drawing. */
  signal: AbortSignal;
}

export function createPlayer(opts: PlayerOptions): HTMLElement {
  const audio = h("audio", { controls: true, preload: "metadata", src: opts.src, "data-testid": "audio" });
  const canvas = h("canvas", { "aria-hidden": "true" });
  const wave = h(
    "div",
    { class: "wave", role: "slider", tabindex: 0, "aria-label": `Position in ${opts.title}`, "aria-valuemin": 0, "aria-valuemax": 0, "aria-valuenow": 0, "aria-valuetext": "0:00", "data-testid": "waveform" },
    canvas,
  );
  const play = h("button", { type: "button", class: "play", "data-testid": "play" }, "Play");
  const time = h("span", { class: "time", "aria-hidden": "true" }, "0:00 / 0:00");
  let peaks: Peaks | null = null;
  let frame = 0;

  const duration = () => (Number.isFinite(audio.duration) ? audio.duration : peaks?.duration || 0);
  const draw = () => {
    const d = duration();
    const played = d > 0 ? Math.min(1, audio.currentTime / d) : 0;
    drawPeaks(canvas, peaks, played);
    const now = formatTime(audio.currentTime);
    const total = formatTime(d);
    time.textContent = `${now} / ${total}`;
    wave.setAttribute("aria-valuemax", String(Math.round(d)));
    wave.setAttribute("aria-valuenow", String(Math.round(audio.currentTime)));
    wave.setAttribute("aria-valuetext", `${now} of ${total}`);
  };
  const loop = () => {
    draw();
    frame = audio.paused ? 0 : requestAnimationFrame(loop);
  };
  const seek = (seconds: number) => {
    const d = duration();
    if (d <= 0) return;
    audio.currentTime = Math.max(0, Math.min(d, seconds));
    draw();
  };
  const toggle = () => {
    if (audio.paused) void audio.play().catch(() => {});
    else audio.pause();
  };

  audio.addEventListener("play", () => {
    play.textContent = "Pause";
    if (!frame) frame = requestAnimationFrame(loop);
  });
  audio.addEventListener("pause", () => {
    play.textContent = "Play";
  });
  for (const name of ["timeupdate", "loadedmetadata", "durationchange", "seeked", "ended"]) {
    audio.addEventListener(name, draw);
  }
  play.addEventListener("click", toggle);
  wave.addEventListener("click", (event) => {
    const rect = wave.getBoundingClientRect();
    seek(((event.clientX - rect.left) / rect.width) * duration());
  });
  wave.addEventListener("keydown", (event) => {
    const moves: Record<string, number> = { ArrowLeft: -5, ArrowDown: -5, ArrowRight: 5, ArrowUp: 5, PageDown: -15, PageUp: 15 };
    if (event.key in moves) seek(audio.currentTime + moves[event.key]!);
    else if (event.key === "Home") seek(0);
    else if (event.key === "End") seek(duration());
    else if (event.key === " " || event.key === "Enter") toggle();
    else return;
    event.preventDefault();
  });

  const resize = new ResizeObserver(() => draw());
  resize.observe(wave);
  opts.signal.addEventListener("abort", () => {
    audio.pause();
    resize.disconnect();
    cancelAnimationFrame(frame);
  });
  void opts.peaks.then((p) => {
    peaks = p;
    // How many points the waveform draws (0: a flat line), for tests and debugging.
    wave.dataset.peaks = String(p?.min.length ?? 0);
    draw();
  });

  return h("div", { class: "player" }, wave, h("div", { class: "controls" }, play, time), audio);
}
