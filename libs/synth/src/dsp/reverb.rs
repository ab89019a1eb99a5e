//! A Schroeder/Moorer reverb: parallel damped combs into series all-passes, with
//! slightly different delay lengths per side for stereo width. Eight combs per side:
//! with four, the few resonances that stood out coloured every song with the same
//! pitches (a chroma analysis heard them as a key of their own).

/// Delay lengths in samples at 44.1 kHz, all prime so echoes and resonances do not pile up.
const COMBS: [usize; 8] = [1103, 1181, 1259, 1327, 1429, 1493, 1553, 1613];
const ALLPASSES: [usize; 4] = [557, 439, 347, 227];
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

/// Stereo reverb of a mono send. It runs at half the sample rate (delay lengths halved,
/// pairs of input samples averaged, output interpolated back): the tail is damped far
/// below 11 kHz anyway, and the reverb was the costliest effect of the mix.
pub struct Reverb {
    /// The last half-rate output per side, for interpolating back up.
    prev: [f32; 2],
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
                    .map(|&n| Comb::new((n + extra) / 2))
                    .collect::<Vec<_>>(),
                ALLPASSES
                    .iter()
                    .map(|&n| AllPass::new((n + extra) / 2))
                    .collect::<Vec<_>>(),
            )
        };
        let damp = damp.clamp(0.0, 0.95);
        Reverb {
            prev: [0.0; 2],
            left: side(0),
            right: side(STEREO_SPREAD),
            // Above ~0.9 the combs ring at their own pitches instead of sounding like a room.
            feedback: 0.7 + 0.2 * size.clamp(0.0, 1.0),
            // One half-rate step stands for two full-rate steps of the damping filter.
            damp: damp * damp,
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
            y * 0.15
        };
        let n = send.len().min(left.len()).min(right.len());
        for i in (0..n).step_by(2) {
            let j = (i + 1).min(n - 1);
            let x = 0.5 * (send[i] + send[j]);
            let (yl, yr) = (run(&mut self.left, x), run(&mut self.right, x));
            left[i] += 0.5 * (self.prev[0] + yl);
            right[i] += 0.5 * (self.prev[1] + yr);
            if j > i {
                left[j] += yl;
                right[j] += yr;
            }
            self.prev = [yl, yr];
        }
    }
}
