//! The vocal stage: the composition's melody sung on the lyric syllables by the formant
//! singer, one lyric line per sung phrase.

use rand::Rng;

use crate::api::SynthError;
use crate::arrange::swung;
use crate::compose::Composition;
use crate::dsp::Noise;
use crate::dsp::voice::{Singer, SungNote, Voice, sing};
use crate::lyrics;
use crate::melody::{Note, Phrase};
use crate::phonetics::{Syllable, Vowel, syllables};
use crate::plan::Plan;
use crate::theory::midi_to_hz;
use crate::util::{SAMPLE_RATE, Ticker, peak_abs, rng_for};
use crate::wav;

/// Renders the vocal track, exactly `frames` samples long, peak-normalised, as a
/// 16-bit mono WAV.
pub fn render(
    comp: &Composition,
    lyrics_text: &str,
    frames: usize,
    seed: u64,
    tick: &mut Ticker,
) -> Result<Vec<u8>, SynthError> {
    let plan = &comp.plan;
    let blocks = lyrics::parse_blocks(lyrics_text);
    let sung: Vec<(usize, &crate::compose::ComposedSection)> = comp
        .sections
        .iter()
        .enumerate()
        .filter(|(_, s)| s.phrases.iter().any(|p| p.sung))
        .collect();
    let shape: Vec<_> = sung
        .iter()
        .map(|(_, s)| (s.kind, s.phrases.iter().filter(|p| p.sung).count()))
        .collect();
    let lines = lyrics::assign(&blocks, &shape);

    let mut rng = rng_for(seed, "vocals/singer");
    let high = crate::melody::tonic_midi(plan) >= 60 || rng.random_bool(0.5);
    let singer = Singer {
        formant_scale: if high { 1.15 } else { 1.0 },
        breath: 0.04,
    };
    let mut noise = Noise::new(rng.random());
    // The voice as floats in the buffer that becomes the WAV: the 16-bit samples are
    // written over the floats (each over the first half of a float already read), so
    // the song's voice takes fresh memory once, not twice.
    let mut out = vec![0u8; wav::HEADER_LEN + frames * 4];
    let mut voice = Voice(&mut out[wav::HEADER_LEN..]);
    let total = sung.len().max(1);
    for (k, ((_, sec), sec_lines)) in sung.iter().zip(&lines).enumerate() {
        tick.at(k as f32 / total as f32)?;
        let phrases = sec.phrases.iter().filter(|p| p.sung);
        let mut notes = Vec::new();
        for (phrase, line) in phrases.zip(sec_lines) {
            place_phrase(plan, phrase, &syllables(line), &mut notes);
        }
        sing(&mut voice, &notes, singer, &mut noise);
    }
    let mut block = [0.0f32; 1024];
    let mut peak = 0.0f32;
    for piece in out[wav::HEADER_LEN..].chunks(block.len() * 4) {
        let (samples, _) = piece.as_chunks::<4>();
        for (x, s) in block.iter_mut().zip(samples) {
            *x = f32::from_le_bytes(*s);
        }
        peak = peak_abs(&block[..samples.len()], peak);
    }
    let gain = if peak > 1e-6 { 0.89 / peak } else { 1.0 };
    tick.at(1.0)?;
    // Peak-normalised to 16 bits in place, a block at a time: the block's floats are
    // read before its samples are written, and a later block's floats lie beyond
    // where this block writes.
    for first in (0..frames).step_by(block.len()) {
        let n = block.len().min(frames - first);
        let src = &out[wav::HEADER_LEN + first * 4..][..n * 4];
        for (x, s) in block.iter_mut().zip(src.as_chunks::<4>().0) {
            *x = f32::from_le_bytes(*s);
        }
        let dst = &mut out[wav::HEADER_LEN + first * 2..][..n * 2];
        for (d, &x) in dst.as_chunks_mut::<2>().0.iter_mut().zip(&block[..n]) {
            *d = wav::to_i16(x * gain).to_le_bytes();
        }
    }
    out.truncate(wav::HEADER_LEN + frames * 2);
    out.shrink_to_fit();
    out[..wav::HEADER_LEN].copy_from_slice(&wav::header_bytes(1, wav::Depth::Int16, frames));
    Ok(out)
}

/// Fits a line's syllables onto a phrase's notes: one syllable per note where counts
/// match, a held vowel over several notes when the line is short, several syllables
/// sharing a note when it is long.
fn place_phrase(plan: &Plan, phrase: &Phrase, syls: &[Syllable], out: &mut Vec<SungNote>) {
    let sr = SAMPLE_RATE as f64;
    let spb = plan.seconds_per_beat();
    let hum = [Syllable {
        text: "oo".into(),
        onset: None,
        vowel: Vowel::U,
        glide_to: None,
        coda: None,
    }];
    let syls = if syls.is_empty() { &hum[..] } else { syls };
    let notes = &phrase.notes;
    let (s, m) = (syls.len(), notes.len());
    if m == 0 {
        return;
    }
    // (note, syllable index, first note of the syllable, last note of the syllable)
    let mut events: Vec<(Note, usize, bool, bool)> = Vec::new();
    if s <= m {
        for (j, n) in notes.iter().enumerate() {
            let syl = (j * s) / m;
            let first = j == 0 || ((j - 1) * s) / m != syl;
            let last = j + 1 == m || ((j + 1) * s) / m != syl;
            events.push((*n, syl, first, last));
        }
    } else {
        for (j, n) in notes.iter().enumerate() {
            let (a, b) = ((j * s) / m, ((j + 1) * s) / m);
            let count = (b - a).max(1);
            let part = n.beats / count as f32;
            for q in 0..count {
                let sub = Note {
                    start: n.start + part * q as f32,
                    beats: part * 0.95,
                    ..*n
                };
                events.push((sub, (a + q).min(s - 1), true, true));
            }
        }
    }
    for (idx, &(n, syl, first, last)) in events.iter().enumerate() {
        let y = &syls[syl];
        let start = swung(plan, n.start);
        let end = start + n.beats;
        let next_start = events.get(idx + 1).map(|e| swung(plan, e.0.start));
        // Same breath when the next note follows within 40 ms.
        let legato = next_start.is_some_and(|t| f64::from(t - end) * spb < 0.04);
        // A legato note lasts until the next begins, so the voice never drops out between.
        let beats = match next_start {
            Some(t) if legato && t > start => t - start,
            _ => n.beats,
        };
        out.push(SungNote {
            start: (f64::from(start) * spb * sr).round().max(0.0) as usize,
            len: (f64::from(beats) * spb * sr).round().max(1.0) as usize,
            freq: midi_to_hz(f32::from(n.pitch)),
            vel: f32::from(n.velocity) / 127.0,
            vowel: y.vowel,
            glide_to: if last { y.glide_to } else { None },
            onset: if first { y.onset } else { None },
            coda: if last { y.coda } else { None },
            legato,
        });
    }
}
