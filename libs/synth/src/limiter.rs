//! A streaming look-ahead brick-wall limiter on true peaks. Streaming (a few hundred
//! frames of state) so that mastering a 10-minute song needs no song-length buffers.
//!
//! Each frame's peak includes the 4x-oversampled points up to the next frame, so
//! inter-sample overs are limited too instead of being found by a meter afterwards.
//!
//! The gain needed at each frame is held as a minimum over the look-ahead window,
//! recovers slowly (release), and is smoothed by a moving average as long as the
//! window. Every average that covers a frame only contains values at or below that
//! frame's own requirement, so no peak gets through; the output lags the input by
//! exactly `look` frames.
//!
//! Frames are handled a chunk at a time in flat buffers (the window minimum by the van
//! Herk / Gil-Werman method, two passes of running minima), and a stretch of the chunk
//! that needs no limiting and follows none is copied straight through.

use crate::loudness::{BLOCK, HISTORY, Oversampler};
use crate::util::{SAMPLE_RATE, fmax};

/// A gain reduction below this (-0.0000087 dB) is none: the gain snaps back to 1.
const SNAP: f32 = 1e-6;
/// Frames the peak detector lags behind the input: the interpolator's right half.
const DETECT_LAG: usize = 6;

pub struct Limiter {
    ceiling: f32,
    os: Oversampler,
    /// Per channel: interpolator history, then the current chunk.
    hist: [Vec<f32>; 2],
    /// Leading frames of the first chunk's history, which are not real input.
    fake: usize,
    peaks: Vec<f32>,
    /// Frames given and frames released, so `flush` knows how many are owed.
    received: usize,
    emitted: usize,
    look: usize,
    rel: f32,
    /// Detected frames not yet released (the look-ahead delay) and the gain each needs.
    pending: Vec<[f32; 2]>,
    needs: Vec<f32>,
    /// Scratch for the window minimum: running minima within blocks of `look + 1`,
    /// from the block's end (`suffix`) and from its start (`prefix`).
    suffix: Vec<f32>,
    prefix: Vec<f32>,
    /// The gain reduction being released from, `1 - gain` (0: none).
    u: f32,
    /// The last `look + 1` released gains, oldest first, for the moving average,
    /// and their sum.
    ring: Vec<f32>,
    ring_sum: f64,
    /// Scratch: `ring` followed by the gains released in one call.
    win: Vec<f32>,
    /// How many of the last gains pushed into the ring were exactly 1 (saturating at
    /// its length: then the ring is all ones and the average is exactly 1).
    ones: usize,
}

impl Limiter {
    pub fn new(ceiling: f32) -> Self {
        let look = (0.002 * SAMPLE_RATE as f32) as usize;
        Limiter {
            ceiling,
            os: Oversampler::default(),
            hist: [vec![0.0; HISTORY], vec![0.0; HISTORY]],
            fake: DETECT_LAG,
            peaks: Vec::new(),
            received: 0,
            emitted: 0,
            look,
            rel: 1.0 - (-1.0 / (0.08 * SAMPLE_RATE as f32)).exp(),
            pending: Vec::new(),
            needs: Vec::new(),
            suffix: Vec::new(),
            prefix: Vec::new(),
            u: 0.0,
            ring: vec![1.0; look + 1],
            win: Vec::new(),
            ring_sum: (look + 1) as f64,
            ones: look + 1,
        }
    }

    /// Limits `input`, appending the frames that are ready to `out` (all but the last
    /// `look + DETECT_LAG` frames seen so far; [`Limiter::flush`] releases those).
    pub fn process(&mut self, input: &[[f32; 2]], out: &mut Vec<[f32; 2]>) {
        self.received += input.len();
        for c in 0..2 {
            self.hist[c].extend(input.iter().map(|f| f[c]));
        }
        let len = self.hist[0].len();
        // Frames whose interpolation window [j-5, j+6] is complete.
        let (first, last) = (HISTORY - DETECT_LAG, len.saturating_sub(DETECT_LAG));
        self.peaks.clear();
        self.peaks.resize(last.saturating_sub(first), 0.0);
        let mut found = [0.0f32; BLOCK];
        for c in 0..2 {
            let x = &self.hist[c];
            let mut j = first;
            while j < last {
                let n = BLOCK.min(last - j);
                self.os.between(x, j, n, self.ceiling, &mut found);
                for (i, p) in self.peaks[j - first..j - first + n].iter_mut().enumerate() {
                    *p = fmax(fmax(*p, x[j + i].abs()), found[i]);
                }
                j += n;
            }
        }
        let skip = self.fake.min(self.peaks.len());
        self.fake -= skip;
        let ceiling = self.ceiling;
        let [h0, h1] = &self.hist;
        // Whole runs appended at once (exact sizes: one capacity check, and loops
        // the compiler vectorises).
        let (a, b) = (first + skip, first + self.peaks.len());
        self.pending
            .extend(h0[a..b].iter().zip(&h1[a..b]).map(|(&l, &r)| [l, r]));
        self.needs.extend(
            self.peaks[skip..]
                .iter()
                .map(|&p| if p > ceiling { ceiling / p } else { 1.0 }),
        );
        for h in &mut self.hist {
            let keep = h.len() - HISTORY;
            h.drain(..keep);
        }
        self.release(out);
    }

