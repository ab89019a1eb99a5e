//! The preview: about 30 seconds from the first chorus, as MP3 (LAME through
//! `mp3lame-encoder`), for a player to stream before the full download.

use mp3lame_encoder::{Bitrate, Builder, FlushNoGap, InterleavedPcm, Mode, Quality};

use crate::form::SectionKind;
use crate::plan::Plan;
use crate::util::SAMPLE_RATE;
use crate::wav;

pub const PREVIEW_SECONDS: f64 = 30.0;
const FADE_IN: f64 = 0.3;
const FADE_OUT: f64 = 1.5;

/// Where the preview starts and how long it is, in frames: from the first chorus (or the
/// start when there is none), moved earlier when the song ends sooner, never longer
/// than the song.
pub fn window(plan: &Plan, frames: usize) -> (usize, usize) {
    let sr = f64::from(SAMPLE_RATE);
    let len = ((PREVIEW_SECONDS * sr) as usize).min(frames);
    let bar = plan.seconds_per_beat() * f64::from(plan.beats_per_bar);
    let chorus = plan
        .form
        .iter()
        .find(|s| s.kind == SectionKind::Chorus)
        .map_or(0.0, |s| f64::from(s.start_bar) * bar);
    let start = ((chorus * sr) as usize).min(frames - len);
    (start, len)
}

/// Encodes `len` frames from `start` of a 16-bit stereo WAV (its header as
/// [`wav::header_bytes`] writes it), with short fades so the excerpt neither clicks in
/// nor stops dead.
pub fn encode_mp3(
    wav16: &[u8],
    start: usize,
    len: usize,
    song_frames: usize,
) -> Result<Vec<u8>, String> {
    let sr = f64::from(SAMPLE_RATE);
    let fade_in = if start == 0 {
        1
    } else {
        (FADE_IN * sr) as usize
    };
    let fade_out = if start + len >= song_frames {
        1
    } else {
        (FADE_OUT * sr) as usize
    };
    let at = |frame: usize| wav::HEADER_LEN + frame * 4;
    let src = wav16.get(at(start)..at(start + len)).unwrap_or_default();
    let err = |e: &dyn std::fmt::Debug| format!("mp3 encoder: {e:?}");
    let mut b = Builder::new().ok_or("mp3 encoder: out of memory")?;
    b.set_num_channels(2).map_err(|e| err(&e))?;
    b.set_sample_rate(SAMPLE_RATE).map_err(|e| err(&e))?;
    b.set_brate(Bitrate::Kbps128).map_err(|e| err(&e))?;
    b.set_mode(Mode::Stereo).map_err(|e| err(&e))?;
    b.set_quality(Quality::Ok).map_err(|e| err(&e))?;
    // No Xing/LAME tag frame: it would need a second pass over the finished file.
    b.set_to_write_vbr_tag(false).map_err(|e| err(&e))?;
    let mut enc = b.build().map_err(|e| err(&e))?;
    let mut out = Vec::new();
    // A piece at a time through one small buffer: LAME keeps what it has not coded
    // yet, so the pieces make the same file as one call would.
    const PIECE: usize = 1152 * 16;
    let mut pcm: Vec<i16> = Vec::with_capacity(PIECE * 2);
    for (p, piece) in src.chunks(PIECE * 4).enumerate() {
        pcm.clear();
        for (k, f) in piece.chunks_exact(4).enumerate() {
            let i = p * PIECE + k;
            let l = i16::from_le_bytes([f[0], f[1]]);
            let r = i16::from_le_bytes([f[2], f[3]]);
            if i < fade_in || len - i < fade_out {
                let g = (i as f64 / fade_in as f64)
                    .min((len - i) as f64 / fade_out as f64)
                    .min(1.0);
                pcm.push((f64::from(l) * g) as i16);
                pcm.push((f64::from(r) * g) as i16);
            } else {
                // Between the fades the gain is exactly 1.
                pcm.extend([l, r]);
            }
        }
        // LAME writes into the spare capacity it is given and crashes without enough.
        out.reserve(mp3lame_encoder::max_required_buffer_size(pcm.len() / 2));
        enc.encode_to_vec(InterleavedPcm(&pcm), &mut out)
            .map_err(|e| err(&e))?;
    }
    out.reserve(7200);
    enc.flush_to_vec::<FlushNoGap>(&mut out)
        .map_err(|e| err(&e))?;
    Ok(out)
}
