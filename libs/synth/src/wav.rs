//! WAV in memory, written and parsed here rather than through a general library: the
//! engine only writes two layouts (16-bit PCM and 32-bit float) and must read its own
//! artifacts fast, a chunk of frames at a time, without decoding whole files into
//! per-channel buffers (a 10-minute stereo float file is 200 MB already).

use crate::api::{ArtifactKind, SynthError};
use crate::util::SAMPLE_RATE;

/// Sample encoding of a written file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// 16-bit integers, for finished audio. TPDF dither is the caller's job.
    Int16,
    /// 32-bit float, for intermediate audio whose peaks may exceed full scale.
    Float32,
}

impl Depth {
    fn bytes(self) -> usize {
        match self {
            Depth::Int16 => 2,
            Depth::Float32 => 4,
        }
    }
}

/// Bytes before the samples in every file written here.
pub const HEADER_LEN: usize = 44;

/// A RIFF/WAVE header for `frames` frames, with room reserved for the samples.
#[cfg(test)]
fn header(channels: u16, depth: Depth, frames: usize) -> Vec<u8> {
    let block = usize::from(channels) * depth.bytes();
    let mut h = Vec::with_capacity(HEADER_LEN + frames * block);
    h.extend_from_slice(&header_bytes(channels, depth, frames));
    h
}

/// A file of `frames` frames of silence: the header, then zeros. The zeros come from
/// the allocator (fresh pages are zero already), so stretches nobody writes cost
/// nothing, not even the memory: writers can skip silence.
pub fn silent(channels: u16, depth: Depth, frames: usize) -> Vec<u8> {
    let block = usize::from(channels) * depth.bytes();
    let mut f = vec![0u8; HEADER_LEN + frames * block];
    f[..HEADER_LEN].copy_from_slice(&header_bytes(channels, depth, frames));
    f
}

/// Whether every sample of `x` is +0.0, the bytes of a silent file.
#[inline]
pub fn is_silent(x: &[f32]) -> bool {
    // One OR per sample (in vector lanes), rather than a test that stops early.
    x.iter().fold(0u32, |a, v| a | v.to_bits()) == 0
}

/// The RIFF/WAVE header of a file of `frames` frames (the samples follow it).
pub fn header_bytes(channels: u16, depth: Depth, frames: usize) -> [u8; HEADER_LEN] {
    let block = usize::from(channels) * depth.bytes();
    // The duration cap (600 s) keeps every size far below 4 GiB.
    let data_len = (frames * block).min(u32::MAX as usize - 64) as u32;
    let mut h = [0u8; HEADER_LEN];
    let fields: [&[u8]; 12] = [
        b"RIFF",
        &(36 + data_len).to_le_bytes(),
        b"WAVEfmt ",
        &16u32.to_le_bytes(),
        &(if depth == Depth::Int16 { 1u16 } else { 3 }).to_le_bytes(),
        &channels.to_le_bytes(),
        &SAMPLE_RATE.to_le_bytes(),
        &(SAMPLE_RATE * block as u32).to_le_bytes(),
        &(block as u16).to_le_bytes(),
        &(8 * depth.bytes() as u16).to_le_bytes(),
        b"data",
        &data_len.to_le_bytes(),
    ];
    let mut at = 0;
    for f in fields {
        h[at..at + f.len()].copy_from_slice(f);
        at += f.len();
    }
    h
}

/// Encodes planar channels (all the same length, 1 or 2 of them) as an interleaved WAV.
#[cfg(test)]
pub fn encode(channels: &[&[f32]], depth: Depth) -> Vec<u8> {
    let chans = &channels[..channels.len().min(2)];
    let frames = chans.iter().map(|c| c.len()).min().unwrap_or(0);
    let mut out = header(chans.len().max(1) as u16, depth, frames);
    match (depth, chans) {
        (Depth::Int16, [mono]) => {
            out.resize(HEADER_LEN + frames * 2, 0);
            for (d, &x) in out[HEADER_LEN..].chunks_exact_mut(2).zip(mono.iter()) {
                d.copy_from_slice(&to_i16(x).to_le_bytes());
            }
        }
        _ => {
            for i in 0..frames {
                for ch in chans {
                    push(&mut out, ch[i], depth);
                }
            }
        }
    }
    out
}