    /// Releases the frames still held back by the detector and the look-ahead: after
    /// it, exactly as many frames have come out as went in.
    pub fn flush(&mut self, out: &mut Vec<[f32; 2]>) {
        let before = out.len();
        let pending = self.received - self.emitted;
        self.process(&[[0.0; 2]; DETECT_LAG], out);
        // Silence after the end, needing nothing, pushes the last frames out.
        self.pending
            .resize(self.pending.len() + self.look, [0.0; 2]);
        self.needs.resize(self.needs.len() + self.look, 1.0);
        self.release(out);
        out.truncate(before + pending);
    }

    /// Releases every pending frame whose whole look-ahead window has been detected.
    ///
    /// In three passes over the frames: the held and released gains (the one
    /// recursion, kept short), their moving average (a running sum, one add per
    /// frame on its chain), and the gains applied.
    fn release(&mut self, out: &mut Vec<[f32; 2]>) {
        let m = self.needs.len();
        if m <= self.look {
            return;
        }
        let count = m - self.look;
        let full = self.ring.len();
        if self.u < SNAP && self.ones >= full && self.needs.iter().all(|&n| n == 1.0) {
            // Nothing to limit anywhere in reach, and nothing being released from.
            out.extend_from_slice(&self.pending[..count]);
        } else {
            self.window_min();
            // The least gain any frame in each frame's window needs, into `suffix`.
            let look = self.look;
            let held = &mut self.suffix[..count];
            for (a, &b) in held.iter_mut().zip(&self.prefix[look..]) {
                if b < *a {
                    *a = b;
                }
            }
            // `win`: the last `full` released gains, oldest first, then this call's.
            let win = &mut self.win;
            win.clear();
            win.extend_from_slice(&self.ring);
            // In terms of the reduction u = 1 - g, the release `g += (1 - g) * rel` is
            // `u *= 1 - rel` and holding is a maximum: one multiply and one compare
            // per frame on the chain. The snap to exactly 1 (so the fast path above
            // can take over again) is applied to the output, off the chain.
            let keep = 1.0 - self.rel;
            let mut u = if self.u < SNAP { 0.0 } else { self.u };
            win.extend(held.iter().map(|&h| {
                let (need, released) = (1.0 - h, u * keep);
                u = if need > released { need } else { released };
                if u < SNAP { 1.0 } else { 1.0 - u }
            }));
            self.u = u;
            // The moving average of the released gains, over `prefix`.
            let (mut sum, mut ones) = (self.ring_sum, self.ones);
            let inv = 1.0 / full as f64;
            let avg = &mut self.prefix[..count];
            for ((a, &old), &new) in avg.iter_mut().zip(&win[..count]).zip(&win[full..]) {
                sum += f64::from(new) - f64::from(old);
                ones = if new == 1.0 { (ones + 1).min(full) } else { 0 };
                if ones >= full {
                    // All ones: exactly 1, whatever rounding the sum gathered.
                    sum = full as f64;
                }
                *a = (sum * inv) as f32;
            }
            self.ring_sum = sum;
            self.ones = ones;
            self.ring.copy_from_slice(&win[count..count + full]);
            // The first window still averages the initial 1.0s; `min(held)` keeps the
            // guarantee there.
            out.extend(
                self.pending[..count]
                    .iter()
                    .zip(held.iter().zip(avg.iter()))
                    .map(|(x, (&h, &a))| {
                        let gain = if h < a { h } else { a };
                        [x[0] * gain, x[1] * gain]
                    }),
            );
        }
        self.emitted += count;
        self.pending.drain(..count);
        self.needs.drain(..count);
    }

    /// Running minima of `needs` within blocks of `look + 1` frames, from each block's
    /// end and from its start: the minimum over any window of `look + 1` frames is then
    /// the smaller of the suffix at its first frame and the prefix at its last.
    fn window_min(&mut self) {
        let w = self.look + 1;
        self.suffix.clear();
        self.suffix.extend_from_slice(&self.needs);
        self.prefix.clear();
        self.prefix.extend_from_slice(&self.needs);
        // Needs are never NaN, so a plain comparison does (`f32::min` spends
        // instructions on NaN, on a serial chain).
        let min = |a: f32, b: f32| if b < a { b } else { a };
        // The running minimum stays in a register: reading back the value just
        // stored would wait on the store every frame.
        for block in self.prefix.chunks_mut(w) {
            let mut m = f32::INFINITY;
            for v in block.iter_mut() {
                m = min(m, *v);
                *v = m;
            }
        }
        for block in self.suffix.chunks_mut(w) {
            let mut m = f32::INFINITY;
            for v in block.iter_mut().rev() {
                m = min(m, *v);
                *v = m;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_ceiling_and_keeps_the_length() {
        let n = 40_000;
        let x: Vec<[f32; 2]> = (0..n)
            .map(|i| {
                let v = if i == 3 || i == 30_000 || i == 30_010 {
                    3.0
                } else {
                    0.5 * ((i as f32) * 0.05).sin()
                };
                [v, -v]
            })
            .collect();
        let mut lim = Limiter::new(0.8);
        let mut out = Vec::new();
        for chunk in x.chunks(777) {
            lim.process(chunk, &mut out);
        }
        lim.flush(&mut out);
        assert_eq!(out.len(), n);
        assert!(out.iter().all(|f| f[0].abs() <= 0.8 + 1e-4));
        // Quiet stretches far from the peaks pass unchanged.
        assert!((out[25_000][0] - x[25_000][0]).abs() < 1e-3);
    }
}
