//! The mix stage: renders each part to audio, then the bus (`bus.rs`) balances the
//! parts by their loudness while playing, pans them, adds a shared reverb (its return
//! is a stem too) and sums to stereo.
//!
//! A part renders into its own stem file, as mono float, through a window that slides
//! along the song: notes are rendered in time order, and whatever lies before the next
//! note's start is finished (filtered, measured) and moved out to the file. Beside the
//! output files the stage holds only that window and the bus's blocks.

use crate::api::SynthError;
use crate::arrange::{Arrangement, Part};
use crate::bus::{Level, Source, Track, mix_down};
use crate::dsp::Noise;
use crate::dsp::drums::{self, Kit};
use crate::dsp::filter::OnePole;
use crate::instruments::{self, NoteSpec};
use crate::plan::Instrument;
use crate::theory::midi_to_hz;
use crate::util::{SAMPLE_RATE, Ticker};
use crate::wav::{self, Depth, Pcm};

const SR: f32 = SAMPLE_RATE as f32;

pub struct MixOutput {
    /// (part name, stereo 16-bit WAV) per stem, the reverb return last.
    pub stems: Vec<(String, Vec<u8>)>,
    /// Stereo 32-bit float WAV: the sum of the stems.
    pub mix: Vec<u8>,
}

/// Renders the song. `vocals` is the vocal track when the song has one.
pub fn mix(
    arr: &Arrangement,
    vocals: Option<&Pcm>,
    frames: usize,
    seed: u64,
    tick: &mut Ticker,
) -> Result<MixOutput, SynthError> {
    let spb = 60.0 / arr.tempo_bpm.max(1) as f32;
    let n_parts = arr.parts.len() + usize::from(vocals.is_some());
    let mut tracks = Vec::with_capacity(n_parts);
    let span = 0.9 / n_parts.max(1) as f32;
    for (k, part) in arr.parts.iter().enumerate() {
        let lo = k as f32 * span;
        tick.at(lo)?;
        let salt = (k as u64 + 1).wrapping_mul(0x9e37_79b9);
        let mut sub = tick.sub(lo, lo + span);
        let (stem, level) = render_part(arr, part, spb, frames, seed ^ salt, &mut sub)?;
        let (rms, peak) = level.finish();
        tracks.push(Track {
            name: part.name.clone(),
            source: Source::InPlace(stem),
            rms,
            peak,
            level_db: part.level_db,
            pan: part.pan,
            send: send_level(part.instrument),
        });
    }
    if let Some(v) = vocals {
        let mut level = Level::default();
        let mut mono = vec![0.0f32; 4096];
        let mut at = 0;
        while at < frames {
            let n = (frames - at).min(mono.len());
            v.read_mono(at, &mut mono[..n]);
            level.push(&mono[..n]);
            at += n;
        }
        let (rms, peak) = level.finish();
        // The voice sits on top of the band, centred, with its own share of reverb.
        tracks.push(Track {
            name: "vocals".into(),
            source: Source::Pcm(v),
            rms,
            peak,
            level_db: 1.0,
            pan: 0.0,
            send: 0.22,
        });
    }
    tick.at(0.9)?;
    let music_end = (arr.total_beats * spb * SR) as usize;
    let reverb = (
        0.55 + 0.6 * arr.reverb,
        0.5 - 0.3 * arr.brightness,
        arr.reverb / 0.2,
    );
    let (stems, mix) = mix_down(tracks, frames, music_end, reverb);
    tick.at(1.0)?;
    Ok(MixOutput { stems, mix })
}

/// Reverb send per instrument: sustained sounds like more room, bass almost none.
fn send_level(inst: Instrument) -> f32 {
    match inst {
        Instrument::Drums => 0.08,
        Instrument::SubBass
        | Instrument::Bass808
        | Instrument::SynthBass
        | Instrument::PickBass
        | Instrument::Upright => 0.0,
        Instrument::Pad | Instrument::Strings | Instrument::Bell => 0.4,
        _ => 0.28,
    }
}

