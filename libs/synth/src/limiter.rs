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

use std::collections::VecDeque;

use crate::loudness::{BLOCK, HISTORY, Oversampler};
use crate::util::SAMPLE_RATE;

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
    /// Frames waiting for their gain (the look-ahead delay).
    delay: VecDeque<[f32; 2]>,
    /// Monotonic deque of (frame index, needed gain): the front is the window minimum.
    window: VecDeque<(usize, f32)>,
    next_in: usize,
    g: f32,
    /// The last `look + 1` released gains, for the moving average.
    ring: Vec<f32>,
    ring_at: usize,
    ring_sum: f64,
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
            delay: VecDeque::with_capacity(look + 2),
            window: VecDeque::with_capacity(look + 2),
            next_in: 0,
            g: 1.0,
            ring: vec![1.0; look + 1],
            ring_at: 0,
            ring_sum: (look + 1) as f64,
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
                    *p = p.max(x[j + i].abs()).max(found[i]);
                }
                j += n;
            }
        }
        for k in 0..self.peaks.len() {
            let j = first + k;
            if self.fake > 0 {
                self.fake -= 1;
                continue;
            }
            let p = self.peaks[k];
            let need = if p > self.ceiling {
                self.ceiling / p
            } else {
                1.0
            };
            self.step([self.hist[0][j], self.hist[1][j]], need, out);
        }
        for h in &mut self.hist {
            let keep = h.len() - HISTORY;
            h.drain(..keep);
        }
    }

    /// Releases the frames still held back by the detector and the look-ahead: after
    /// it, exactly as many frames have come out as went in.
    pub fn flush(&mut self, out: &mut Vec<[f32; 2]>) {
        let before = out.len();
        let pending = self.received - self.emitted;
        self.process(&[[0.0; 2]; DETECT_LAG], out);
        while self.emitted < self.received {
            self.step([0.0; 2], 1.0, out);
        }
        out.truncate(before + pending);
    }

    #[inline]
    fn step(&mut self, x: [f32; 2], need: f32, out: &mut Vec<[f32; 2]>) {
        while self.window.back().is_some_and(|&(_, n)| n >= need) {
            self.window.pop_back();
        }
        let at = self.next_in;
        self.window.push_back((at, need));
        self.delay.push_back(x);
        self.next_in += 1;
        if at < self.look {
            return;
        }
        let i = at - self.look;
        while self.window.front().is_some_and(|&(j, _)| j < i) {
            self.window.pop_front();
        }
        let held = self.window.front().map_or(1.0, |&(_, n)| n);
        let full = self.ring.len() as f64;
        if held == 1.0 && self.g == 1.0 && self.ring_sum == full {
            // Nothing to limit nearby: the common case, and the ring stays all ones.
            if let Some(d) = self.delay.pop_front() {
                out.push(d);
                self.emitted += 1;
            }
            return;
        }
        self.g = (self.g + (1.0 - self.g) * self.rel).min(held);
        if self.g > 0.999_999 {
            // Snap home, so the fast path above can take over again.
            self.g = 1.0;
        }
        self.ring_sum += f64::from(self.g) - f64::from(self.ring[self.ring_at]);
        self.ring[self.ring_at] = self.g;
        self.ring_at += 1;
        if self.ring_at == self.ring.len() {
            self.ring_at = 0;
        }
        if (self.ring_sum - full).abs() < 1e-9 && self.ring.iter().all(|&g| g == 1.0) {
            self.ring_sum = full;
        }
        // The first window still averages the initial 1.0s; `min(held)` keeps the
        // guarantee there.
        let gain = ((self.ring_sum / self.ring.len() as f64) as f32).min(held);
        if let Some(d) = self.delay.pop_front() {
            out.push([d[0] * gain, d[1] * gain]);
            self.emitted += 1;
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