/// Appends one sample.
#[cfg(test)]
fn push(out: &mut Vec<u8>, x: f32, depth: Depth) {
    match depth {
        Depth::Int16 => out.extend_from_slice(&to_i16(x).to_le_bytes()),
        Depth::Float32 => {
            let x = if x.is_finite() { x } else { 0.0 };
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
}

/// Rounds to the nearest 16-bit value (ties to even), saturating (NaN becomes 0).
#[inline]
pub fn to_i16(x: f32) -> i16 {
    let x = if x.is_nan() { 0.0 } else { x };
    let v = x.clamp(-1.0, 1.0) * 32767.0;
    // Adding 1.5 * 2^23 leaves round(v) in the low mantissa bits (IEEE rounding, the
    // same on every machine): no float-to-int conversion with its saturation checks,
    // so loops over many samples vectorise.
    ((v + 12_582_912.0).to_bits() as i32 - 0x4B40_0000) as i16
}

/// Writes stereo frames as interleaved 16-bit (4 bytes per frame into `dst`).
#[inline]
pub fn put_i16_stereo(dst: &mut [u8], left: &[f32], right: &[f32]) {
    for ((d, &l), &r) in dst.chunks_exact_mut(4).zip(left).zip(right) {
        let v = u32::from(to_i16(l) as u16) | (u32::from(to_i16(r) as u16) << 16);
        d.copy_from_slice(&v.to_le_bytes());
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    U8,
    I16,
    I24,
    I32,
    F32,
}

/// A parsed WAV file borrowed from its bytes: reads frames on demand as stereo f32.
pub struct Pcm<'a> {
    data: &'a [u8],
    channels: usize,
    format: Format,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

impl<'a> Pcm<'a> {
    /// Parses the RIFF chunks; `kind` names the artifact in errors.
    pub fn parse(bytes: &'a [u8], kind: ArtifactKind) -> Result<Self, SynthError> {
        let bad = |reason: &str| SynthError::InvalidInput {
            kind,
            reason: reason.to_string(),
        };
        if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
            return Err(bad("not a RIFF/WAVE file"));
        }
        let mut at = 12;
        let mut fmt: Option<(Format, usize)> = None;
        while at + 8 <= bytes.len() {
            let id = &bytes[at..at + 4];
            let len = u32_at(bytes, at + 4).ok_or_else(|| bad("truncated chunk"))? as usize;
            let body = at + 8;
            if id == b"fmt " {
                let mut tag = u16_at(bytes, body).ok_or_else(|| bad("short fmt chunk"))?;
                let channels = u16_at(bytes, body + 2).unwrap_or(0) as usize;
                let rate = u32_at(bytes, body + 4).unwrap_or(0);
                let bits = u16_at(bytes, body + 14).unwrap_or(0);
                if tag == 0xFFFE {
                    // WAVE_FORMAT_EXTENSIBLE: the real tag opens the sub-format GUID.
                    tag = u16_at(bytes, body + 24).ok_or_else(|| bad("short fmt chunk"))?;
                }
                if rate != SAMPLE_RATE {
                    return Err(bad(&format!("sample rate {rate} is not {SAMPLE_RATE}")));
                }
                if !(1..=2).contains(&channels) {
                    return Err(bad(&format!("{channels} channels; expected 1 or 2")));
                }
                let format = match (tag, bits) {
                    (1, 8) => Format::U8,
                    (1, 16) => Format::I16,
                    (1, 24) => Format::I24,
                    (1, 32) => Format::I32,
                    (3, 32) => Format::F32,
                    _ => return Err(bad(&format!("unsupported format {tag} with {bits} bits"))),
                };
                fmt = Some((format, channels));
            } else if id == b"data" {
                let (format, channels) = fmt.ok_or_else(|| bad("data before fmt"))?;
                let end = body.saturating_add(len).min(bytes.len());
                return Ok(Pcm {
                    data: &bytes[body..end],
                    channels,
                    format,
                });
            }
            at = body.saturating_add(len).saturating_add(len & 1);
        }
        Err(bad("no data chunk"))
    }

    fn sample_bytes(&self) -> usize {
        match self.format {
            Format::U8 => 1,
            Format::I16 => 2,
            Format::I24 => 3,
            Format::I32 | Format::F32 => 4,
        }
    }

    pub fn frames(&self) -> usize {
        self.data.len() / (self.sample_bytes() * self.channels)
    }

    /// Fills `out` with the frames from `start` on (mono is duplicated to both sides,
    /// frames past the end are silence, non-finite samples become 0).
    pub fn read(&self, start: usize, out: &mut [[f32; 2]]) {
        let sb = self.sample_bytes();
        let block = sb * self.channels;
        let avail = self.frames().saturating_sub(start).min(out.len());
        let src = &self.data[start.min(self.frames()) * block..][..avail * block];
        // One loop per format and layout, the match outside: this runs on every frame
        // of every pass the master makes.
        match (self.format, self.channels) {
            // Frame sizes as constants, so each loop is unrolled and vectorised.
            (Format::I16, 2) => fill::<4>(out, src, |f| [i16_at(&f[..2]), i16_at(&f[2..4])]),
            (Format::I16, _) => fill::<2>(out, src, |f| [i16_at(f); 2]),
            (Format::F32, 2) => fill::<8>(out, src, |f| [f32_at(&f[..4]), f32_at(&f[4..8])]),
            (Format::F32, _) => fill::<4>(out, src, |f| [f32_at(f); 2]),
            (Format::I24, 2) => fill::<6>(out, src, |f| [i24_at(&f[..3]), i24_at(&f[3..6])]),
            (Format::I24, _) => fill::<3>(out, src, |f| [i24_at(f); 2]),
            (fmt, _) => {
                let get = |s: &[u8]| match fmt {
                    Format::U8 => (f32::from(s[0]) - 128.0) / 128.0,
                    _ => i32::from_le_bytes([s[0], s[1], s[2], s[3]]) as f32 / 2_147_483_648.0,
                };
                let stereo = self.channels == 2;
                for (o, f) in out.iter_mut().zip(src.chunks_exact(block)) {
                    let l = get(&f[..sb]);
                    *o = [l, if stereo { get(&f[sb..]) } else { l }];
                }
            }
        }
        out[avail..].iter_mut().for_each(|o| *o = [0.0; 2]);
    }

    /// Fills `out` with the frames from `start` on as mono: the mean of the two sides
    /// (a mono file's own samples, exactly), silence past the end.
    pub fn read_mono(&self, start: usize, out: &mut [f32]) {
        if (self.format, self.channels) == (Format::I16, 1) {
            let avail = self.frames().saturating_sub(start).min(out.len());
            let src = &self.data[start.min(self.frames()) * 2..][..avail * 2];
            let (samples, _) = src.as_chunks::<2>();
            for (o, s) in out.iter_mut().zip(samples) {
                *o = i16_at(s);
            }
            out[avail..].fill(0.0);
            return;
        }
        let mut buf = [[0.0f32; 2]; 256];
        for (k, part) in out.chunks_mut(buf.len()).enumerate() {
            let frames = &mut buf[..part.len()];
            self.read(start + k * 256, frames);
            for (o, [l, r]) in part.iter_mut().zip(frames.iter()) {
                *o = 0.5 * (l + r);
            }
        }
    }
}

/// Decodes the `BLOCK`-byte frames of `src` into `out` with `frame`.
#[inline]
fn fill<const BLOCK: usize>(
    out: &mut [[f32; 2]],
    src: &[u8],
    frame: impl Fn(&[u8; BLOCK]) -> [f32; 2],
) {
    let (frames, _) = src.as_chunks::<BLOCK>();
    for (o, f) in out.iter_mut().zip(frames) {
        *o = frame(f);
    }
}

#[inline]
fn i16_at(s: &[u8]) -> f32 {
    f32::from(i16::from_le_bytes([s[0], s[1]])) * (1.0 / 32768.0)
}

#[inline]
fn i24_at(s: &[u8]) -> f32 {
    (i32::from_le_bytes([0, s[0], s[1], s[2]]) >> 8) as f32 * (1.0 / 8_388_608.0)
}

#[inline]
fn f32_at(s: &[u8]) -> f32 {
    let x = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    if x.is_finite() { x } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_both_depths() -> Result<(), SynthError> {
        let l = [0.0, 0.5, -0.5, 1.5];
        let r = [0.25, -1.0, 0.125, f32::NAN];
        for depth in [Depth::Int16, Depth::Float32] {
            let bytes = encode(&[&l, &r], depth);
            let pcm = Pcm::parse(&bytes, ArtifactKind::Mix)?;
            assert_eq!(pcm.frames(), 4);
            let mut out = [[9.0f32; 2]; 6];
            pcm.read(0, &mut out);
            assert!((out[1][0] - 0.5).abs() < 1e-4 && (out[2][1] - 0.125).abs() < 1e-4);
            assert_eq!(out[3][1], 0.0, "NaN is silence");
            assert_eq!(out[5], [0.0, 0.0], "past the end is silence");
        }
        let mono = encode(&[&l], Depth::Int16);
        let pcm = Pcm::parse(&mono, ArtifactKind::Vocals)?;
        let mut m = [[1.0f32; 2]; 5];
        pcm.read(0, &mut m);
        assert!((m[3][1] - 1.0).abs() < 1e-4 && m[4] == [0.0; 2] && m[1] == [0.5; 2]);
        assert!(Pcm::parse(b"RIFF0000WAVEjunk", ArtifactKind::Mix).is_err());
        Ok(())
    }
}
