//! The mix bus: sums the rendered parts into the stems, the mix and the shared reverb
//! (whose return is a stem of its own, so the stems still sum to the mix).
//!
//! Memory and speed both come from the layout. Each part was rendered as mono float
//! into its own stem file's bytes (a mono 32-bit frame takes the 4 bytes a stereo
//! 16-bit frame does), so the stems are the only song-length buffers besides the mix.
//! The bus then walks the song once, a block at a time: every part of the block is
//! balanced, faded and panned, written over its float frames as 16-bit stereo, and
//! summed, with the reverb send, into block-sized buffers that stay in cache; the
//! reverb runs on the block and the mix block is written once.

use crate::dsp::reverb::Reverb;
use crate::util::{SAMPLE_RATE, fmax};
use crate::wav::{self, Depth, Pcm};

const SR: f32 = SAMPLE_RATE as f32;
/// Loudness (RMS while playing) a part at 0 dB is balanced to: about -26 dBFS, which
/// leaves every 16-bit stem, and their sum, well below full scale (the master sets the
/// final level anyway).
const REFERENCE_RMS: f32 = 0.05;
/// A stem never peaks above this; a part that would is turned down to fit.
const STEM_PEAK: f32 = 0.98;
/// Reverb pre-delay in half-rate samples (20 ms): it keeps the dry attacks clear.
const PRE_DELAY: usize = 441;
/// Frames per block of the mixdown (even: the send pairs frames up).
const BLOCK: usize = 4096;

/// A part ready to mix.
pub struct Track<'a> {
    pub name: String,
    pub source: Source<'a>,
    /// Loudness while playing and peak, from [`Level`].
    pub rms: f32,
    pub peak: f32,
    pub level_db: f32,
    pub pan: f32,
    /// Share of the part sent to the reverb.
    pub send: f32,
}

pub enum Source<'a> {
    /// A 16-bit stereo WAV whose data chunk still holds the part as mono 32-bit
    /// float frames, to be overwritten in place.
    InPlace(Vec<u8>),
    /// A recording read a block at a time (the vocals); its stem is written fresh.
    Pcm(&'a Pcm<'a>),
}

impl Track<'_> {
    /// Balance gain: the loudness to `level_db` relative to the reference, turned down
    /// if the stem would peak above [`STEM_PEAK`].
    fn gain(&self) -> f32 {
        if self.rms <= 0.0 {
            return 0.0;
        }
        let gain = REFERENCE_RMS * 10f32.powf(self.level_db / 20.0) / self.rms;
        if self.peak * gain > STEM_PEAK {
            STEM_PEAK / self.peak
        } else {
            gain
        }
    }
}

