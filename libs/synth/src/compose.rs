//! Composition: chords per section and the melody, on top of the plan. The result is
//! `composition.json`, which the arrangement and vocal stages read back.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::api::{ArtifactKind, SongRequest, SynthError};
use crate::form::{SectionKind, SectionPlan};
use crate::melody::{self, Phrase};
use crate::plan::{self, Genre, Plan};
use crate::theory::{self, Quality};
use crate::util::{pick, rng_for};

/// Bumped whenever the JSON layout changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChordEvent {
    /// Beats from the start of the song.
    pub start: f32,
    pub beats: f32,
    /// Pitch class of the root, 0 = C.
    pub root: u8,
    pub quality: Quality,
    pub symbol: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComposedSection {
    pub label: String,
    pub kind: SectionKind,
    pub start: f32,
    pub beats: f32,
    pub energy: f32,
    pub chords: Vec<ChordEvent>,
    pub phrases: Vec<Phrase>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Composition {
    pub format_version: u32,
    /// Human-readable key ("D minor"); the plan holds the numbers.
    pub key: String,
    pub plan: Plan,
    pub sections: Vec<ComposedSection>,
}

impl Composition {
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain structs of numbers and strings cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Parses and sanity-checks a `composition.json`: later stages loop over its numbers,
    /// so anything absurd is refused here rather than trusted.
    pub fn from_json(bytes: &[u8]) -> Result<Self, SynthError> {
        let bad = |reason: String| SynthError::InvalidInput {
            kind: ArtifactKind::Composition,
            reason,
        };
        let c: Composition = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if c.format_version != FORMAT_VERSION {
            return Err(bad(format!(
                "format_version {} is not {FORMAT_VERSION}",
                c.format_version
            )));
        }
        if !(20..=400).contains(&c.plan.tempo_bpm)
            || c.plan.beats_per_bar == 0
            || c.plan.beats_per_bar > 16
        {
            return Err(bad("tempo or metre out of range".into()));
        }
        let finite = |x: f32| x.is_finite() && (0.0..1.0e5).contains(&x);
        for s in &c.sections {
            let chords_ok = s
                .chords
                .iter()
                .all(|ch| finite(ch.start) && finite(ch.beats) && ch.root < 12);
            let notes_ok = s
                .phrases
                .iter()
                .flat_map(|p| &p.notes)
                .all(|n| finite(n.start) && finite(n.beats) && n.pitch < 128);
            if !finite(s.start) || !finite(s.beats) || !chords_ok || !notes_ok {
                return Err(bad(format!(
                    "section {} has times or pitches out of range",
                    s.label
                )));
            }
        }
        Ok(c)
    }
}

/// The composition stage.
pub fn compose(request: &SongRequest) -> Result<Composition, SynthError> {
    let plan = plan::plan(request)?;
    let progs = choose_progressions(&plan, request.seed);
    let bpb = plan.beats_per_bar as f32;
    let mut sections = Vec::with_capacity(plan.form.len());
    let last = plan.form.len().saturating_sub(1);
    for (i, sp) in plan.form.iter().enumerate() {
        let start = sp.start_bar as f32 * bpb;
        let mut prog = progs.for_kind(sp.kind).to_vec();
        if i == 0 {
            // A song opens at home, whichever section comes first.
            rotate_home(&mut prog);
        }
        let mut chords = section_chords(&plan, sp, start, &prog);
        cadence(&plan, sp.kind, i == last, &progs.verse, &mut chords);
        let phrases = sp
            .phrases
            .iter()
            .map(|ph| melody::phrase_melody(&plan, request.seed, sp, start, ph, &chords))
            .collect();
        sections.push(ComposedSection {
            label: sp.label.clone(),
            kind: sp.kind,
            start,
            beats: sp.bars as f32 * bpb,
            energy: sp.energy,
            chords,
            phrases,
        });
    }
    Ok(Composition {
        format_version: FORMAT_VERSION,
        key: plan.key_name(),
        plan,
        sections,
    })
}

struct Progressions {
    verse: Vec<(u8, Quality)>,
    chorus: Vec<(u8, Quality)>,
    bridge: Vec<(u8, Quality)>,
}

impl Progressions {
    fn for_kind(&self, kind: SectionKind) -> &[(u8, Quality)] {
        match kind {
            SectionKind::Intro | SectionKind::Verse | SectionKind::Break => &self.verse,
            SectionKind::Bridge => &self.bridge,
            _ => &self.chorus,
        }
    }
}

fn parse_prog(p: &str) -> Vec<(u8, Quality)> {
    let chords: Vec<_> = p
        .split_whitespace()
        .filter_map(theory::parse_roman)
        .collect();
    if chords.is_empty() {
        vec![(0, Quality::Major)]
    } else {
        chords
    }
}

/// Verse, chorus and bridge progressions: idiomatic with probability style_strength,
/// and different from each other when the genre offers enough.
fn choose_progressions(plan: &Plan, seed: u64) -> Progressions {
    let mut rng = rng_for(seed, "progressions");
    let minor = plan.mode.is_minor();
    let mut draw = |avoid: &[&str]| -> &'static str {
        let mut choice = "";
        for _ in 0..6 {
            let bank = if rng.random::<f32>() < plan.style_strength {
                theory::progressions(plan.genre, minor)
            } else {
                theory::neutral_progressions(minor)
            };
            choice = *pick(&mut rng, bank);
            if !avoid.contains(&choice) {
                break;
            }
        }
        choice
    };
    let verse = draw(&[]);
    let chorus = draw(&[verse]);
    let bridge = draw(&[verse, chorus]);
    // Verses (and the intro, which borrows their chords) start at home, so the key is
    // heard from the first bar; choruses may open elsewhere for lift.
    let mut verse = parse_prog(verse);
    rotate_home(&mut verse);
    let mut bridge = parse_prog(bridge);
    // Bridges start away from home: rotate so they do not open on the tonic.
    if bridge.first().is_some_and(|c| c.0 == 0) && bridge.len() > 1 {
        bridge.rotate_left(1);
    }
    Progressions {
        verse,
        chorus: parse_prog(chorus),
        bridge,
    }
}

