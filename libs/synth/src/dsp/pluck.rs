//! Karplus-Strong plucked string: a burst of noise circulating in a delay line one period
//! long, averaged a little on each pass so the high harmonics die first, as on a string.

use super::Noise;
use crate::util::SAMPLE_RATE;

const SR: f32 = SAMPLE_RATE as f32;

/// Renders one plucked note into `out` (which sets the note's full length, ring included).
/// `brightness` 0..1 shapes the pick; `sustain` is the loop gain per period (0.99..0.9995).
pub fn pluck(
    out: &mut [f32],
    freq: f32,
    amp: f32,
    brightness: f32,
    sustain: f32,
    noise: &mut Noise,
) {
    let period = SR / freq.clamp(20.0, 5000.0);
    // The two-point average delays by half a sample; a first-order all-pass tunes the rest.
    let total = period - 0.5;
    let n = (total.floor() as usize).max(2);
    let frac = (total - n as f32).clamp(0.05, 0.95);
    let c = (1.0 - frac) / (1.0 + frac);
    let mut line = vec![0.0f32; n];
    // Pick: filtered noise; a darker pick for lower brightness.
    let a = 0.15 + 0.85 * brightness.clamp(0.0, 1.0);
    let mut lp = 0.0f32;
    let mut mean = 0.0f32;
    for s in line.iter_mut() {
        lp += a * (noise.next() - lp);
        *s = lp;
        mean += lp;
    }
    mean /= n as f32;
    for s in line.iter_mut() {
        *s -= mean;
    }
    let mut idx = 0usize;
    let mut prev = 0.0f32;
    let (mut ap_x1, mut ap_y1) = (0.0f32, 0.0f32);
    for o in out.iter_mut() {
        let cur = line[idx];
        let avg = 0.5 * (cur + prev) * sustain;
        prev = cur;
        let y = c * avg + ap_x1 - c * ap_y1;
        ap_x1 = avg;
        ap_y1 = y;
        line[idx] = y;
        idx += 1;
        if idx == n {
            idx = 0;
        }
        *o += cur * amp;
    }
}
