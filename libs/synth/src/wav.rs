//! WAV encoding and decoding in memory, through hound.

use std::io::Cursor;

use hound::{SampleFormat, WavReader, WavSpec, WavWriter};

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

/// Encodes planar channels (all the same length) as an interleaved WAV file.
pub fn encode(channels: &[&[f32]], depth: Depth) -> Vec<u8> {
    let n_ch = channels.len().clamp(1, 2) as u16;
    let spec = WavSpec {
        channels: n_ch,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: if depth == Depth::Int16 { 16 } else { 32 },
        sample_format: if depth == Depth::Int16 {
            SampleFormat::Int
        } else {
            SampleFormat::Float
        },
    };
    let frames = channels.iter().map(|c| c.len()).min().unwrap_or(0);
    let mut bytes = Vec::with_capacity(
        44 + frames * usize::from(n_ch) * if depth == Depth::Int16 { 2 } else { 4 },
    );
    let result = (|| -> Result<(), hound::Error> {
        let mut w = WavWriter::new(Cursor::new(&mut bytes), spec)?;
        let chans = &channels[..usize::from(n_ch).min(channels.len())];
        match depth {
            Depth::Int16 => {
                // hound's buffered 16-bit writer, a chunk at a time: several times faster
                // than one checked write per sample.
                const CHUNK: usize = 4096;
                for start in (0..frames).step_by(CHUNK) {
                    let end = (start + CHUNK).min(frames);
                    let mut sw = w.get_i16_writer(((end - start) * chans.len()) as u32);
                    for i in start..end {
                        for ch in chans {
                            sw.write_sample(to_i16(ch[i]));
                        }
                    }
                    sw.flush()?;
                }
            }
            Depth::Float32 => {
                for i in 0..frames {
                    for ch in chans {
                        let x = ch[i];
                        w.write_sample(if x.is_finite() { x } else { 0.0 })?;
                    }
                }
            }
        }
        w.finalize()
    })();
    // Writing to memory only fails on absurd sizes (> 4 GiB), which the duration cap rules out.
    if result.is_err() {
        bytes.clear();
    }
    bytes
}

/// Rounds to the nearest 16-bit value, saturating (NaN becomes 0).
#[inline]
fn to_i16(x: f32) -> i16 {
    let v = x.clamp(-1.0, 1.0) * 32767.0;
    // `as` truncates toward zero, so shift by half a step away from it first.
    (v + if v >= 0.0 { 0.5 } else { -0.5 }) as i16
}

/// Decodes a WAV artifact into planar f32 channels (1 or 2) at 44.1 kHz.
pub fn decode(bytes: &[u8], kind: ArtifactKind) -> Result<Vec<Vec<f32>>, SynthError> {
    let bad = |reason: String| SynthError::InvalidInput { kind, reason };
    let mut reader = WavReader::new(Cursor::new(bytes)).map_err(|e| bad(e.to_string()))?;
    let spec = reader.spec();
    if spec.sample_rate != SAMPLE_RATE {
        return Err(bad(format!(
            "sample rate {} is not {SAMPLE_RATE}",
            spec.sample_rate
        )));
    }
    let n_ch = usize::from(spec.channels);
    if !(1..=2).contains(&n_ch) {
        return Err(bad(format!("{n_ch} channels; expected 1 or 2")));
    }
    let frames = reader.duration() as usize;
    let mut out = vec![Vec::with_capacity(frames); n_ch];
    match (spec.sample_format, spec.bits_per_sample) {
        (SampleFormat::Float, 32) => {
            for (i, s) in reader.samples::<f32>().enumerate() {
                let x = s.map_err(|e| bad(e.to_string()))?;
                out[i % n_ch].push(if x.is_finite() { x } else { 0.0 });
            }
        }
        (SampleFormat::Int, bits @ 8..=32) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            for (i, s) in reader.samples::<i32>().enumerate() {
                let x = s.map_err(|e| bad(e.to_string()))?;
                out[i % n_ch].push(x as f32 * scale);
            }
        }
        (f, b) => {
            return Err(bad(format!(
                "unsupported sample format {f:?} with {b} bits"
            )));
        }
    }
    let shortest = out.iter().map(Vec::len).min().unwrap_or(0);
    for ch in &mut out {
        ch.truncate(shortest);
    }
    Ok(out)
}

/// Makes a decoded signal stereo and exactly `frames` long (padding with silence).
pub fn to_stereo(mut chans: Vec<Vec<f32>>, frames: usize) -> [Vec<f32>; 2] {
    let mut left = if chans.is_empty() {
        Vec::new()
    } else {
        chans.remove(0)
    };
    let mut right = if chans.is_empty() {
        left.clone()
    } else {
        chans.remove(0)
    };
    left.resize(frames, 0.0);
    right.resize(frames, 0.0);
    [left, right]
}
