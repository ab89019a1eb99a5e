//! Loudness per ITU-R BS.1770-4 / EBU R128: K-weighting (a high shelf for the head, a
//! high-pass for the ear), mean square over 400 ms blocks every 100 ms, an absolute gate
//! at -70 LUFS and a relative gate 10 LU below the loudness of the blocks that pass it.
//! Plus a true-peak estimate by 4x oversampling.

use std::f64::consts::PI;

use crate::util::{SAMPLE_RATE, fmax, peak_abs};

/// Biquad coefficients (normalised, a0 = 1), in f64: K-weighting at 38 Hz needs the
/// precision.
#[derive(Clone, Copy)]
struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
}

impl Biquad {
    fn new(b: [f64; 3], a: [f64; 2]) -> Self {
        Biquad { b, a }
    }
}

/// The two K-weighting stages for any sample rate, from the analogue prototypes behind
/// the 48 kHz coefficients printed in BS.1770.
fn k_weighting(fs: f64) -> [Biquad; 2] {
    // Stage 1: high shelf, +4 dB above ~1.5 kHz.
    let (f0, gain_db, q) = (
        1_681.974_450_955_533,
        3.999_843_853_973_347,
        0.707_175_236_955_419_6,
    );
    let k = (PI * f0 / fs).tan();
    let vh = 10f64.powf(gain_db / 20.0);
    let vb = vh.powf(0.499_666_774_154_541_6);
    let a0 = 1.0 + k / q + k * k;
    let shelf = Biquad::new(
        [
            (vh + vb * k / q + k * k) / a0,
            2.0 * (k * k - vh) / a0,
            (vh - vb * k / q + k * k) / a0,
        ],
        [2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0],
    );
    // Stage 2: high-pass at ~38 Hz.
    let (f0, q) = (38.135_470_876_024_44, 0.500_327_037_323_877_3);
    let k = (PI * f0 / fs).tan();
    let a0 = 1.0 + k / q + k * k;
    let hp = Biquad::new(
        [1.0, -2.0, 1.0],
        [2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0],
    );
    [shelf, hp]
}

/// Streaming BS.1770 meter: feed frames in any chunking, read the integrated loudness.
pub struct KMeter {
    filters: [Biquad2; 2],
    acc: f64,
    count: usize,
    step: usize,
    /// Mean square (summed over both channels) of each complete 100 ms step.
    steps: Vec<f64>,
}

/// One biquad run on both channels in lock-step, in direct form I with the terms
/// ordered so that the chain from one output to the next is a single multiply and
/// subtraction (the transposed form's chain runs through both state variables, twice
/// as long). The element-wise arithmetic on pairs lets the compiler use packed f64
/// instructions.
#[derive(Clone, Copy)]
struct Biquad2 {
    b: [f64; 3],
    a: [f64; 2],
    /// The last two inputs and outputs per channel.
    x1: [f64; 2],
    x2: [f64; 2],
    y1: [f64; 2],
    y2: [f64; 2],
}

impl Biquad2 {
    fn new(q: Biquad) -> Self {
        Biquad2 {
            b: q.b,
            a: q.a,
            x1: [0.0; 2],
            x2: [0.0; 2],
            y1: [0.0; 2],
            y2: [0.0; 2],
        }
    }
    #[inline]
    fn process(&mut self, x: [f64; 2]) -> [f64; 2] {
        let mut y = [0.0; 2];
        for c in 0..2 {
            let known = (self.b[0] * x[c] + self.b[1] * self.x1[c])
                + (self.b[2] * self.x2[c] - self.a[1] * self.y2[c]);
            y[c] = known - self.a[0] * self.y1[c];
            self.x2[c] = self.x1[c];
            self.x1[c] = x[c];
            self.y2[c] = self.y1[c];
            self.y1[c] = y[c];
        }
        y
    }
}

impl Default for KMeter {
    fn default() -> Self {
        let [shelf, hp] = k_weighting(f64::from(SAMPLE_RATE));
        KMeter {
            filters: [Biquad2::new(shelf), Biquad2::new(hp)],
            acc: 0.0,
            count: 0,
            step: (SAMPLE_RATE / 10) as usize,
            steps: Vec::new(),
        }
    }
}

impl KMeter {
    pub fn push(&mut self, frames: &[[f32; 2]]) {
        // Filters on local copies: state kept in registers instead of being stored to
        // and reloaded from `self` on every frame, which the recursion would wait for.
        let [mut s1, mut s2] = self.filters;
        let mut rest = frames;
        while !rest.is_empty() {
            let n = rest.len().min(self.step - self.count);
            let (now, later) = rest.split_at(n);
            let mut acc = [0.0f64; 2];
            for f in now {
                let y = s2.process(s1.process([f64::from(f[0]), f64::from(f[1])]));
                acc[0] += y[0] * y[0];
                acc[1] += y[1] * y[1];
            }
            self.acc += acc[0] + acc[1];
            self.count += n;
            if self.count == self.step {
                self.steps.push(self.acc / self.step as f64);
                self.acc = 0.0;
                self.count = 0;
            }
            rest = later;
        }
        self.filters = [s1, s2];
    }

