//! Bass and harmony parts: patterns from `patterns`, pitches from the chords, voice
//! leading so chord changes move as little as possible.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::compose::{ChordEvent, Composition};
use crate::form::SectionKind;
use crate::melody::{Note, chord_at};
use crate::patterns;
use crate::plan::{Genre, Instrument};

/// The bass note of a chord root, placed around the song's home note: the tonic sits
/// between E2 and D#3, where the bass speaks clearly (an octave lower, a low tonic is
/// mostly felt, not heard), and the other roots fall at most a fifth below it or rise
/// at most a major third above it, so the line keeps returning to one recognisable
/// home pitch instead of jumping across the octave with the key.
fn bass_root(pc: u8, key: u8) -> i32 {
    let home = 40 + (i32::from(key) - 4).rem_euclid(12);
    let up = (i32::from(pc) - i32::from(key)).rem_euclid(12);
    home + if up <= 4 { up } else { up - 12 }
}

pub fn bass_notes(comp: &Composition, rng: &mut ChaCha8Rng) -> Vec<Note> {
    let plan = &comp.plan;
    let bpb = plan.beats_per_bar as f32;
    let idiomatic = plan.style_strength >= 0.35;
    let walking = idiomatic && plan.genre == Genre::Jazz;
    let groove = if idiomatic {
        patterns::bass(plan.genre)
    } else {
        patterns::NEUTRAL_BASS
    };
    let key = plan.key_root;
    let mut out = Vec::new();
    for sec in &comp.sections {
        let shape = match sec.kind {
            SectionKind::Break => continue,
            SectionKind::Intro | SectionKind::Outro | SectionKind::Bridge => "r.......r.......",
            _ => groove,
        };
        let vel = (70.0 + 35.0 * sec.energy) as u8;
        let end = sec.start + sec.beats;
        if walking && !matches!(sec.kind, SectionKind::Intro | SectionKind::Outro) {
            walk(&sec.chords, key, (sec.start, end), vel, rng, &mut out);
            continue;
        }
        let steps: Vec<(usize, u8)> = shape
            .bytes()
            .enumerate()
            .filter(|(_, c)| *c != b'.')
            .collect();
        let bars = (sec.beats / bpb).ceil() as u32;
        for bar in 0..bars {
            let t0 = sec.start + bar as f32 * bpb;
            for (k, &(i, c)) in steps.iter().enumerate() {
                let start = t0 + i as f32 * 0.25;
                if start >= end - 1e-3 {
                    break;
                }
                let next = steps
                    .get(k + 1)
                    .map_or(t0 + bpb, |&(j, _)| t0 + j as f32 * 0.25)
                    .min(end);
                let Some(ch) = chord_at(&sec.chords, start) else {
                    continue;
                };
                let root = bass_root(ch.root, key);
                let pitch = match c {
                    b'f' => root + 7,
                    b'o' => root + 12,
                    _ => root,
                };
                // House and techno basses are short and punchy; the rest sing through.
                let gate = if matches!(plan.genre, Genre::House | Genre::Techno) && idiomatic {
                    0.6
                } else {
                    0.92
                };
                out.push(Note {
                    start,
                    beats: (next - start) * gate,
                    pitch: pitch as u8,
                    velocity: vel,
                });
            }
        }
    }
    out
}

/// A walking line: the root on each chord change and again on the bar's third beat
/// (the strong beats name the chord), chord tones between, and a chromatic approach
/// into the next root.
fn walk(
    chords: &[ChordEvent],
    key: u8,
    (start, end): (f32, f32),
    vel: u8,
    rng: &mut ChaCha8Rng,
    out: &mut Vec<Note>,
) {
    let mut t = start;
    let mut prev: Option<i32> = None;
    while t < end - 1e-3 {
        let Some(ch) = chord_at(chords, t) else {
            return;
        };
        let root = bass_root(ch.root, key);
        let next = chord_at(chords, t + 1.0).filter(|_| t + 1.0 < end);
        let changes_now = (ch.start - t).abs() < 1e-3;
        let third_beat = ((t - start).rem_euclid(4.0) - 2.0).abs() < 1e-3;
        let pitch = if changes_now || third_beat {
            root
        } else if let Some(n) = next.filter(|n| (n.start - (t + 1.0)).abs() < 1e-3) {
            bass_root(n.root, key) + if rng.random_bool(0.5) { 1 } else { -1 }
        } else {
            let ivs = ch.quality.intervals();
            let up = root
                + i32::from(ivs[rng.random_range(1..ivs.len().max(2)).min(ivs.len() - 1)] % 12);
            // The chord tone in whichever octave is nearer the last note: the line
            // steps around the root (above and below it) instead of always climbing
            // from it.
            let down = up - 12;
            match prev {
                Some(p) if down >= 28 && (p - down).abs() < (p - up).abs() => down,
                _ => up,
            }
        };
        let pitch = pitch.clamp(28, 60);
        out.push(Note {
            start: t,
            beats: 0.9,
            pitch: pitch as u8,
            velocity: vel,
        });
        prev = Some(pitch);
        t += 1.0;
    }
}

