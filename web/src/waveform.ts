// Waveform peaks in the audiowaveform JSON shape (version 2):
// { version, channels, sample_rate, samples_per_pixel, bits, length,
//   data: [min, max, min, max, ...] } with `channels` pairs per point.

export interface Peaks {
  /** Per point, the lowest and highest sample across channels, in -1..1. */
  min: Float32Array;
  max: Float32Array;
  /** Seconds the peaks cover. */
  duration: number;
}

interface PeaksJson {
  channels?: number;
  sample_rate?: number;
  samples_per_pixel?: number;
  bits?: number;
  length?: number;
  data?: number[];
}

export function parsePeaks(text: string): Peaks {
  const json = JSON.parse(text) as PeaksJson;
  if (!Array.isArray(json.data)) throw new Error("peaks without data");
  const channels = Math.max(1, json.channels ?? 1);
  const scale = 2 ** ((json.bits ?? 16) - 1);
  const points = Math.floor(json.data.length / (2 * channels));
  const min = new Float32Array(points);
  const max = new Float32Array(points);
  for (let i = 0; i < points; i++) {
    let lo = 0;
    let hi = 0;
    for (let c = 0; c < channels; c++) {
      const base = (i * channels + c) * 2;
      lo = Math.min(lo, (json.data[base] ?? 0) / scale);
      hi = Math.max(hi, (json.data[base + 1] ?? 0) / scale);
    }
    min[i] = Math.max(-1, lo);
    max[i] = Math.min(1, hi);
  }
  const duration = json.sample_rate && json.samples_per_pixel ? (points * json.samples_per_pixel) / json.sample_rate : 0;
  return { min, max, duration };
}

/**
 * Draws the peaks as vertical bars filling the canvas, the part before
 * `played` (0..1) in the accent colour. Sized for the device's pixel ratio.
 */
export function drawPeaks(canvas: HTMLCanvasElement, peaks: Peaks | null, played: number): void {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const g = canvas.getContext("2d");
  if (!g) return;
  g.clearRect(0, 0, width, height);
  const style = getComputedStyle(canvas);
  const playedColor = style.getPropertyValue("--wave-played").trim() || "#5b21b6";
  const restColor = style.getPropertyValue("--wave-rest").trim() || "#8a8f98";
  const mid = height / 2;
  const bar = Math.max(1, Math.round(2 * ratio));
  const step = bar + Math.max(1, Math.round(ratio));
  const playedX = played * width;
  const points = peaks?.min.length ?? 0;
  for (let x = 0; x < width; x += step) {
    let lo = -0.02;
    let hi = 0.02;
    if (peaks && points > 0) {
      const from = Math.floor((x / width) * points);
      const to = Math.max(from + 1, Math.floor(((x + step) / width) * points));
      for (let i = from; i < to && i < points; i++) {
        lo = Math.min(lo, peaks.min[i]!);
        hi = Math.max(hi, peaks.max[i]!);
      }
    }
    g.fillStyle = x < playedX ? playedColor : restColor;
    const top = mid - hi * mid * 0.95;
    const bottom = mid - lo * mid * 0.95;
    g.fillRect(x, top, bar, Math.max(1, bottom - top));
  }
}
