//! Loudness per ITU-R BS.1770-4 / EBU R128: K-weighting (a high shelf for the head, a
//! high-pass for the ear), mean square over 400 ms blocks every 100 ms, an absolute gate
//! at -70 LUFS and a relative gate 10 LU below the loudness of the blocks that pass it.
//! Plus a true-peak estimate by 4x oversampling.

use std::f64::consts::PI;

use crate::util::SAMPLE_RATE;

/// A biquad in direct form I, in f64: K-weighting at 38 Hz needs the precision.
#[derive(Clone, Copy)]
struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
    x: [f64; 2],
    y: [f64; 2],
}

impl Biquad {
    fn new(b: [f64; 3], a: [f64; 2]) -> Self {
        Biquad {
            b,
            a,
            x: [0.0; 2],
            y: [0.0; 2],
        }
    }
    #[inline]
    fn process(&mut self, x: f64) -> f64 {
        let y = self.b[0] * x + self.b[1] * self.x[0] + self.b[2] * self.x[1]
            - self.a[0] * self.y[0]
            - self.a[1] * self.y[1];
        self.x = [x, self.x[0]];
        self.y = [y, self.y[0]];
        y
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

/// Mean square of each 100 ms step of the K-weighted channel.
fn step_powers(x: &[f32], step: usize) -> Vec<f64> {
    let [mut s1, mut s2] = k_weighting(f64::from(SAMPLE_RATE));
    let mut out = Vec::with_capacity(x.len() / step + 1);
    for chunk in x.chunks_exact(step) {
        let mut acc = 0.0;
        for &v in chunk {
            let y = s2.process(s1.process(f64::from(v)));
            acc += y * y;
        }
        out.push(acc / step as f64);
    }
    out
}

/// Integrated loudness in LUFS of a stereo signal; `-inf` when everything is gated away.
pub fn integrated_lufs(left: &[f32], right: &[f32]) -> f64 {
    let step = (SAMPLE_RATE / 10) as usize;
    let pl = step_powers(left, step);
    let pr = step_powers(right, step);
    let steps = pl.len().min(pr.len());
    // 400 ms blocks = four consecutive 100 ms steps (75% overlap).
    let blocks: Vec<f64> = (0..steps.saturating_sub(3))
        .map(|i| (pl[i..i + 4].iter().sum::<f64>() + pr[i..i + 4].iter().sum::<f64>()) / 4.0)
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

/// Windowed-sinc interpolation filter for 4x oversampling: phase `p` of 4, 12 taps each.
fn interpolation_taps() -> [[f32; 12]; 4] {
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

/// True peak (dBTP) of the channels. Only samples within 3 dB of the sample peak are
/// oversampled: in music an inter-sample peak rises at most a few dB above its
/// neighbours, so quieter stretches cannot set the maximum.
pub fn true_peak_db(channels: &[&[f32]]) -> f32 {
    let taps = interpolation_taps();
    let mut peak = 0.0f32;
    for ch in channels {
        let sample_peak = ch.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        peak = peak.max(sample_peak);
        let near = sample_peak * 0.7;
        for i in 5..ch.len().saturating_sub(7) {
            if ch[i].abs() < near && ch[i + 1].abs() < near {
                continue;
            }
            for phase in &taps[1..] {
                let mut y = 0.0;
                for (k, t) in phase.iter().enumerate() {
                    y += t * ch[i + k - 5];
                }
                peak = peak.max(y.abs());
            }
        }
    }
    20.0 * peak.max(1e-9).log10()
}

#[cfg(test)]
mod tests {
    use super::*;

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
