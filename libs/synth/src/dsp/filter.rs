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
    /// One sample (the blocks below are the same filter, faster).
    #[cfg(test)]
    pub fn lp(&mut self, x: f32) -> f32 {
        self.y += self.a * (x - self.y);
        self.y
    }

    /// Low-pass over a block in place, four samples per step: each group of four
    /// outputs is the last output times powers of the pole plus the four inputs
    /// through the impulse response, so the recursion advances four samples for
    /// one multiply-add.
    pub fn lp_block(&mut self, x: &mut [f32]) {
        let a = self.a;
        let c = 1.0 - a;
        let cp = [c, c * c, c * c * c, c * c * c * c];
        let b = [
            [a, a * c, a * cp[1], a * cp[2]],
            [0.0, a, a * c, a * cp[1]],
            [0.0, 0.0, a, a * c],
            [0.0, 0.0, 0.0, a],
        ];
        let mut y = self.y;
        let mut quads = x.chunks_exact_mut(4);
        for q in &mut quads {
            let mut out = [0.0f32; 4];
            for l in 0..4 {
                out[l] = ((q[0] * b[0][l] + q[1] * b[1][l]) + (q[2] * b[2][l] + q[3] * b[3][l]))
                    + y * cp[l];
            }
            y = out[3];
            q.copy_from_slice(&out);
        }
        for v in quads.into_remainder() {
            y = c * y + a * *v;
            *v = y;
        }
        self.y = y;
    }

    /// High-pass over a block in place (the input minus its low-pass).
    pub fn hp_block(&mut self, x: &mut [f32], scratch: &mut [f32]) {
        let scratch = &mut scratch[..x.len()];
        scratch.copy_from_slice(x);
        self.lp_block(scratch);
        for (v, l) in x.iter_mut().zip(scratch.iter()) {
            *v -= l;
        }
    }
}