/// Chord tones (at most four) as MIDI notes, the inversion closest to the previous chord.
fn voice(ch: &ChordEvent, prev: &[i32]) -> Vec<i32> {
    let ivs: Vec<i32> = ch
        .quality
        .intervals()
        .iter()
        .map(|&i| i32::from(i))
        .collect();
    // Five-note chords drop the root: the bass already plays it.
    let ivs: Vec<i32> = if ivs.len() > 4 {
        ivs[1..].to_vec()
    } else {
        ivs
    };
    let centre = if prev.is_empty() {
        62.0
    } else {
        prev.iter().sum::<i32>() as f32 / prev.len() as f32
    };
    let mut best: Vec<i32> = Vec::new();
    let mut best_cost = f32::MAX;
    for inversion in 0..ivs.len() {
        for base in [48, 60] {
            let root = base + i32::from(ch.root);
            let mut notes: Vec<i32> = ivs
                .iter()
                .enumerate()
                .map(|(k, &iv)| root + iv + if k < inversion { 12 } else { 0 })
                .collect();
            notes.sort_unstable();
            let mean = notes.iter().sum::<i32>() as f32 / notes.len() as f32;
            let low_ok = notes.first().is_some_and(|&n| n >= 50);
            let high_ok = notes.last().is_some_and(|&n| n <= 79);
            let cost = (mean - centre).abs()
                + (mean - 63.0).abs() * 0.3
                + if low_ok && high_ok { 0.0 } else { 50.0 };
            if cost < best_cost {
                best_cost = cost;
                best = notes;
            }
        }
    }
    best
}

/// Adds a minor tonic chord's third again an octave away (or a third to a bare
/// fifth): in minor the third is what tells the key from its relative major, so the
/// home chord states it twice. (Doubling a major third only pulls a listener toward
/// the minor key on the third, so major chords are left alone.)
fn double_third(voicing: &mut Vec<i32>, root: u8) {
    let is = |n: i32, iv: i32| (n - i32::from(root)).rem_euclid(12) == iv;
    let at = match voicing.iter().copied().find(|&n| is(n, 3)) {
        Some(n) => n,
        // A power chord: a third above its root.
        None => match voicing.iter().copied().find(|&n| is(n, 0)) {
            Some(r) => r + 3,
            None => return,
        },
    };
    let extra = if at + 12 <= 81 { at + 12 } else { at - 12 };
    if !voicing.contains(&extra) {
        voicing.push(extra);
        voicing.sort_unstable();
    }
}

pub fn harmony_notes(comp: &Composition) -> Vec<Note> {
    let plan = &comp.plan;
    let idiomatic = plan.style_strength >= 0.35;
    let held_instrument = matches!(plan.harmony, Instrument::Pad | Instrument::Strings);
    let mut comping = if idiomatic {
        patterns::comping(plan.genre)
    } else {
        "x...x...x...x..."
    };
    if plan.harmony == Instrument::Guitar && comping == "-" {
        comping = "x.x.xx.xx.x.xx.x";
    } else if !held_instrument && comping == "-" {
        comping = "x.......x.......";
    }
    let strum = plan.harmony == Instrument::Guitar;
    let bpb = plan.beats_per_bar as f32;
    let mut out = Vec::new();
    let mut prev: Vec<i32> = Vec::new();
    for sec in &comp.sections {
        let held = held_instrument
            || comping == "-"
            || matches!(
                sec.kind,
                SectionKind::Intro | SectionKind::Outro | SectionKind::Bridge | SectionKind::Break
            );
        let vel = (58.0 + 40.0 * sec.energy) as u8;
        let end = sec.start + sec.beats;
        for ch in &sec.chords {
            let mut voicing = voice(ch, &prev);
            if ch.root == plan.key_root && plan.mode.is_minor() {
                double_third(&mut voicing, ch.root);
            }
            let ch_end = (ch.start + ch.beats).min(end);
            if held {
                for &p in &voicing {
                    out.push(Note {
                        start: ch.start,
                        beats: (ch_end - ch.start) * 0.98,
                        pitch: p as u8,
                        velocity: vel,
                    });
                }
            } else {
                let hits: Vec<usize> = comping
                    .bytes()
                    .enumerate()
                    .filter(|(_, c)| *c == b'x')
                    .map(|(i, _)| i)
                    .collect();
                let mut bar_t = sec.start + ((ch.start - sec.start) / bpb).floor() * bpb;
                while bar_t < ch_end - 1e-3 {
                    for (k, &i) in hits.iter().enumerate() {
                        let start = bar_t + i as f32 * 0.25;
                        if start < ch.start - 1e-3 || start >= ch_end - 1e-3 {
                            continue;
                        }
                        let next = hits
                            .get(k + 1)
                            .map_or(bar_t + bpb, |&j| bar_t + j as f32 * 0.25)
                            .min(ch_end);
                        let upstroke = strum && i % 4 != 0;
                        for (v, &p) in voicing.iter().enumerate() {
                            // A strum spreads the strings over a few milliseconds.
                            let order = if upstroke { voicing.len() - 1 - v } else { v };
                            let offset = if strum { order as f32 * 0.03 } else { 0.0 };
                            let accent = if i % 8 == 0 { 1.0 } else { 0.85 };
                            out.push(Note {
                                start: start + offset,
                                beats: ((next - start) * 0.9 - offset).max(0.1),
                                pitch: p as u8,
                                velocity: (f32::from(vel) * accent) as u8,
                            });
                        }
                    }
                    bar_t += bpb;
                }
            }
            prev = voicing;
        }
    }
    out
}
