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

/// `0, 1, 2, ...` as floats: sample offsets within a block.
const RAMP: [f32; 64] = {
    let mut r = [0.0f32; 64];
    let mut i = 0;
    while i < 64 {
        r[i] = i as f32;
        i += 1;
    }
    r
};

/// Wraps a phase in cycles (below 2^22 in magnitude) into 0..1, by the IEEE rounding of
/// an add and subtract of 1.5 * 2^23 (no libm `floor`, so loops of it vectorise).
#[inline]
fn wrap(p: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0;
    let f = p - ((p + ROUND) - ROUND);
    if f < 0.0 { f + 1.0 } else { f }
}

impl Saw {
    /// Writes the next `out.len()` samples at a fixed `dt` (below 1). Each sample's
    /// phase is computed from the start of its run of 64 rather than by adding `dt`
    /// sample after sample, so there is no chain from one sample to the next and the
    /// loop vectorises.
    pub fn fill(&mut self, dt: f32, out: &mut [f32]) {
        let inv = 1.0 / dt;
        for run in out.chunks_mut(RAMP.len()) {
            let p0 = self.0.0;
            for (o, &k) in run.iter_mut().zip(&RAMP) {
                let t = wrap(p0 + k * dt);
                let rise = t * inv;
                let fall = (t - 1.0) * inv;
                let blep = if t < dt {
                    rise + rise - rise * rise - 1.0
                } else if t > 1.0 - dt {
                    fall * fall + fall + fall + 1.0
                } else {
                    0.0
                };
                *o = 2.0 * t - 1.0 - blep;
            }
            self.0.0 = wrap(p0 + run.len() as f32 * dt);
        }
    }
}

impl Saw {
    /// Writes one sample per phase increment of `dts` (each below 1): the phases by
    /// a running sum taken four samples per step (the sums within a group of four
    /// do not wait for the group before), then the waveform for all of them at once.
    pub fn fill_with(&mut self, dts: &[f32], out: &mut [f32]) {
        let mut p = self.0.0;
        for (o, d) in out.chunks_mut(4).zip(dts.chunks(4)) {
            let mut local = [0.0f32; 4];
            for k in 1..d.len() {
                local[k] = local[k - 1] + d[k - 1];
            }
            for (o, l) in o.iter_mut().zip(local) {
                *o = p + l;
            }
            p += local[d.len() - 1] + d[d.len() - 1];
        }
        self.0.0 = wrap(p);
        for (o, &dt) in out.iter_mut().zip(dts) {
            let t = wrap(*o);
            let inv = 1.0 / dt;
            let (rise, fall) = (t * inv, (t - 1.0) * inv);
            let blep = if t < dt {
                rise + rise - rise * rise - 1.0
            } else if t > 1.0 - dt {
                fall * fall + fall + fall + 1.0
            } else {
                0.0
            };
            *o = 2.0 * t - 1.0 - blep;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_saw_matches_the_sample_by_sample_one() {
        // The two differ only by how the phase rounds (the running sum drifts a
        // little): apart from the steep polyBLEP steps, by almost nothing.
        let dt = 98.0 / 44_100.0;
        let (mut a, mut b) = (Saw::default(), Saw::default());
        let mut block = [0.0f32; 100];
        let (mut sum, mut worst) = (0.0f32, 0.0f32);
        for _ in 0..50 {
            a.fill(dt, &mut block);
            for &got in &block {
                let d = (got - b.next(dt)).abs();
                sum += d;
                worst = worst.max(d);
            }
        }
        assert!(sum / 5000.0 < 1e-4 && worst < 0.05, "{sum} {worst}");
    }

    #[test]
    fn saw_with_varying_steps_matches_the_sample_by_sample_one() {
        let (mut a, mut b) = (Saw::default(), Saw::default());
        let (mut block, mut dts) = ([0.0f32; 32], [0.0f32; 32]);
        let (mut sum, mut worst) = (0.0f32, 0.0f32);
        for j in 0..200 {
            for (i, dt) in dts.iter_mut().enumerate() {
                // A glide with vibrato, as the singer's.
                *dt = (180.0 + 40.0 * ((j * 32 + i) as f32 * 0.001).sin()) / 44_100.0;
            }
            a.fill_with(&dts, &mut block);
            for (&got, &dt) in block.iter().zip(&dts) {
                let d = (got - b.next(dt)).abs();
                sum += d;
                worst = worst.max(d);
            }
        }
        assert!(sum / 6400.0 < 1e-3 && worst < 0.05, "{sum} {worst}");
    }
}
