//! ADSR envelope: linear attack, exponential decay and release (as real instruments and
//! analogue envelopes behave), stepped per sample with precomputed coefficients.

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
    decay_coef: f32,
    sustain: f32,
    release_coef: f32,
}

/// Per-sample multiplier that decays to about 2% in `seconds`.
pub fn decay_coef(seconds: f32) -> f32 {
    (-4.0 / (seconds.max(0.0005) * SR)).exp()
}

impl Adsr {
    pub fn new(attack: f32, decay: f32, sustain: f32, release: f32) -> Self {
        Adsr {
            stage: Stage::Attack,
            level: 0.0,
            attack_step: 1.0 / (attack.max(0.0005) * SR),
            decay_coef: decay_coef(decay),
            sustain: sustain.clamp(0.0, 1.0),
            release_coef: decay_coef(release),
        }
    }
    pub fn release(&mut self) {
        if self.stage != Stage::Done {
            self.stage = Stage::Release;
        }
    }
    pub fn done(&self) -> bool {
        self.stage == Stage::Done
    }
    #[inline]
    pub fn next(&mut self) -> f32 {
        match self.stage {
            Stage::Attack => {
                self.level += self.attack_step;
                if self.level >= 1.0 {
                    self.level = 1.0;
                    self.stage = Stage::Decay;
                }
            }
            Stage::Decay => {
                self.level = self.sustain + (self.level - self.sustain) * self.decay_coef
            }
            Stage::Release => {
                self.level *= self.release_coef;
                if self.level < 1e-4 {
                    self.level = 0.0;
                    self.stage = Stage::Done;
                }
            }
            Stage::Done => {}
        }
        self.level
    }
}
