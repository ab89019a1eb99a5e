//! The master stage: DC removal, loudness normalisation toward -14 LUFS integrated, a
//! look-ahead peak limiter, a true-peak guard at -1 dBTP, exact length, 16-bit with dither.

use crate::api::SynthError;
use crate::dsp::Noise;
use crate::dsp::filter::DcBlock;
use crate::loudness::{integrated_lufs, true_peak_db};
use crate::util::{SAMPLE_RATE, Ticker};

pub const TARGET_LUFS: f64 = -14.0;
/// The true-peak ceiling, with a little margin under -1 dBTP for the 16-bit rounding.
const TRUE_PEAK_CEILING_DB: f32 = -1.1;
/// The limiter works on sample peaks; inter-sample overs are caught afterwards.
const LIMIT_CEILING_DB: f32 = -1.5;

fn db(x: f32) -> f32 {
    10f32.powf(x / 20.0)
}

/// Masters a stereo signal (both channels exactly the song's length) in place.
pub fn master(ch: &mut [Vec<f32>; 2], seed: u64, tick: &mut Ticker) -> Result<(), SynthError> {
    for c in ch.iter_mut() {
        let mut dc = DcBlock::new(5.0);
        c.iter_mut().for_each(|x| *x = dc.process(*x));
    }
    tick.at(0.1)?;
    let source = ch.clone();
    let measured = integrated_lufs(&source[0], &source[1]);
    if !measured.is_finite() {
        // Silence stays silence: nothing to normalise.
        return finish(ch, seed, tick);
    }
    let mut gain_db = (TARGET_LUFS - measured) as f32;
    let mut ceiling_db = LIMIT_CEILING_DB;
    // Limiting lowers loudness and inter-sample peaks can poke above the sample ceiling,
    // so gain and ceiling are refined a few times against the measured result.
    for round in 0..6 {
        tick.at(0.15 + 0.12 * round as f32)?;
        for (out, src) in ch.iter_mut().zip(&source) {
            let g = db(gain_db);
            out.iter_mut().zip(src).for_each(|(o, s)| *o = s * g);
        }
        limit(ch, db(ceiling_db));
        let tp = true_peak_db(&[&ch[0], &ch[1]]);
        let over = (tp - TRUE_PEAK_CEILING_DB).max(0.0);
        ceiling_db -= over;
        let got = integrated_lufs(&ch[0], &ch[1]);
        let err = (TARGET_LUFS - got) as f32;
        // Small leftovers are fine: the final guard trims an over of <0.1 dB.
        if !got.is_finite() || (err.abs() < 0.15 && over < 0.1) {
            break;
        }
        gain_db += err.clamp(-6.0, 6.0);
    }
    tick.at(0.9)?;
    let tp = true_peak_db(&[&ch[0], &ch[1]]);
    if tp > TRUE_PEAK_CEILING_DB {
        let g = db(TRUE_PEAK_CEILING_DB - tp);
        ch.iter_mut()
            .for_each(|c| c.iter_mut().for_each(|x| *x *= g));
    }
    finish(ch, seed, tick)
}

/// Short fades at both ends (no clicks) and TPDF dither for the 16-bit file.
fn finish(ch: &mut [Vec<f32>; 2], seed: u64, tick: &mut Ticker) -> Result<(), SynthError> {
    let edge = (0.005 * SAMPLE_RATE as f32) as usize;
    let mut noise = Noise::new((seed ^ (seed >> 32)) as u32 ^ 0x5eed_d17e);
    let lsb = 1.0 / 32768.0;
    for c in ch.iter_mut() {
        let n = c.len();
        for i in 0..edge.min(n) {
            let g = i as f32 / edge as f32;
            c[i] *= g;
            c[n - 1 - i] *= g;
        }
        for x in c.iter_mut() {
            // Triangular dither: the sum of two uniform noises, one LSB each.
            *x += (noise.next() + noise.next()) * 0.5 * lsb;
        }
    }
    tick.at(1.0)
}

/// Look-ahead brick-wall limiter on sample peaks. The gain needed at each sample is held
/// as a minimum over the look-ahead window, recovers slowly (release), and is smoothed by
/// a moving average of the same window: every average covering a sample only contains
/// values at or below that sample's own requirement, so no peak gets through.
pub fn limit(ch: &mut [Vec<f32>; 2], ceiling: f32) {
    let n = ch[0].len().min(ch[1].len());
    let look = (0.002 * SAMPLE_RATE as f32) as usize;
    let need: Vec<f32> = (0..n)
        .map(|i| {
            let p = ch[0][i].abs().max(ch[1][i].abs());
            if p > ceiling { ceiling / p } else { 1.0 }
        })
        .collect();
    if need.iter().all(|&g| g >= 1.0) {
        return;
    }
    // Minimum over [i, i + look] with a monotonic deque, O(n).
    let mut held = vec![1.0f32; n];
    let mut dq: std::collections::VecDeque<usize> = std::collections::VecDeque::new();
    let mut next = 0usize;
    for (i, h) in held.iter_mut().enumerate() {
        while next < n && next <= i + look {
            while dq.back().is_some_and(|&b| need[b] >= need[next]) {
                dq.pop_back();
            }
            dq.push_back(next);
            next += 1;
        }
        while dq.front().is_some_and(|&f| f < i) {
            dq.pop_front();
        }
        *h = dq.front().map_or(1.0, |&f| need[f]);
    }
    // Release: the gain may rise only slowly, never above what is needed.
    let rel = 1.0 - (-1.0 / (0.08 * SAMPLE_RATE as f32)).exp();
    let mut g = 1.0f32;
    for h in held.iter_mut() {
        g = (g + (1.0 - g) * rel).min(*h);
        *h = g;
    }
    // Moving average over the trailing look+1 samples.
    let w = look + 1;
    let mut acc = 0.0f64;
    for i in 0..n {
        acc += f64::from(held[i]);
        if i >= w {
            acc -= f64::from(held[i - w]);
        }
        let avg = (acc / w.min(i + 1) as f64) as f32;
        // Early samples average fewer values; the min keeps the guarantee there too.
        let gain = if i < w { avg.min(held[i]) } else { avg };
        ch[0][i] *= gain;
        ch[1][i] *= gain;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_holds_the_ceiling() {
        let n = 20_000;
        let x: Vec<f32> = (0..n)
            .map(|i| {
                if i % 5000 == 2500 {
                    3.0
                } else {
                    0.5 * ((i as f32) * 0.05).sin()
                }
            })
            .collect();
        let mut ch = [x.clone(), x];
        limit(&mut ch, 0.8);
        assert!(ch[0].iter().all(|v| v.abs() <= 0.8 + 1e-4));
    }
}