/// Rotates a progression to start on the tonic, when it has one.
fn rotate_home(prog: &mut [(u8, Quality)]) {
    if let Some(home) = prog.iter().position(|c| c.0 == 0) {
        prog.rotate_left(home);
    }
}

fn section_chords(
    plan: &Plan,
    sp: &SectionPlan,
    start: f32,
    prog: &[(u8, Quality)],
) -> Vec<ChordEvent> {
    let bpb = plan.beats_per_bar as f32;
    // Slow harmonic rhythm is part of the ambient and cinematic sound.
    let slow = matches!(plan.genre, Genre::Ambient) && plan.style_strength >= 0.5;
    let per_chord = if slow { 2.0 * bpb } else { bpb };
    let total = sp.bars as f32 * bpb;
    let mut out = Vec::new();
    let mut t = 0.0;
    let mut i = 0;
    while t < total - 1e-3 {
        let (offset, quality) = prog[i % prog.len()];
        let root = (plan.key_root + offset) % 12;
        let beats = per_chord.min(total - t);
        out.push(ChordEvent {
            start: start + t,
            beats,
            root,
            quality,
            symbol: theory::chord_symbol(root, quality),
        });
        t += per_chord;
        i += 1;
    }
    out
}

/// Phrase endings that name the key: verses, choruses, outros and the song's last
/// section come home to the tonic, and bridges stop on the dominant, which leads back
/// home. In minor the tonic is approached from the major dominant (an authentic
/// cadence), whose leading tone tells the key from its relative major; in major the
/// progression's own approach is kept, since more dominant there makes a listener
/// hear the key a fifth up. Aeolian genres (rock, house, techno) keep their own
/// approach in minor too (bVII - i is their cadence).
fn cadence(
    plan: &Plan,
    kind: SectionKind,
    last: bool,
    home: &[(u8, Quality)],
    chords: &mut [ChordEvent],
) {
    let minor = plan.mode.is_minor();
    let aeolian = minor && matches!(plan.genre, Genre::Rock | Genre::House | Genre::Techno);
    let sevenths = matches!(plan.genre, Genre::Jazz | Genre::LoFi | Genre::HipHop);
    let dominant = (
        7,
        if sevenths {
            Quality::Dom7
        } else {
            Quality::Major
        },
    );
    let n = chords.len();
    // A progression that has just cadenced (V - i, then the tonic held) keeps its extra
    // bar of home: replacing it with a second dominant would spend more time away from
    // the tonic than on it.
    let cadenced = n >= 3
        && chords[n - 2].root == plan.key_root
        && chords[n - 3].root == (plan.key_root + 7) % 12;
    let mut set = |k: usize, (offset, quality): (u8, Quality)| {
        let c = &mut chords[k];
        c.root = (plan.key_root + offset) % 12;
        c.quality = quality;
        c.symbol = theory::chord_symbol(c.root, quality);
    };
    let resolves = last
        || matches!(
            kind,
            SectionKind::Verse | SectionKind::Chorus | SectionKind::Outro
        );
    if resolves && n > 0 {
        // In major, the tonic as the song's own progressions colour it (Imaj7,
        // Iadd9...). In minor, a section comes home to the plain triad: the seventh
        // of i7 (and the ninth of i9) is the fifth (and the seventh) of the relative
        // major, so the chord that should settle the key would half name the other.
        let tonic = if minor && !aeolian {
            Quality::Minor
        } else {
            home.iter().find(|c| c.0 == 0).map_or(
                if minor {
                    Quality::Minor
                } else {
                    Quality::Major
                },
                |c| c.1,
            )
        };
        set(n - 1, (0, tonic));
        if minor && n >= 3 && !aeolian && !cadenced {
            set(n - 2, dominant);
        }
    } else if kind == SectionKind::Bridge && n > 0 && !aeolian {
        set(n - 1, dominant);
    }
}