/// Renders one part as mono float into the data chunk of a 16-bit stereo WAV of
/// `frames` frames (the bus overwrites it in place), and measures it on the way.
fn render_part(
    arr: &Arrangement,
    part: &Part,
    spb: f32,
    frames: usize,
    seed: u64,
    tick: &mut Ticker,
) -> Result<(Vec<u8>, Level), SynthError> {
    let kit = Kit::for_genre(arr.genre);
    let release = instruments::release_seconds(part.instrument);
    let mut out = Window::new(part.instrument, &kit, frames);
    let starts: Vec<usize> = part
        .notes
        .iter()
        .map(|n| (n.start * spb * SR).round() as usize)
        .collect();
    let mut order: Vec<usize> = (0..part.notes.len()).collect();
    order.sort_by_key(|&i| starts[i]);
    let total = order.len().max(1);
    for (done, &i) in order.iter().enumerate() {
        if done % 256 == 0 {
            tick.at(done as f32 / total as f32)?;
        }
        let (n, start) = (&part.notes[i], starts[i]);
        if start >= frames {
            continue;
        }
        let mut noise =
            Noise::new((seed as u32) ^ (i as u32).wrapping_mul(0x85eb_ca6b) ^ (seed >> 32) as u32);
        let vel = f32::from(n.velocity.min(127)) / 127.0;
        if part.instrument == Instrument::Drums {
            let len = ((drums::length(n.pitch, &kit) * SR) as usize).min(frames - start);
            drums::hit(out.at(start, len), n.pitch, vel, &kit, &mut noise);
            continue;
        }
        let hold = (n.beats * spb * SR).round() as usize;
        let len = (hold + (release * SR) as usize).min(frames - start);
        let spec = NoteSpec {
            freq: midi_to_hz(f32::from(n.pitch)),
            vel,
            hold,
            brightness: arr.brightness,
        };
        instruments::render(part.instrument, out.at(start, len), &spec, &mut noise);
    }
    tick.at(1.0)?;
    Ok(out.finish())
}

/// The sliding render window of one part: `buf` holds frames `from..` of the part;
/// everything before `from` is finished and in `file`.
struct Window {
    buf: Vec<f32>,
    from: usize,
    frames: usize,
    file: Vec<u8>,
    filter: Post,
    level: Level,
    /// Room for the high-pass's low band, a piece of the window at a time.
    scratch: Vec<f32>,
}

/// The filter a whole part goes through after its notes.
enum Post {
    None,
    Lp(OnePole),
    Hp(OnePole),
}

/// Frames finished at once: large enough that moving the rest of the window down is
/// rare, small enough to stay a few hundred kilobytes.
const FLUSH: usize = 1 << 16;

impl Window {
    fn new(inst: Instrument, kit: &Kit, frames: usize) -> Self {
        let filter = match inst {
            Instrument::Drums => kit
                .tone_cutoff()
                .map_or(Post::None, |cut| Post::Lp(OnePole::new(cut))),
            // Keep chords and leads out of the bass's way.
            Instrument::Pad
            | Instrument::Strings
            | Instrument::Piano
            | Instrument::Guitar
            | Instrument::Organ
            | Instrument::EPiano => Post::Hp(OnePole::new(140.0)),
            _ => Post::None,
        };
        let file = wav::silent(2, Depth::Int16, frames);
        Window {
            buf: Vec::new(),
            from: 0,
            frames,
            file,
            filter,
            level: Level::default(),
            scratch: vec![0.0; 4096],
        }
    }

    /// The `len` frames from `start` on, for a note to add itself into. Notes must come
    /// in order of their start.
    fn at(&mut self, start: usize, len: usize) -> &mut [f32] {
        if start >= self.from + FLUSH {
            self.flush(start - self.from);
        }
        let (a, b) = (start - self.from, start - self.from + len);
        if self.buf.len() < b {
            self.buf.resize(b, 0.0);
        }
        &mut self.buf[a..b]
    }

    /// Finishes the first `n` frames of the window (zeros past what notes reached).
    fn flush(&mut self, n: usize) {
        if self.buf.len() < n {
            self.buf.resize(n, 0.0);
        }
        let done = &mut self.buf[..n];
        match &mut self.filter {
            Post::None => {}
            Post::Lp(f) => f.lp_block(done),
            Post::Hp(f) => {
                for part in done.chunks_mut(self.scratch.len()) {
                    f.hp_block(part, &mut self.scratch);
                }
            }
        }
        self.level.push(done);
        // The file is silent already: where the part rests, it is left alone (its
        // memory never touched), and the mixdown skips it too.
        let file = &mut self.file[wav::HEADER_LEN + self.from * 4..][..n * 4];
        for (part, bytes) in done.chunks(1024).zip(file.chunks_mut(4096)) {
            if wav::is_silent(part) {
                continue;
            }
            for (b, x) in bytes.as_chunks_mut::<4>().0.iter_mut().zip(part) {
                *b = x.to_le_bytes();
            }
        }
        self.buf.drain(..n);
        self.from += n;
    }

    fn finish(mut self) -> (Vec<u8>, Level) {
        while self.from < self.frames {
            self.flush((self.frames - self.from).min(FLUSH));
        }
        (self.file, self.level)
    }
}
