//! Band-limited oscillators (polyBLEP): the naive waveform minus a polynomial residual
//! at each discontinuity, which removes most of the aliasing for a few operations.

/// PolyBLEP residual for phase `t` (0..1) and phase increment `dt`.
#[inline]
fn blep(t: f32, dt: f32) -> f32 {
    if t < dt {
        let x = t / dt;
        x + x - x * x - 1.0
    } else if t > 1.0 - dt {
        let x = (t - 1.0) / dt;
        x * x + x + x + 1.0
    } else {
        0.0
    }
}

/// A phase accumulator in cycles.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phase(pub f32);

impl Phase {
    #[inline]
    pub fn advance(&mut self, dt: f32) -> f32 {
        let t = self.0;
        self.0 += dt;
        if self.0 >= 1.0 {
            self.0 -= 1.0;
        }
        t
    }
}

/// Band-limited sawtooth, -1..1. `dt` = frequency / sample rate.
#[derive(Debug, Clone, Copy, Default)]
pub struct Saw(Phase);

impl Saw {
    pub fn with_phase(p: f32) -> Self {
        Saw(Phase(p.rem_euclid(1.0)))
    }
    #[inline]
    pub fn next(&mut self, dt: f32) -> f32 {
        let t = self.0.advance(dt);
        2.0 * t - 1.0 - blep(t, dt)
    }
}

/// Band-limited pulse with width `pw` (0.5 = square).
#[derive(Debug, Clone, Copy, Default)]
pub struct Pulse(Phase);

impl Pulse {
    #[inline]
    pub fn next(&mut self, dt: f32, pw: f32) -> f32 {
        let t = self.0.advance(dt);
        let naive = if t < pw { 1.0 } else { -1.0 };
        let t2 = (t + 1.0 - pw).fract();
        naive + blep(t, dt) - blep(t2, dt)
    }
}