/// Outputs of one state-variable filter step.
#[derive(Debug, Clone, Copy)]
pub struct SvfOut {
    pub low: f32,
    pub band: f32,
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
        SvfOut { low: v2, band: v1 }
    }
    /// The update as one matrix step, `s' = M s + d x` with `s = (ic1, ic2)`, and an
    /// output `o . (ic1, ic2, x)`, taken two samples at a time: `s'' = M^2 s +
    /// (M d x0 + d x1)`, where the bracket does not depend on the state. The chain
    /// from one state to the next is then a multiply and two adds per two samples,
    /// half that of stepping one sample at a time; the intermediate state, needed
    /// for the second output, is computed beside it, off the chain.
    #[inline]
    fn run_block(&mut self, x: &mut [f32], o: [f32; 3]) {
        let (a1, a2, a3) = (self.a1, self.a2, self.a3);
        let (m11, m12, d1) = (2.0 * a1 - 1.0, -2.0 * a2, 2.0 * a2);
        let (m21, m22, d2) = (2.0 * a2, 1.0 - 2.0 * a3, 2.0 * a3);
        // M^2 and M d.
        let (q11, q12) = (m11 * m11 + m12 * m21, m11 * m12 + m12 * m22);
        let (q21, q22) = (m21 * m11 + m22 * m21, m21 * m12 + m22 * m22);
        let (e1, e2) = (m11 * d1 + m12 * d2, m21 * d1 + m22 * d2);
        let (mut ic1, mut ic2) = (self.ic1, self.ic2);
        let mut pairs = x.chunks_exact_mut(2);
        for p in &mut pairs {
            let (s1, s2, x0, x1) = (ic1, ic2, p[0], p[1]);
            let t1 = m11 * s1 + m12 * s2 + d1 * x0;
            let t2 = m21 * s1 + m22 * s2 + d2 * x0;
            p[0] = o[0] * s1 + o[1] * s2 + o[2] * x0;
            p[1] = o[0] * t1 + o[1] * t2 + o[2] * x1;
            let (u1, u2) = (e1 * x0 + d1 * x1, e2 * x0 + d2 * x1);
            ic1 = (q11 * s1 + q12 * s2) + u1;
            ic2 = (q21 * s1 + q22 * s2) + u2;
        }
        if let [v] = pairs.into_remainder() {
            let (s1, s2, xi) = (ic1, ic2, *v);
            *v = o[0] * s1 + o[1] * s2 + o[2] * xi;
            ic1 = m11 * s1 + m12 * s2 + d1 * xi;
            ic2 = m21 * s1 + m22 * s2 + d2 * xi;
        }
        self.ic1 = ic1;
        self.ic2 = ic2;
    }

    /// Low-pass over a block in place.
    pub fn low_block(&mut self, x: &mut [f32]) {
        // v2 = ic2 + a2 ic1 + a3 (x - ic2)
        let o = [self.a2, 1.0 - self.a3, self.a3];
        self.run_block(x, o);
    }

    /// High-pass over a block in place.
    pub fn high_block(&mut self, x: &mut [f32]) {
        // x - k v1 - v2, v1 = a1 ic1 + a2 (x - ic2)
        let (k, a1, a2, a3) = (self.k, self.a1, self.a2, self.a3);
        let o = [-k * a1 - a2, k * a2 - 1.0 + a3, 1.0 - k * a2 - a3];
        self.run_block(x, o);
    }

    /// Unity-gain band-pass over a block in place.
    pub fn band_norm_block(&mut self, x: &mut [f32]) {
        let (k, a1, a2) = (self.k, self.a1, self.a2);
        let o = [k * a1, -k * a2, k * a2];
        self.run_block(x, o);
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
    /// Channel `c` of `frames` in place, four frames per step: the recursion
    /// advances four frames for one multiply-add (as in [`OnePole::lp_block`]).
    pub fn process_channel(&mut self, frames: &mut [[f32; 2]], c: usize) {
        let r = self.r;
        let (r2, r3) = (r * r, r * r * r);
        let r4 = r2 * r2;
        let (mut x1, mut y) = (self.x1, self.y1);
        let mut quads = frames.chunks_exact_mut(4);
        for q in &mut quads {
            let x = [q[0][c], q[1][c], q[2][c], q[3][c]];
            let d = [x[0] - x1, x[1] - x[0], x[2] - x[1], x[3] - x[2]];
            let out = [
                d[0] + r * y,
                (d[1] + r * d[0]) + r2 * y,
                ((d[2] + r * d[1]) + r2 * d[0]) + r3 * y,
                ((d[3] + r * d[2]) + (r2 * d[1] + r3 * d[0])) + r4 * y,
            ];
            for (f, o) in q.iter_mut().zip(out) {
                f[c] = o;
            }
            x1 = x[3];
            y = out[3];
        }
        for f in quads.into_remainder() {
            let v = f[c] - x1 + r * y;
            x1 = f[c];
            y = v;
            f[c] = v;
        }
        self.x1 = x1;
        self.y1 = y;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_filters_match_the_sample_by_sample_ones() {
        let mut noise = crate::dsp::Noise::new(7);
        let x: Vec<f32> = (0..1001).map(|_| noise.next()).collect();
        // Low-, high- and band-pass from the same per-sample step.
        type Block = fn(&mut Svf, &mut [f32]);
        type Sample = fn(&mut Svf, f32) -> f32;
        let outputs: [(Block, Sample); 3] = [
            (Svf::low_block, |f, v| f.process(v).low),
            (Svf::high_block, |f, v| {
                let k = f.k;
                let o = f.process(v);
                v - k * o.band - o.low
            }),
            (Svf::band_norm_block, |f, v| f.band_norm(v)),
        ];
        for (block, sample) in outputs {
            let (mut a, mut b) = (Svf::new(1500.0, 0.8), Svf::new(1500.0, 0.8));
            let mut y = x.clone();
            // Odd pieces, so the remainder step runs too.
            for piece in y.chunks_mut(37) {
                block(&mut a, piece);
            }
            for (&v, &got) in x.iter().zip(&y) {
                let want = sample(&mut b, v);
                assert!((got - want).abs() < 1e-4, "{got} vs {want}");
            }
        }
        let mut lp = OnePole::new(300.0);
        let mut lp1 = lp;
        let mut y = x.clone();
        lp.lp_block(&mut y);
        for (&v, &got) in x.iter().zip(&y) {
            assert!((got - lp1.lp(v)).abs() < 1e-5);
        }
    }
}
