//! Waveform peaks for a player, in the JSON shape of BBC audiowaveform (version 2),
//! which peaks.js and wavesurfer read: per pixel and channel a min and a max, 8-bit.

use serde::Serialize;

use crate::util::SAMPLE_RATE;

/// About this many pixels whatever the song's length: enough for a full-width player.
const TARGET_PIXELS: usize = 2000;
/// audiowaveform's own default zoom, the finest worth storing.
const MIN_SAMPLES_PER_PIXEL: usize = 256;

#[derive(Serialize)]
struct Waveform {
    version: u32,
    channels: usize,
    sample_rate: u32,
    samples_per_pixel: usize,
    bits: u32,
    length: usize,
    data: Vec<i8>,
}

/// Peaks of interleaved little-endian 16-bit samples (`pcm16`, a WAV's data chunk)
/// with `channels` channels and `frames` frames.
pub fn peaks_json(pcm16: &[u8], channels: usize, frames: usize) -> Vec<u8> {
    let channels = channels.max(1);
    let spp = frames
        .div_ceil(TARGET_PIXELS)
        .next_multiple_of(32)
        .max(MIN_SAMPLES_PER_PIXEL);
    let length = frames.div_ceil(spp);
    let mut data = Vec::with_capacity(length * channels * 2);
    let usable = pcm16.len().min(frames * channels * 2) / (2 * channels) * (2 * channels);
    // A pixel at a time, each channel's min and max over whole frames.
    for pixel in pcm16[..usable].chunks(spp * channels * 2) {
        if channels == 2 {
            // Stereo, the engine's own layout: both channels in one pass over fixed-size
            // frames, which the compiler vectorises.
            let (frames, _) = pixel.as_chunks::<4>();
            let (mut lo, mut hi) = ([i16::MAX; 2], [i16::MIN; 2]);
            for f in frames {
                let s = [
                    i16::from_le_bytes([f[0], f[1]]),
                    i16::from_le_bytes([f[2], f[3]]),
                ];
                for c in 0..2 {
                    lo[c] = lo[c].min(s[c]);
                    hi[c] = hi[c].max(s[c]);
                }
            }
            for c in 0..2 {
                data.push((lo[c] >> 8) as i8);
                data.push((hi[c] >> 8) as i8);
            }
            continue;
        }
        for c in 0..channels {
            let (mut min, mut max) = (i16::MAX, i16::MIN);
            for f in pixel.chunks_exact(channels * 2) {
                let s = i16::from_le_bytes([f[2 * c], f[2 * c + 1]]);
                min = min.min(s);
                max = max.max(s);
            }
            // 8 bits: keep the high byte, as audiowaveform does with `-b 8`.
            data.push((min >> 8) as i8);
            data.push((max >> 8) as i8);
        }
    }
    let w = Waveform {
        version: 2,
        channels,
        sample_rate: SAMPLE_RATE,
        samples_per_pixel: spp,
        bits: 8,
        length: data.len() / (2 * channels),
        data,
    };
    debug_assert_eq!(w.length, length);
    serde_json::to_vec(&w).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_and_values() -> Result<(), serde_json::Error> {
        let frames = 1000;
        let bytes: Vec<u8> = (0..frames)
            .flat_map(|i| [i as i16 * 30, -(i as i16) * 30])
            .flat_map(i16::to_le_bytes)
            .collect();
        let v: serde_json::Value = serde_json::from_slice(&peaks_json(&bytes, 2, frames))?;
        assert_eq!(v["version"], 2);
        assert_eq!(v["samples_per_pixel"], 256);
        assert_eq!(v["length"], 4);
        let data = v["data"].as_array().map_or(0, Vec::len);
        assert_eq!(data, 4 * 2 * 2);
        assert_eq!(v["data"][0], 0);
        assert_eq!(v["data"][1], ((255 * 30) >> 8) as i8);
        Ok(())
    }
}
