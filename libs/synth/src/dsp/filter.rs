//! Filters: a one-pole smoother, a state-variable filter (low/band/high at once, stable
//! under fast modulation), and a DC blocker.

use std::f32::consts::PI;

use crate::util::SAMPLE_RATE;

const SR: f32 = SAMPLE_RATE as f32;

/// One-pole low-pass, also used to smooth parameters.
#[derive(Debug, Clone, Copy, Default)]
pub struct OnePole {
    a: f32,
    pub y: f32,
}

impl OnePole {
    pub fn new(cutoff_hz: f32) -> Self {
        let mut f = OnePole::default();
        f.set(cutoff_hz);
        f
    }
    pub fn set(&mut self, cutoff_hz: f32) {
        self.a = 1.0 - (-2.0 * PI * cutoff_hz.clamp(1.0, SR * 0.49) / SR).exp();
    }
    #[inline]
    pub fn lp(&mut self, x: f32) -> f32 {
        self.y += self.a * (x - self.y);
        self.y
    }
    #[inline]
    pub fn hp(&mut self, x: f32) -> f32 {
        x - self.lp(x)
    }
}

/// Outputs of one state-variable filter step.
#[derive(Debug, Clone, Copy)]
pub struct SvfOut {
    pub low: f32,
    pub band: f32,
    pub high: f32,
}

/// Topology-preserving-transform state-variable filter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Svf {
    a1: f32,
    a2: f32,
    a3: f32,
    k: f32,
    ic1: f32,
    ic2: f32,
}

impl Svf {
    pub fn new(cutoff_hz: f32, q: f32) -> Self {
        let mut f = Svf::default();
        f.set(cutoff_hz, q);
        f
    }
    /// Costs a `tan`: call per block or per note, not per sample.
    pub fn set(&mut self, cutoff_hz: f32, q: f32) {
        let g = (PI * cutoff_hz.clamp(10.0, SR * 0.45) / SR).tan();
        self.k = 1.0 / q.max(0.3);
        self.a1 = 1.0 / (1.0 + g * (g + self.k));
        self.a2 = g * self.a1;
        self.a3 = g * self.a2;
    }
    #[inline]
    pub fn process(&mut self, x: f32) -> SvfOut {
        let v3 = x - self.ic2;
        let v1 = self.a1 * self.ic1 + self.a2 * v3;
        let v2 = self.ic2 + self.a2 * self.ic1 + self.a3 * v3;
        self.ic1 = 2.0 * v1 - self.ic1;
        self.ic2 = 2.0 * v2 - self.ic2;
        SvfOut {
            low: v2,
            band: v1,
            high: x - self.k * v1 - v2,
        }
    }
    #[inline]
    pub fn low(&mut self, x: f32) -> f32 {
        self.process(x).low
    }
    /// Band-pass with unity gain at the centre frequency.
    #[inline]
    pub fn band_norm(&mut self, x: f32) -> f32 {
        let k = self.k;
        self.process(x).band * k
    }
    #[inline]
    pub fn high(&mut self, x: f32) -> f32 {
        self.process(x).high
    }
}

/// Removes DC offset with a high-pass at a few hertz.
#[derive(Debug, Clone, Copy)]
pub struct DcBlock {
    r: f32,
    x1: f32,
    y1: f32,
}

impl DcBlock {
    pub fn new(cutoff_hz: f32) -> Self {
        DcBlock {
            r: 1.0 - 2.0 * PI * cutoff_hz / SR,
            x1: 0.0,
            y1: 0.0,
        }
    }
    #[inline]
    pub fn process(&mut self, x: f32) -> f32 {
        let y = x - self.x1 + self.r * self.y1;
        self.x1 = x;
        self.y1 = y;
        y
    }
}