/// Mixes `tracks` over `frames` frames (the music ends at `music_end`; the tail after
/// it fades out), with a reverb of `size` and `damp` scaled by `reverb_scale`.
/// Returns the stems, the reverb return last, and the stereo float mix.
pub fn mix_down(
    tracks: Vec<Track>,
    frames: usize,
    music_end: usize,
    reverb: (f32, f32, f32),
) -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
    let (size, damp, reverb_scale) = reverb;
    let fade = Fade::new(music_end, frames);
    // Silent files to begin with: silent blocks are skipped, their memory untouched.
    let mut mix = wav::silent(2, Depth::Float32, frames);
    let mut lanes: Vec<Lane> = tracks
        .into_iter()
        .map(|t| {
            let gain = t.gain();
            let (stem, pcm) = match t.source {
                Source::InPlace(bytes) => (bytes, None),
                Source::Pcm(p) => (wav::silent(2, Depth::Int16, frames), Some(p)),
            };
            Lane {
                name: t.name,
                stem,
                pcm,
                gain,
                pan: pan_gains(t.pan),
                // Half the send per frame: two frames make one half-rate value.
                send: 0.5 * t.send * reverb_scale,
            }
        })
        .collect();
    let mut rv = Reverb::new(size, damp);
    let mut rv_stem = wav::silent(2, Depth::Int16, frames);
    let mut b = Blocks::default();
    // The send: the pre-delay's worth left from the block before, then this block's.
    let mut send = vec![0.0f32; PRE_DELAY + BLOCK / 2];
    let mut at = 0;
    while at < frames {
        let n = BLOCK.min(frames - at);
        let half = n.div_ceil(2);
        b.sum_l[..n].fill(0.0);
        b.sum_r[..n].fill(0.0);
        send[PRE_DELAY..PRE_DELAY + half].fill(0.0);
        // Before the fade its gain is exactly 1: nothing to multiply by.
        let faded = at + n > fade.start;
        if faded {
            for (k, g) in b.fade[..n].iter_mut().enumerate() {
                *g = fade.at(at + k);
            }
        }
        for lane in &mut lanes {
            let to_send = &mut send[PRE_DELAY..PRE_DELAY + half];
            let dst = &mut lane.stem[wav::HEADER_LEN + at * 4..][..n * 4];
            match lane.pcm {
                Some(p) => p.read_mono(at, &mut b.x[..n]),
                // The frame's bytes still hold the float it becomes.
                None => {
                    for (x, s) in b.x.iter_mut().zip(dst.as_chunks::<4>().0) {
                        *x = f32::from_le_bytes(*s);
                    }
                }
            }
            // A silent block adds nothing and its stem bytes are zero already (a
            // fresh file, or float zeros, which are 16-bit zeros too).
            if !wav::is_silent(&b.x[..n]) {
                b.add(n, lane.gain, faded, lane.pan, to_send, lane.send, dst);
            }
        }
        b.l[..n].fill(0.0);
        b.r[..n].fill(0.0);
        rv.process_half(&send[..half], &mut b.l[..n], &mut b.r[..n]);
        send.copy_within(half..half + PRE_DELAY, 0);
        if faded {
            for ((l, r), &f) in b.l[..n].iter_mut().zip(&mut b.r[..n]).zip(&b.fade[..n]) {
                *l *= f;
                *r *= f;
            }
        }
        for ((l, r), (sl, sr)) in b.l[..n]
            .iter()
            .zip(&b.r[..n])
            .zip(b.sum_l[..n].iter_mut().zip(&mut b.sum_r[..n]))
        {
            *sl += *l;
            *sr += *r;
        }
        if !(wav::is_silent(&b.l[..n]) && wav::is_silent(&b.r[..n])) {
            let dst = &mut rv_stem[wav::HEADER_LEN + at * 4..][..n * 4];
            wav::put_i16_stereo(dst, &b.l[..n], &b.r[..n]);
        }
        if !(wav::is_silent(&b.sum_l[..n]) && wav::is_silent(&b.sum_r[..n])) {
            let out = &mut mix[wav::HEADER_LEN + at * 8..][..n * 8];
            let (frames, _) = out.as_chunks_mut::<8>();
            for ((o, l), r) in frames.iter_mut().zip(&b.sum_l[..n]).zip(&b.sum_r[..n]) {
                o[..4].copy_from_slice(&l.to_le_bytes());
                o[4..].copy_from_slice(&r.to_le_bytes());
            }
        }
        at += n;
    }
    let mut stems: Vec<(String, Vec<u8>)> = lanes.into_iter().map(|l| (l.name, l.stem)).collect();
    stems.push(("reverb".to_string(), rv_stem));
    (stems, mix)
}

/// A track as the mixdown uses it.
struct Lane<'a> {
    name: String,
    stem: Vec<u8>,
    /// Where the samples come from when not from `stem` itself.
    pcm: Option<&'a Pcm<'a>>,
    gain: f32,
    pan: [f32; 2],
    send: f32,
}

/// Block-sized working buffers, planar so that every pass over them is a plain loop
/// over arrays, which the compiler vectorises.
struct Blocks {
    /// The part's mono input, then its left and right output.
    x: Vec<f32>,
    l: Vec<f32>,
    r: Vec<f32>,
    /// The mix of the block so far.
    sum_l: Vec<f32>,
    sum_r: Vec<f32>,
    /// The end fade's gain per frame.
    fade: Vec<f32>,
}

impl Default for Blocks {
    fn default() -> Self {
        let v = || vec![0.0f32; BLOCK];
        Blocks {
            x: v(),
            l: v(),
            r: v(),
            sum_l: v(),
            sum_r: v(),
            fade: v(),
        }
    }
}

