//! `arrangement.mid`: a Standard MIDI File, type 1. Track 0 holds tempo, metre and key;
//! then one track per part, so any DAW opens the song with the parts already separated.

use midly::num::{u4, u7, u15, u24, u28};
use midly::{Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};

use crate::arrange::Arrangement;
use crate::plan::Mode;

const TICKS_PER_BEAT: u16 = 480;

/// Number of sharps (positive) or flats (negative) in the key signature.
fn key_signature(root: u8, mode: Mode) -> (i8, bool) {
    // Position of each major key on the circle of fifths, preferring flats for Db, Eb, Ab, Bb.
    const MAJOR: [i8; 12] = [0, -5, 2, -3, 4, -1, 6, 1, -4, 3, -2, 5];
    let minor = mode.is_minor();
    // A minor key shares its signature with the major key three semitones up; dorian and
    // mixolydian borrow from the major a tone down / a fourth up.
    let relative = match mode {
        Mode::Major => root,
        Mode::Minor => (root + 3) % 12,
        Mode::Dorian => (root + 10) % 12,
        Mode::Mixolydian => (root + 5) % 12,
    };
    (MAJOR[usize::from(relative % 12)], minor)
}

fn ticks(beats: f32) -> u64 {
    (f64::from(beats.max(0.0)) * f64::from(TICKS_PER_BEAT)).round() as u64
}

/// Sorts absolute-time events and turns them into delta times.
fn to_track(mut events: Vec<(u64, u8, TrackEventKind<'_>)>) -> Vec<TrackEvent<'_>> {
    // Stable order: time, then note-offs (0) before note-ons (1), so repeated notes re-trigger.
    events.sort_by_key(|e| (e.0, e.1));
    let mut out = Vec::with_capacity(events.len() + 1);
    let mut last = 0u64;
    for (t, _, kind) in events {
        let delta = u28::new((t - last).min(0x0FFF_FFFF) as u32);
        out.push(TrackEvent { delta, kind });
        last = t;
    }
    out.push(TrackEvent {
        delta: u28::new(0),
        kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
    });
    out
}

pub fn write_midi(arr: &Arrangement) -> Vec<u8> {
    let names: Vec<String> = arr.parts.iter().map(|p| p.name.clone()).collect();
    let mut smf = Smf::new(Header::new(
        Format::Parallel,
        Timing::Metrical(u15::new(TICKS_PER_BEAT)),
    ));

    let micros_per_beat = 60_000_000 / arr.tempo_bpm.max(1);
    let (sharps, minor) = key_signature(arr.key_root, arr.mode);
    let meta = |m| TrackEventKind::Meta(m);
    let conductor = vec![
        (0, 0, meta(MetaMessage::TrackName(b"cadenza"))),
        (0, 0, meta(MetaMessage::Tempo(u24::new(micros_per_beat)))),
        (
            0,
            0,
            meta(MetaMessage::TimeSignature(
                arr.beats_per_bar.min(255) as u8,
                2,
                24,
                8,
            )),
        ),
        (0, 0, meta(MetaMessage::KeySignature(sharps, minor))),
    ];
    smf.tracks.push(to_track(conductor));

    for (part, name) in arr.parts.iter().zip(&names) {
        let channel = u4::new(part.channel);
        let midi = |message| TrackEventKind::Midi { channel, message };
        let mut events = vec![(0, 0, meta(MetaMessage::TrackName(name.as_bytes())))];
        if part.channel != 9 {
            let program = u7::new(part.instrument.gm_program());
            events.push((0, 0, midi(MidiMessage::ProgramChange { program })));
        }
        // Pan as controller 10: 0 left, 64 centre, 127 right.
        let pan = ((part.pan.clamp(-1.0, 1.0) + 1.0) * 63.5).round() as u8;
        events.push((
            0,
            0,
            midi(MidiMessage::Controller {
                controller: u7::new(10),
                value: u7::new(pan.min(127)),
            }),
        ));
        for n in &part.notes {
            let on = ticks(n.start);
            let off = ticks(n.start + n.beats).max(on + 1);
            let key = u7::new(n.pitch.min(127));
            events.push((
                on,
                1,
                midi(MidiMessage::NoteOn {
                    key,
                    vel: u7::new(n.velocity.clamp(1, 127)),
                }),
            ));
            events.push((
                off,
                0,
                midi(MidiMessage::NoteOff {
                    key,
                    vel: u7::new(0),
                }),
            ));
        }
        smf.tracks.push(to_track(events));
    }

    let mut bytes = Vec::new();
    // Writing into a Vec cannot fail; an error would leave an empty artifact, never a panic.
    if smf.write_std(&mut bytes).is_err() {
        bytes.clear();
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_signatures() {
        assert_eq!(key_signature(2, Mode::Minor), (-1, true)); // D minor: one flat
        assert_eq!(key_signature(7, Mode::Major), (1, false)); // G major: one sharp
        assert_eq!(key_signature(9, Mode::Minor), (0, true));
    }
}
