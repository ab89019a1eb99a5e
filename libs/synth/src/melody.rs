//! Melody: motifs (a rhythm plus a contour) that repeat across phrases and sections,
//! realised against the chords underneath so strong beats land on chord tones.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::compose::ChordEvent;
use crate::form::{self, PhrasePlan, SectionKind, SectionPlan};
use crate::plan::{Genre, Plan};
use crate::theory::degree_to_midi;
use crate::util::rng_for;

/// One note; times are in beats from the start of the song.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub start: f32,
    pub beats: f32,
    pub pitch: u8,
    pub velocity: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phrase {
    pub start: f32,
    pub beats: f32,
    /// Carries a lyric line when the song has vocals.
    pub sung: bool,
    pub notes: Vec<Note>,
}

/// A motif is the same every time it is used: rhythm (beats from phrase start) and contour
/// (scale degrees relative to the section's centre).
struct Motif {
    onsets: Vec<f32>,
    lengths: Vec<f32>,
    degrees: Vec<i32>,
}

/// Where a section's tune sits, in scale degrees above the tonic: choruses lift.
fn centre(kind: SectionKind) -> i32 {
    match kind {
        SectionKind::Verse => 2,
        SectionKind::Chorus => 4,
        SectionKind::Bridge => 3,
        _ => 4,
    }
}

/// Intro and outro quote the chorus hook; the others have their own motifs.
fn motif_kind(kind: SectionKind) -> SectionKind {
    match kind {
        SectionKind::Intro | SectionKind::Outro => SectionKind::Chorus,
        k => k,
    }
}

/// The tonic MIDI note of the vocal register: between G3 and F#4.
pub fn tonic_midi(plan: &Plan) -> i32 {
    55 + (i32::from(plan.key_root) + 5).rem_euclid(12)
}

pub fn phrase_melody(
    plan: &Plan,
    seed: u64,
    section: &SectionPlan,
    section_start: f32,
    phrase: &PhrasePlan,
    chords: &[ChordEvent],
) -> Phrase {
    let beats_per_bar = plan.beats_per_bar as f32;
    let start = section_start + phrase.start_bar as f32 * beats_per_bar;
    let beats = phrase.bars as f32 * beats_per_bar;
    let mkind = motif_kind(section.kind);
    let n = if phrase.syllables > 0 {
        phrase.syllables
    } else if mkind == SectionKind::Chorus {
        form::syllables_for(SectionKind::Chorus, phrase.motif, seed, phrase.bars)
    } else {
        6
    };
    let rap = plan.genre == Genre::HipHop && plan.style_strength >= 0.5;
    let motif = make_motif(seed, mkind, phrase.motif, usize::from(n), beats, rap);
    let tonic = tonic_midi(plan);
    // A minor-key verse that hovers on the third would sound like the relative major:
    // it circles the tonic instead.
    let c = if plan.mode.is_minor() && mkind == SectionKind::Verse {
        0
    } else {
        centre(mkind)
    };
    let count = motif.onsets.len();
    let mut notes = Vec::with_capacity(count);
    for i in 0..count {
        let at = start + motif.onsets[i];
        let mut pitch = degree_to_midi(tonic, plan.mode, c + motif.degrees[i]);
        let chord = chord_at(chords, at);
        let on_beat = (motif.onsets[i].fract()).abs() < 1e-3;
        let last = i + 1 == count;
        if let Some(ch) = chord {
            if on_beat || last {
                let step = if i == 0 {
                    0
                } else {
                    motif.degrees[i] - motif.degrees[i - 1]
                };
                pitch = directed_chord_tone(
                    pitch,
                    notes.last().map(|n: &Note| i32::from(n.pitch)),
                    step,
                    ch,
                );
            }
            let holds_tonic = ch
                .quality
                .intervals()
                .iter()
                .any(|&iv| (ch.root + iv) % 12 == plan.key_root % 12);
            if last && holds_tonic {
                // Phrases come to rest on the tonic whenever the harmony allows: the
                // held last note is what tells the ear where home is.
                pitch = nearest_pc(pitch, plan.key_root % 12);
            } else if last && phrase.motif == 2 {
                // Section endings settle on the chord's root: the ear hears a full stop.
                pitch = nearest_pc(pitch, ch.root);
            }
        }
        let strong = (motif.onsets[i] % 2.0).abs() < 1e-3;
        let velocity = (if strong { 92.0 } else { 78.0 } + 20.0 * (section.energy - 0.6)) as u8;
        notes.push(Note {
            start: at,
            beats: motif.lengths[i],
            pitch: pitch.clamp(36, 96) as u8,
            velocity,
        });
    }
    Phrase {
        start,
        beats,
        sung: phrase.syllables > 0,
        notes,
    }
}