    /// Integrated loudness in LUFS; `-inf` when everything is gated away.
    pub fn integrated(&self) -> f64 {
        gated_loudness(&self.steps)
    }
}

/// The two-stage gate over 400 ms blocks (four consecutive 100 ms steps, 75% overlap).
fn gated_loudness(steps: &[f64]) -> f64 {
    let blocks: Vec<f64> = steps
        .windows(4)
        .map(|w| w.iter().sum::<f64>() / 4.0)
        .collect();
    let lufs = |p: f64| -0.691 + 10.0 * p.log10();
    let gated_mean = |threshold: f64| {
        let (mut sum, mut n) = (0.0, 0usize);
        for &p in blocks.iter().filter(|&&p| lufs(p) > threshold) {
            sum += p;
            n += 1;
        }
        if n == 0 { None } else { Some(sum / n as f64) }
    };
    let Some(abs_mean) = gated_mean(-70.0) else {
        return f64::NEG_INFINITY;
    };
    let relative = lufs(abs_mean) - 10.0;
    gated_mean(relative.max(-70.0)).map_or(f64::NEG_INFINITY, lufs)
}

/// Integrated loudness in LUFS of a stereo signal given as two channels.
#[cfg(test)]
pub fn integrated_lufs(left: &[f32], right: &[f32]) -> f64 {
    let mut m = KMeter::default();
    let frames: Vec<[f32; 2]> = left.iter().zip(right).map(|(&l, &r)| [l, r]).collect();
    m.push(&frames);
    m.integrated()
}

/// Windowed-sinc interpolation filter for 4x oversampling: phase `p` of 4, 12 taps each.
pub fn interpolation_taps() -> [[f32; 12]; 4] {
    let mut taps = [[0.0f32; 12]; 4];
    for (p, phase) in taps.iter_mut().enumerate() {
        for (k, t) in phase.iter_mut().enumerate() {
            // Position of tap k relative to the interpolated point, in input samples.
            let x = (k as f64 - 5.0) - p as f64 / 4.0;
            let sinc = if x.abs() < 1e-9 {
                1.0
            } else {
                (PI * x).sin() / (PI * x)
            };
            let w = 0.5 + 0.5 * (PI * x / 6.5).cos(); // Hann window over the span
            *t = (sinc * w) as f32;
        }
    }
    taps
}

/// Frames scanned together: long enough to vectorise, short enough to skip quiet spans.
pub const BLOCK: usize = 16;
/// Samples of history the interpolator needs before the first point it computes.
pub const HISTORY: usize = 11;

/// 4x oversampling of a channel, skipping work wherever it cannot matter: an
/// interpolated value is at most `bound` times the largest sample under the filter.
///
/// The windowed sinc is symmetric, so the three phases share their work: the halfway
/// phase weighs `x[k] + x[11 - k]` alike, and the quarter and three-quarter phases are
/// each other's mirror image, so both are the sum and the difference of an even part
/// (on `x[k] + x[11 - k]`) and an odd part (on `x[k] - x[11 - k]`). Eighteen
/// multiplies per point instead of thirty-six.
pub struct Oversampler {
    /// Per pair of taps `k` and `11 - k` (k < 6): the halfway phase's tap, and the
    /// even and odd parts of the quarter phase's.
    half: [f32; 6],
    even: [f32; 6],
    odd: [f32; 6],
    bound: f32,
}

impl Default for Oversampler {
    fn default() -> Self {
        let taps = interpolation_taps();
        let bound = taps
            .iter()
            .map(|p| p.iter().map(|t| t.abs()).sum::<f32>())
            .fold(1.0, f32::max);
        let [_, quarter, half, _] = taps;
        Oversampler {
            half: std::array::from_fn(|k| half[k]),
            even: std::array::from_fn(|k| 0.5 * (quarter[k] + quarter[11 - k])),
            odd: std::array::from_fn(|k| 0.5 * (quarter[k] - quarter[11 - k])),
            bound,
        }
    }
}

