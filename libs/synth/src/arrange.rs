//! Arrangement: turns the composition into playable parts (drums, bass, harmony, lead)
//! as note lists, written as `arrangement.json` (and as MIDI by `midi`).

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::api::{ArtifactKind, SongRequest, SynthError};
use crate::compose::Composition;
use crate::form::SectionKind;
use crate::melody::Note;
use crate::parts;
use crate::patterns::{
    self, CLAP, CRASH, HAT, HIGH_TOM, KICK, LOW_TOM, MID_TOM, RIDE, RIM, SHAKER, SNARE,
};
use crate::plan::{Genre, Instrument, Mode, Plan};
use crate::util::rng_for;

pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// "drums", "bass", "harmony", "lead": also the stem's file name.
    pub name: String,
    pub instrument: Instrument,
    /// MIDI channel, 0-based (drums on 9, as General MIDI expects).
    pub channel: u8,
    /// -1 (left) .. 1 (right).
    pub pan: f32,
    /// Loudness relative to the drums, in dB; the mixer balances parts to these levels.
    pub level_db: f32,
    pub notes: Vec<Note>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arrangement {
    pub format_version: u32,
    pub genre: Genre,
    pub tempo_bpm: u32,
    pub beats_per_bar: u32,
    pub key_root: u8,
    pub mode: Mode,
    /// Beats of music before the tail.
    pub total_beats: f32,
    pub reverb: f32,
    pub brightness: f32,
    pub parts: Vec<Part>,
}

impl Arrangement {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, SynthError> {
        let bad = |reason: String| SynthError::InvalidInput {
            kind: ArtifactKind::Arrangement,
            reason,
        };
        let a: Arrangement = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if a.format_version != FORMAT_VERSION {
            return Err(bad(format!(
                "format_version {} is not {FORMAT_VERSION}",
                a.format_version
            )));
        }
        if !(20..=400).contains(&a.tempo_bpm) || a.beats_per_bar == 0 || a.beats_per_bar > 16 {
            return Err(bad("tempo or metre out of range".into()));
        }
        let ok = |x: f32| x.is_finite() && (0.0..1.0e5).contains(&x);
        for p in &a.parts {
            if !p.pan.is_finite() || !p.level_db.is_finite() || p.channel > 15 {
                return Err(bad(format!(
                    "part {} has an invalid pan, level or channel",
                    p.name
                )));
            }
            if !p
                .notes
                .iter()
                .all(|n| ok(n.start) && ok(n.beats) && n.pitch < 128)
            {
                return Err(bad(format!("part {} has notes out of range", p.name)));
            }
        }
        Ok(a)
    }
}

/// The arrangement stage.
pub fn arrange(comp: &Composition, request: &SongRequest) -> Arrangement {
    let plan = &comp.plan;
    let seed = request.seed;
    let loose = matches!(
        plan.genre,
        Genre::Jazz | Genre::Folk | Genre::Rock | Genre::LoFi
    );
    let finish = |mut notes: Vec<Note>, salt: &str| {
        let mut rng = rng_for(seed, salt);
        for n in &mut notes {
            n.start = swung(plan, n.start);
            if loose {
                n.start = (n.start + rng.random_range(-0.01f32..0.01)).max(0.0);
            }
            let v = i32::from(n.velocity) + rng.random_range(-5..=5);
            n.velocity = v.clamp(1, 127) as u8;
        }
        notes.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.pitch.cmp(&b.pitch)));
        notes
    };
    let drums = finish(
        drum_notes(comp, &mut rng_for(seed, "arrange/drums")),
        "humanize/drums",
    );
    let bass = finish(
        parts::bass_notes(comp, &mut rng_for(seed, "arrange/bass")),
        "humanize/bass",
    );
    let harmony = finish(parts::harmony_notes(comp), "humanize/harmony");
    let lead = finish(lead_notes(comp, request.has_vocals), "humanize/lead");
    let harmony_level = if matches!(plan.harmony, Instrument::Pad | Instrument::Strings) {
        -7.0
    } else {
        -6.0
    };
    let part = |name: &str, instrument, channel, pan, level_db, notes| Part {
        name: name.to_string(),
        instrument,
        channel,
        pan,
        level_db,
        notes,
    };
    Arrangement {
        format_version: FORMAT_VERSION,
        genre: plan.genre,
        tempo_bpm: plan.tempo_bpm,
        beats_per_bar: plan.beats_per_bar,
        key_root: plan.key_root,
        mode: plan.mode,
        total_beats: plan.total_beats() as f32,
        reverb: plan.reverb,
        brightness: plan.brightness,
        parts: vec![
            part("drums", Instrument::Drums, 9, 0.0, 0.0, drums),
            part("bass", plan.bass, 1, 0.0, -1.5, bass),
            part("harmony", plan.harmony, 2, -0.3, harmony_level, harmony),
            part(
                "lead",
                plan.lead,
                3,
                0.25,
                if request.has_vocals { -6.0 } else { -3.0 },
                lead,
            ),
        ],
    }
}

/// A note time after the plan's swing: off-beat eighths (sixteenths in lo-fi and
/// hip-hop) are delayed; amount 1 is full triplet swing. The vocals use it too.
pub fn swung(plan: &Plan, t: f32) -> f32 {
    let unit = if matches!(plan.genre, Genre::LoFi | Genre::HipHop) {
        0.25
    } else {
        0.5
    };
    let amount = plan.swing;
    let pos = t / unit;
    let odd = (pos - pos.round()).abs() < 1e-3 && (pos.round() as i64) % 2 == 1;
    if odd { t + amount * unit / 3.0 } else { t }
}