impl Blocks {
    /// Scales the `n` frames of `x` by `gain` (and the fade, when `faded`), pans them
    /// into the sums and writes them over their stem frames `dst` as 16-bit stereo
    /// (one pass), and adds `send` of them (per frame; pairs of frames make one
    /// half-rate value) to `to_send`.
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        n: usize,
        gain: f32,
        faded: bool,
        pan: [f32; 2],
        to_send: &mut [f32],
        send: f32,
        dst: &mut [u8],
    ) {
        if faded {
            for (x, &f) in self.x[..n].iter_mut().zip(&self.fade[..n]) {
                *x *= gain * f;
            }
        } else {
            for x in &mut self.x[..n] {
                *x *= gain;
            }
        }
        let (dst, _) = dst.as_chunks_mut::<4>();
        for ((x, (sl, sr)), d) in self.x[..n]
            .iter()
            .zip(self.sum_l[..n].iter_mut().zip(&mut self.sum_r[..n]))
            .zip(dst)
        {
            let (l, r) = (x * pan[0], x * pan[1]);
            *sl += l;
            *sr += r;
            let v = u32::from(wav::to_i16(l) as u16) | (u32::from(wav::to_i16(r) as u16) << 16);
            *d = v.to_le_bytes();
        }
        let mut pairs = self.x[..n].chunks_exact(2);
        for (s, pair) in to_send.iter_mut().zip(&mut pairs) {
            *s += (pair[0] + pair[1]) * send;
        }
        if let ([last], Some(s)) = (pairs.remainder(), to_send.get_mut(n / 2)) {
            *s += last * send;
        }
    }
}

/// Constant-power pan law.
fn pan_gains(pan: f32) -> [f32; 2] {
    let a = (pan.clamp(-1.0, 1.0) + 1.0) * std::f32::consts::FRAC_PI_4;
    [a.cos(), a.sin()]
}

/// A part's loudness while it plays and its peak, fed in any chunking. Loudness is the
/// RMS over 100 ms blocks that are not silent, so a sparse part is not pushed up for
/// its rests.
pub struct Level {
    block: usize,
    /// Sum of squares and frames of the block in progress.
    acc: f64,
    n: usize,
    /// Sum of the mean squares of the blocks that count, and how many.
    sum: f64,
    count: usize,
    peak: f32,
}

impl Default for Level {
    fn default() -> Self {
        Level {
            block: (0.1 * SR) as usize,
            acc: 0.0,
            n: 0,
            sum: 0.0,
            count: 0,
            peak: 0.0,
        }
    }
}

impl Level {
    pub fn push(&mut self, mut x: &[f32]) {
        while !x.is_empty() {
            let (now, rest) = x.split_at((self.block - self.n).min(x.len()));
            // Eight running sums and peaks, in lanes the compiler vectorises; f32 is
            // plenty for a gain over one 100 ms block.
            let (mut acc, mut peak) = ([0.0f32; 8], [0.0f32; 8]);
            let mut lanes = now.chunks_exact(8);
            for q in &mut lanes {
                for k in 0..8 {
                    acc[k] += q[k] * q[k];
                    peak[k] = fmax(peak[k], q[k].abs());
                }
            }
            for (k, &s) in lanes.remainder().iter().enumerate() {
                acc[k] += s * s;
                peak[k] = fmax(peak[k], s.abs());
            }
            self.peak = peak.iter().fold(self.peak, |m, &p| fmax(m, p));
            self.acc += acc.iter().map(|&a| f64::from(a)).sum::<f64>();
            self.n += now.len();
            if self.n == self.block {
                self.close();
            }
            x = rest;
        }
    }

    fn close(&mut self) {
        if self.n > 0 {
            let ms = self.acc / self.n as f64;
            if ms > 1e-7 {
                self.sum += ms;
                self.count += 1;
            }
        }
        self.acc = 0.0;
        self.n = 0;
    }

    /// (RMS while playing, 0 for silence; peak).
    pub fn finish(mut self) -> (f32, f32) {
        self.close();
        if self.count == 0 {
            return (0.0, self.peak);
        }
        ((self.sum / self.count as f64).sqrt() as f32, self.peak)
    }
}

/// Gain curve for the end: full through the music, then a smooth fade that reaches
/// silence exactly at the last sample, whatever the bar grid left over. Tabulated
/// once: every stem applies the same curve.
struct Fade {
    start: usize,
    gains: Vec<f32>,
}

impl Fade {
    fn new(music_end: usize, frames: usize) -> Self {
        let music_end = music_end.min(frames);
        let len = (frames - music_end).max((0.5 * SR) as usize).min(frames);
        let gains = (0..len)
            .map(|i| {
                let t = i as f32 / len as f32;
                let c = (t * std::f32::consts::FRAC_PI_2).cos();
                c * c
            })
            .collect();
        Fade {
            start: frames - len,
            gains,
        }
    }

    #[inline]
    fn at(&self, i: usize) -> f32 {
        if i < self.start {
            1.0
        } else {
            self.gains[i - self.start]
        }
    }
}