impl Oversampler {
    /// For `n <= BLOCK` points from `j` on, the largest |value| interpolated between
    /// `x[j + i]` and `x[j + i + 1]` into `out[i]`, or 0 where the block cannot exceed
    /// `threshold`. Needs `x[j - 5 .. j + n + 6]`.
    pub fn between(&self, x: &[f32], j: usize, n: usize, threshold: f32, out: &mut [f32]) {
        let near = peak_abs(&x[j - 5..j + n + 6], 0.0);
        out[..n].fill(0.0);
        if near * self.bound <= threshold {
            return;
        }
        let (mut even, mut odd, mut half) = ([0.0f32; BLOCK], [0.0f32; BLOCK], [0.0f32; BLOCK]);
        for k in 0..6 {
            // Tap k reads x[j + i + k - 5], its mirror 11 - k reads x[j + i + 6 - k].
            let (lo, hi) = (&x[j + k - 5..][..n], &x[j + 6 - k..][..n]);
            let (te, to, th) = (self.even[k], self.odd[k], self.half[k]);
            for i in 0..n {
                let (sum, diff) = (lo[i] + hi[i], lo[i] - hi[i]);
                even[i] += te * sum;
                odd[i] += to * diff;
                half[i] += th * sum;
            }
        }
        for i in 0..n {
            let quarter = (even[i] + odd[i]).abs();
            let three = (even[i] - odd[i]).abs();
            out[i] = fmax(fmax(quarter, three), half[i].abs());
        }
    }
}

/// Streaming true-peak meter (4x oversampling, as BS.1770 asks).
pub struct TruePeak {
    os: Oversampler,
    /// Per channel: the last samples of the previous chunk, then the current chunk.
    buf: [Vec<f32>; 2],
    peak: f32,
}

impl Default for TruePeak {
    fn default() -> Self {
        TruePeak {
            os: Oversampler::default(),
            buf: [vec![0.0; HISTORY], vec![0.0; HISTORY]],
            peak: 0.0,
        }
    }
}

impl TruePeak {
    pub fn push(&mut self, frames: &[[f32; 2]]) {
        for c in 0..2 {
            let mut buf = std::mem::take(&mut self.buf[c]);
            buf.extend(frames.iter().map(|f| f[c]));
            self.scan(&buf);
            let keep = buf.len() - HISTORY;
            buf.drain(..keep);
            self.buf[c] = buf;
        }
    }

    /// Scans `x` (history + new samples): sample peaks of the new part, and every
    /// interpolated point whose taps lie inside `x` and were not complete last time.
    fn scan(&mut self, x: &[f32]) {
        self.peak = peak_abs(&x[HISTORY..], self.peak);
        // The point between j and j+1 uses x[j-5 ..= j+6].
        let last = x.len().saturating_sub(6);
        let mut j = HISTORY - 6;
        let mut found = [0.0f32; BLOCK];
        while j < last {
            let n = BLOCK.min(last - j);
            self.os.between(x, j, n, self.peak, &mut found);
            // `found` holds magnitudes: their largest |value| is their largest value.
            self.peak = peak_abs(&found[..n], self.peak);
            j += n;
        }
    }

    pub fn peak_db(&self) -> f32 {
        20.0 * self.peak.max(1e-9).log10()
    }
}

/// True peak (dBTP) of planar channels.
#[cfg(test)]
pub fn true_peak_db(channels: &[&[f32]]) -> f32 {
    let mut m = TruePeak::default();
    for ch in channels {
        let frames: Vec<[f32; 2]> = ch.iter().map(|&v| [v, 0.0]).collect();
        m.push(&frames);
        m.buf = [vec![0.0; HISTORY], vec![0.0; HISTORY]];
    }
    m.peak_db()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversampler_matches_the_plain_filter() {
        let mut noise = crate::dsp::Noise::new(11);
        let x: Vec<f32> = (0..64).map(|_| noise.next()).collect();
        let taps = interpolation_taps();
        let os = Oversampler::default();
        let mut out = [0.0f32; BLOCK];
        os.between(&x, 10, BLOCK, 0.0, &mut out);
        for (i, &got) in out.iter().enumerate() {
            let want = taps[1..]
                .iter()
                .map(|t| {
                    let v: f32 = (0..12).map(|k| t[k] * x[10 + i + k - 5]).sum();
                    v.abs()
                })
                .fold(0.0f32, f32::max);
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
    }

    #[test]
    fn sine_at_minus_18_dbfs_is_about_minus_18_lufs() {
        // BS.1770: a 1 kHz sine in both channels at -18 dBFS peak reads about -18 LUFS
        // (the shelf adds ~+0.7 dB at 1 kHz, the two channels +3 dB, -0.691 offset, RMS -3 dB).
        let n = SAMPLE_RATE as usize * 5;
        let a = 10f32.powf(-18.0 / 20.0);
        let x: Vec<f32> = (0..n)
            .map(|i| a * (i as f32 * 1000.0 / SAMPLE_RATE as f32 * std::f32::consts::TAU).sin())
            .collect();
        let l = integrated_lufs(&x, &x);
        assert!((l - -18.0).abs() < 0.3, "{l}");
        assert!((true_peak_db(&[&x]) - -18.0).abs() < 0.1);
        assert_eq!(
            integrated_lufs(&vec![0.0; n], &vec![0.0; n]),
            f64::NEG_INFINITY
        );
    }
}