pub fn chord_at(chords: &[ChordEvent], beat: f32) -> Option<&ChordEvent> {
    chords
        .iter()
        .rev()
        .find(|c| c.start <= beat + 1e-3)
        .or(chords.first())
}

fn nearest_pc(pitch: i32, pc: u8) -> i32 {
    let d = (i32::from(pc) - pitch).rem_euclid(12);
    if d <= 6 { pitch + d } else { pitch + d - 12 }
}

/// The chord tone closest to `pitch` that keeps the contour's direction from the
/// previous note (a rising step must still rise), so snapping to the harmony does not
/// flatten the tune into repeated notes. Ties go down, which keeps lines from creeping up.
fn directed_chord_tone(pitch: i32, prev: Option<i32>, step: i32, chord: &ChordEvent) -> i32 {
    let mut best = pitch;
    let mut best_cost = i32::MAX;
    for &iv in chord.quality.intervals() {
        let pc = (chord.root + iv) % 12;
        let near = nearest_pc(pitch, pc);
        for cand in [near - 12, near, near + 12] {
            let wrong_way = match prev {
                Some(p) if step > 0 => cand <= p,
                Some(p) if step < 0 => cand >= p,
                _ => false,
            };
            let cost = 2 * (cand - pitch).abs() + if wrong_way { 7 } else { 0 };
            if cost < best_cost || (cost == best_cost && cand < best) {
                best = cand;
                best_cost = cost;
            }
        }
    }
    best
}

fn make_motif(
    seed: u64,
    kind: SectionKind,
    letter: u8,
    n: usize,
    phrase_beats: f32,
    rap: bool,
) -> Motif {
    let mut rng = rng_for(seed, &format!("motif/{}/{letter}", kind.name()));
    // Leave a breath at the end of the phrase.
    let usable = (phrase_beats - 1.5).max(phrase_beats * 0.6);
    let eighths = (usable * 2.0) as usize;
    let step = if rap || n * 10 > eighths * 7 {
        0.25
    } else {
        0.5
    };
    let slots = ((usable / step) as usize).max(1);
    let n = n.clamp(1, slots);
    let chosen = choose_slots(&mut rng, slots, n, step);
    let onsets: Vec<f32> = chosen.iter().map(|&s| s as f32 * step).collect();
    let mut lengths = Vec::with_capacity(n);
    for i in 0..n {
        let next = onsets
            .get(i + 1)
            .copied()
            .unwrap_or((usable + 1.0).min(phrase_beats - 0.25));
        lengths.push((next - onsets[i]).max(step) * 0.92);
    }
    Motif {
        degrees: contour(&mut rng, n),
        onsets,
        lengths,
    }
}

/// Picks `n` of `slots` grid positions, favouring downbeats, then beats, then off-beats.
fn choose_slots(rng: &mut ChaCha8Rng, slots: usize, n: usize, step: f32) -> Vec<usize> {
    let weight = |s: usize| {
        let beat = s as f32 * step;
        if beat % 2.0 == 0.0 {
            6.0
        } else if beat.fract() == 0.0 {
            4.0
        } else if (beat * 2.0).fract() == 0.0 {
            2.5
        } else {
            1.0
        }
    };
    let mut taken = vec![false; slots];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let total: f32 = (0..slots).filter(|&s| !taken[s]).map(weight).sum();
        let mut r = rng.random::<f32>() * total;
        let mut pick = None;
        for s in (0..slots).filter(|&s| !taken[s]) {
            pick = Some(s);
            r -= weight(s);
            if r <= 0.0 {
                break;
            }
        }
        if let Some(s) = pick {
            taken[s] = true;
            out.push(s);
        }
    }
    out.sort_unstable();
    out
}

/// A walk in scale steps that prefers small moves and is pulled back toward the centre.
fn contour(rng: &mut ChaCha8Rng, n: usize) -> Vec<i32> {
    const STEPS: [(i32, f32); 7] = [
        (-3, 0.4),
        (-2, 1.0),
        (-1, 3.0),
        (0, 1.2),
        (1, 3.0),
        (2, 1.0),
        (3, 0.5),
    ];
    let mut deg: i32 = rng.random_range(-2..=2);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(deg);
        let total: f32 = STEPS.iter().map(|s| s.1).sum();
        let mut r = rng.random::<f32>() * total;
        let mut step = 0;
        for &(s, w) in &STEPS {
            step = s;
            r -= w;
            if r <= 0.0 {
                break;
            }
        }
        // Gravity: far from the centre, steps away are turned back.
        if (deg > 3 && step > 0) || (deg < -3 && step < 0) {
            step = -step;
        }
        deg = (deg + step).clamp(-5, 6);
    }
    out
}
