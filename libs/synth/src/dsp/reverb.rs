//! A small Schroeder/Moorer reverb: parallel damped combs into series all-passes, with
//! slightly different delay lengths per side for stereo width. Four combs per side is
//! plenty for a send effect and keeps the cost to a dozen delay taps per sample.

/// Delay lengths in samples at 44.1 kHz, mutually prime so echoes do not pile up.
const COMBS: [usize; 4] = [1557, 1617, 1491, 1422];
const ALLPASSES: [usize; 2] = [556, 441];
const STEREO_SPREAD: usize = 23;

struct Comb {
    buf: Vec<f32>,
    idx: usize,
    store: f32,
}

impl Comb {
    fn new(len: usize) -> Self {
        Comb {
            buf: vec![0.0; len],
            idx: 0,
            store: 0.0,
        }
    }
    #[inline]
    fn process(&mut self, x: f32, feedback: f32, damp: f32) -> f32 {
        let y = self.buf[self.idx];
        self.store = y * (1.0 - damp) + self.store * damp;
        self.buf[self.idx] = x + self.store * feedback;
        self.idx += 1;
        if self.idx == self.buf.len() {
            self.idx = 0;
        }
        y
    }
}

struct AllPass {
    buf: Vec<f32>,
    idx: usize,
}

impl AllPass {
    fn new(len: usize) -> Self {
        AllPass {
            buf: vec![0.0; len],
            idx: 0,
        }
    }
    #[inline]
    fn process(&mut self, x: f32) -> f32 {
        let b = self.buf[self.idx];
        let y = b - x;
        self.buf[self.idx] = x + b * 0.5;
        self.idx += 1;
        if self.idx == self.buf.len() {
            self.idx = 0;
        }
        y
    }
}

/// Stereo reverb of a mono send.
pub struct Reverb {
    left: (Vec<Comb>, Vec<AllPass>),
    right: (Vec<Comb>, Vec<AllPass>),
    feedback: f32,
    damp: f32,
}

impl Reverb {
    /// `size` 0..1 sets the decay time, `damp` 0..1 how fast the highs fade.
    pub fn new(size: f32, damp: f32) -> Self {
        let side = |extra: usize| {
            (
                COMBS
                    .iter()
                    .map(|&n| Comb::new(n + extra))
                    .collect::<Vec<_>>(),
                ALLPASSES
                    .iter()
                    .map(|&n| AllPass::new(n + extra))
                    .collect::<Vec<_>>(),
            )
        };
        Reverb {
            left: side(0),
            right: side(STEREO_SPREAD),
            feedback: 0.7 + 0.28 * size.clamp(0.0, 1.0),
            damp: damp.clamp(0.0, 0.95),
        }
    }

    /// Adds the reverb of `send` into `left` and `right`.
    pub fn process(&mut self, send: &[f32], left: &mut [f32], right: &mut [f32]) {
        let (fb, damp) = (self.feedback, self.damp);
        let run = |side: &mut (Vec<Comb>, Vec<AllPass>), x: f32| {
            let mut y = 0.0;
            for c in side.0.iter_mut() {
                y += c.process(x, fb, damp);
            }
            for a in side.1.iter_mut() {
                y = a.process(y);
            }
            y * 0.25
        };
        for ((&x, l), r) in send.iter().zip(left.iter_mut()).zip(right.iter_mut()) {
            *l += run(&mut self.left, x);
            *r += run(&mut self.right, x);
        }
    }
}
