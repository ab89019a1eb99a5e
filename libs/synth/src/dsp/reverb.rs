//! A Schroeder/Moorer reverb: parallel damped combs into series all-passes, with
//! slightly different delay lengths per side for stereo width. Eight combs per side:
//! with four, the few resonances that stood out coloured every song with the same
//! pitches (a chroma analysis heard them as a key of their own).
//!
//! It runs at half the sample rate (delay lengths halved, the send given as the mean of
//! each pair of frames, the output interpolated back): the tail is damped far below
//! 11 kHz anyway, and the reverb was the costliest effect of the mix.
//!
//! The work is laid out for the processor: the eight combs of a side step together as
//! lanes of small arrays (their recursions are independent, so they overlap instead of
//! waiting on each other). Their delay lines share one ring with a row per sample
//! (the eight combs' values written at that time), so a sample writes one row, as two
//! vector stores, and reads each comb's value from the row its delay ago. The ring's
//! length is a power of two: indices wrap by a mask, with no bounds checks or
//! bookkeeping. Each all-pass then runs over a whole run of samples at once (its delay
//! is longer than the run, so no sample depends on another).

/// Delay lengths in samples at 44.1 kHz, all prime so echoes and resonances do not pile up.
const COMBS: [usize; 8] = [1103, 1181, 1259, 1327, 1429, 1493, 1553, 1613];
const ALLPASSES: [usize; 4] = [557, 439, 347, 227];
const STEREO_SPREAD: usize = 23;
/// Half-rate samples per run: below the shortest delay line (the all-passes', 113), so
/// an all-pass taking a whole run at once never reads what it wrote itself.
const RUN: usize = 96;

/// Rows of a side's comb ring: a power of two above the longest comb delay.
const RING: usize = 1024;

/// A delay line with its position.
struct Line {
    buf: Vec<f32>,
    idx: usize,
}

impl Line {
    fn new(len: usize) -> Self {
        Line {
            buf: vec![0.0; len.max(RUN + 1)],
            idx: 0,
        }
    }
    /// Samples until the position wraps.
    fn room(&self) -> usize {
        self.buf.len() - self.idx
    }
    /// The next `n` cells (at most `room()`), and advances past them.
    fn take(&mut self, n: usize) -> &mut [f32] {
        let at = self.idx;
        self.idx += n;
        if self.idx == self.buf.len() {
            self.idx = 0;
        }
        &mut self.buf[at..at + n]
    }
}

/// One side: eight damped combs in parallel into four all-passes in series.
struct Side {
    /// Row `t % RING`: what the combs wrote at time `t`.
    ring: Box<[[f32; 8]; RING]>,
    /// The time of the next row to write, modulo `RING`.
    at: usize,
    /// Each comb's delay in samples.
    delay: [usize; 8],
    /// The combs' one-pole damping states.
    store: [f32; 8],
    allpasses: [Line; 4],
}

impl Side {
    fn new(extra: usize) -> Self {
        Side {
            ring: Box::new([[0.0; 8]; RING]),
            at: 0,
            delay: COMBS.map(|n| ((n + extra) / 2).max(RUN + 1)),
            store: [0.0; 8],
            allpasses: ALLPASSES.map(|n| Line::new((n + extra) / 2)),
        }
    }

    /// Runs `x` (at most `RUN` samples) into `y`.
    fn run(&mut self, x: &[f32], y: &mut [f32], feedback: f32, damp: f32) {
        let n = x.len();
        let mask = RING - 1;
        let ring = &mut *self.ring;
        // Where each comb reads, relative to the row being written.
        let back = self.delay.map(|d| RING - d);
        let mut store = self.store;
        let mut t = self.at;
        for (&x, y) in x.iter().zip(y.iter_mut()) {
            let out: [f32; 8] = std::array::from_fn(|k| ring[(t + back[k]) & mask][k]);
            for k in 0..8 {
                store[k] = out[k] * (1.0 - damp) + store[k] * damp;
            }
            ring[t & mask] = std::array::from_fn(|k| x + store[k] * feedback);
            *y = ((out[0] + out[1]) + (out[2] + out[3])) + ((out[4] + out[5]) + (out[6] + out[7]));
            t += 1;
        }
        self.store = store;
        self.at = t & mask;
        for ap in &mut self.allpasses {
            let mut done = 0;
            while done < n {
                let m = ap.room().min(n - done);
                let line = ap.take(m);
                for (b, y) in line.iter_mut().zip(&mut y[done..done + m]) {
                    let old = *b;
                    *b = *y + old * 0.5;
                    *y = old - *y;
                }
                done += m;
            }
        }
    }
}

/// Stereo reverb of a mono send.
pub struct Reverb {
    /// The last half-rate output per side, for interpolating back up.
    prev: [f32; 2],
    left: Side,
    right: Side,
    feedback: f32,
    damp: f32,
}

impl Reverb {
    /// `size` 0..1 sets the decay time, `damp` 0..1 how fast the highs fade.
    pub fn new(size: f32, damp: f32) -> Self {
        let damp = damp.clamp(0.0, 0.95);
        Reverb {
            prev: [0.0; 2],
            left: Side::new(0),
            right: Side::new(STEREO_SPREAD),
            // Above ~0.9 the combs ring at their own pitches instead of sounding like a room.
            feedback: 0.7 + 0.2 * size.clamp(0.0, 1.0),
            // One half-rate step stands for two full-rate steps of the damping filter.
            damp: damp * damp,
        }
    }

    /// Adds the reverb of the half-rate send `half` (each value the mean of two frames)
    /// into the full-rate `left` and `right` (two frames per value, or one for the
    /// last value when they are odd in length).
    pub fn process_half(&mut self, half: &[f32], left: &mut [f32], right: &mut [f32]) {
        let (fb, damp) = (self.feedback, self.damp);
        let mut yl = [0.0f32; RUN];
        let mut yr = [0.0f32; RUN];
        for (k, x) in half.chunks(RUN).enumerate() {
            let n = x.len();
            self.left.run(x, &mut yl[..n], fb, damp);
            self.right.run(x, &mut yr[..n], fb, damp);
            let at = k * RUN * 2;
            let end = (at + 2 * n).min(left.len()).min(right.len());
            let (l, r) = (&mut left[at..end], &mut right[at..end]);
            for (i, (l, r)) in l.chunks_mut(2).zip(r.chunks_mut(2)).enumerate() {
                let (a, b) = (yl[i] * 0.15, yr[i] * 0.15);
                // The first frame of the pair sits halfway between two outputs.
                l[0] += 0.5 * (self.prev[0] + a);
                r[0] += 0.5 * (self.prev[1] + b);
                if l.len() > 1 {
                    l[1] += a;
                    r[1] += b;
                }
                self.prev = [a, b];
            }
        }
    }
}
