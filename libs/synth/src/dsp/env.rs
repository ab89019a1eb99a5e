//! ADSR envelope: linear attack, exponential decay and release (as real instruments and
//! analogue envelopes behave), computed a block at a time from precomputed powers
//! of the coefficients.

use crate::util::SAMPLE_RATE;

const SR: f32 = SAMPLE_RATE as f32;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    Attack,
    Decay,
    Release,
    Done,
}

#[derive(Debug, Clone, Copy)]
pub struct Adsr {
    stage: Stage,
    level: f32,
    attack_step: f32,
    sustain: f32,
    /// The decay and release coefficients to the powers 1..=FILL.
    decay_pow: [f32; FILL],
    release_pow: [f32; FILL],
}

/// Most samples [`Adsr::fill`] computes at once.
pub const FILL: usize = 64;

fn powers(c: f32) -> [f32; FILL] {
    let mut p = [c; FILL];
    for k in 1..FILL {
        p[k] = p[k - 1] * c;
    }
    p
}

/// Per-sample multiplier that decays to about 2% in `seconds`.
pub fn decay_coef(seconds: f32) -> f32 {
    (-4.0 / (seconds.max(0.0005) * SR)).exp()
}

impl Adsr {
    pub fn new(attack: f32, decay: f32, sustain: f32, release: f32) -> Self {
        let (decay_coef, release_coef) = (decay_coef(decay), decay_coef(release));
        Adsr {
            stage: Stage::Attack,
            level: 0.0,
            attack_step: 1.0 / (attack.max(0.0005) * SR),
            sustain: sustain.clamp(0.0, 1.0),
            decay_pow: powers(decay_coef),
            release_pow: powers(release_coef),
        }
    }
    pub fn release(&mut self) {
        if self.stage != Stage::Done {
            self.stage = Stage::Release;
        }
    }
    /// The envelope of the next samples into `e`, a block at a time: the exponential
    /// stages in closed form (a power table per block), so the loop has no
    /// dependency from one sample to the next.
    /// The gate closes at `release_at` (relative to `e`) if that lies inside it.
    /// Returns how many samples sound: fewer than `e.len()` once the release is done.
    pub fn fill(&mut self, e: &mut [f32], release_at: Option<usize>) -> usize {
        let n = e.len().min(FILL);
        let mut i = 0;
        while i < n {
            if release_at == Some(i) {
                self.release();
            }
            let end = match release_at {
                Some(r) if r > i => r.min(n),
                _ => n,
            };
            match self.stage {
                Stage::Attack => {
                    while i < end {
                        self.level += self.attack_step;
                        if self.level >= 1.0 {
                            self.level = 1.0;
                            self.stage = Stage::Decay;
                        }
                        e[i] = self.level;
                        i += 1;
                        if self.stage != Stage::Attack {
                            break;
                        }
                    }
                }
                Stage::Decay => {
                    let (s, d) = (self.sustain, self.level - self.sustain);
                    for (x, &c) in e[i..end].iter_mut().zip(&self.decay_pow) {
                        *x = s + d * c;
                    }
                    self.level = e[end - 1];
                    i = end;
                }
                Stage::Release => {
                    let l0 = self.level;
                    for (x, &c) in e[i..end].iter_mut().zip(&self.release_pow) {
                        *x = l0 * c;
                    }
                    if e[end - 1] < 1e-4 {
                        let quiet = e[i..end].iter().position(|&x| x < 1e-4).unwrap_or(0);
                        self.level = 0.0;
                        self.stage = Stage::Done;
                        return i + quiet;
                    }
                    self.level = e[end - 1];
                    i = end;
                }
                Stage::Done => return i,
            }
        }
        n
    }
}