/// Which drums play in which kind of section: intros and breaks thin out, choruses are full.
fn drum_plays(kind: SectionKind, note: u8) -> bool {
    match kind {
        SectionKind::Intro | SectionKind::Outro => {
            matches!(note, KICK | HAT | SHAKER | RIDE | LOW_TOM)
        }
        SectionKind::Bridge => matches!(note, KICK | HAT | RIDE | SHAKER | RIM | LOW_TOM),
        SectionKind::Break => matches!(note, HAT | SHAKER | RIDE),
        SectionKind::Verse | SectionKind::Chorus => true,
    }
}

fn drum_notes(comp: &Composition, rng: &mut ChaCha8Rng) -> Vec<Note> {
    let plan = &comp.plan;
    if plan.drums < 0.15 {
        return Vec::new();
    }
    let pattern = if plan.style_strength >= 0.35 {
        patterns::drums(plan.genre)
    } else {
        patterns::NEUTRAL_DRUMS
    };
    let bpb = plan.beats_per_bar as f32;
    let level = plan.drums.clamp(0.3, 1.0);
    let mut out = Vec::new();
    let n_sections = comp.sections.len();
    for (si, sec) in comp.sections.iter().enumerate() {
        let bars = (sec.beats / bpb).round().max(1.0) as u32;
        let dynamics = level * (0.75 + 0.3 * sec.energy);
        let vel = |v: u8| (f32::from(v) * dynamics).clamp(1.0, 127.0) as u8;
        for bar in 0..bars {
            let t0 = sec.start + bar as f32 * bpb;
            let last_of_song = si + 1 == n_sections && bar + 1 == bars;
            let fill = bar + 1 == bars
                && si + 1 < n_sections
                && bars >= 2
                && sec.kind != SectionKind::Intro;
            if bar == 0
                && si > 0
                && matches!(
                    sec.kind,
                    SectionKind::Chorus | SectionKind::Verse | SectionKind::Bridge
                )
            {
                out.push(Note {
                    start: t0,
                    beats: 2.0,
                    pitch: CRASH,
                    velocity: vel(100),
                });
            }
            if last_of_song {
                out.push(Note {
                    start: t0,
                    beats: 4.0,
                    pitch: CRASH,
                    velocity: vel(96),
                });
                out.push(Note {
                    start: t0,
                    beats: 0.5,
                    pitch: KICK,
                    velocity: vel(100),
                });
                continue;
            }
            for &(note, steps) in pattern {
                if !drum_plays(sec.kind, note) {
                    continue;
                }
                for (i, c) in steps.bytes().enumerate().take(16) {
                    let Some(v) = patterns::step_velocity(c) else {
                        continue;
                    };
                    if fill && i >= 12 && matches!(note, SNARE | CLAP | RIM) {
                        continue;
                    }
                    let start = t0 + i as f32 * 0.25;
                    if start >= sec.start + sec.beats - 1e-3 {
                        break;
                    }
                    out.push(Note {
                        start,
                        beats: 0.25,
                        pitch: note,
                        velocity: vel(v),
                    });
                }
            }
            if fill {
                let cinematic = plan.genre == Genre::Cinematic;
                let roll: [u8; 4] = if cinematic {
                    [HIGH_TOM, MID_TOM, MID_TOM, LOW_TOM]
                } else {
                    [SNARE; 4]
                };
                let skip_first = rng.random_bool(0.5);
                for (k, &p) in roll.iter().enumerate() {
                    if k == 0 && skip_first {
                        continue;
                    }
                    let start = t0 + 3.0 + k as f32 * 0.25;
                    out.push(Note {
                        start,
                        beats: 0.25,
                        pitch: p,
                        velocity: vel(60 + 14 * k as u8),
                    });
                }
            }
        }
    }
    out
}

/// Register shift of the lead so each instrument sits where it sounds best.
fn lead_octave(inst: Instrument) -> i32 {
    match inst {
        Instrument::Bell | Instrument::Flute | Instrument::Pluck => 12,
        _ => 0,
    }
}

/// Without vocals the lead plays the whole tune; with vocals it plays the instrumental
/// sections and doubles the last chorus an octave up, quietly.
fn lead_notes(comp: &Composition, has_vocals: bool) -> Vec<Note> {
    let shift = lead_octave(comp.plan.lead);
    let last_chorus = comp
        .sections
        .iter()
        .rposition(|s| s.kind == SectionKind::Chorus);
    let mut out = Vec::new();
    for (si, sec) in comp.sections.iter().enumerate() {
        let (play, octave, gain) = match (has_vocals, sec.kind.sung()) {
            (false, _) => (true, shift, 1.0),
            (true, false) => (true, shift, 1.0),
            (true, true) if Some(si) == last_chorus => (true, shift + 12, 0.6),
            (true, true) => (false, 0, 0.0),
        };
        if !play {
            continue;
        }
        for n in sec.phrases.iter().flat_map(|p| &p.notes) {
            let pitch = (i32::from(n.pitch) + octave).clamp(24, 108) as u8;
            let velocity = (f32::from(n.velocity) * gain).clamp(1.0, 127.0) as u8;
            out.push(Note {
                pitch,
                velocity,
                ..*n
            });
        }
    }
    out
}
