//! Music theory helpers: chord qualities, roman-numeral progressions per genre, pitches.

use serde::{Deserialize, Serialize};

use crate::plan::{Genre, Mode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    Major,
    Minor,
    Dim,
    Sus2,
    Sus4,
    Power,
    Maj7,
    Min7,
    Dom7,
    HalfDim7,
    Add9,
    Min9,
}

impl Quality {
    /// Semitones above the root.
    pub fn intervals(self) -> &'static [u8] {
        match self {
            Quality::Major => &[0, 4, 7],
            Quality::Minor => &[0, 3, 7],
            Quality::Dim => &[0, 3, 6],
            Quality::Sus2 => &[0, 2, 7],
            Quality::Sus4 => &[0, 5, 7],
            Quality::Power => &[0, 7, 12],
            Quality::Maj7 => &[0, 4, 7, 11],
            Quality::Min7 => &[0, 3, 7, 10],
            Quality::Dom7 => &[0, 4, 7, 10],
            Quality::HalfDim7 => &[0, 3, 6, 10],
            Quality::Add9 => &[0, 4, 7, 14],
            Quality::Min9 => &[0, 3, 7, 10, 14],
        }
    }
    pub fn suffix(self) -> &'static str {
        match self {
            Quality::Major => "",
            Quality::Minor => "m",
            Quality::Dim => "dim",
            Quality::Sus2 => "sus2",
            Quality::Sus4 => "sus4",
            Quality::Power => "5",
            Quality::Maj7 => "maj7",
            Quality::Min7 => "m7",
            Quality::Dom7 => "7",
            Quality::HalfDim7 => "m7b5",
            Quality::Add9 => "add9",
            Quality::Min9 => "m9",
        }
    }
}

const NOTE_NAMES: [&str; 12] = [
    "C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B",
];

/// "F#m7"-style name of a chord.
pub fn chord_symbol(root_pc: u8, q: Quality) -> String {
    format!("{}{}", NOTE_NAMES[usize::from(root_pc % 12)], q.suffix())
}

/// Parses one roman numeral ("bVII", "ii7", "IVmaj7", "iim7b5", "i9") into
/// (semitones above the tonic, quality). Numerals count major-scale degrees, so minor
/// progressions spell their flats ("i bVI bIII bVII") and mean the same in every mode.
pub fn parse_roman(s: &str) -> Option<(u8, Quality)> {
    let (shift, rest) = match s.as_bytes().first()? {
        b'b' => (-1i32, &s[1..]),
        b'#' => (1, &s[1..]),
        _ => (0, s),
    };
    const NUMERALS: [(&str, i32); 7] = [
        ("vii", 11),
        ("iii", 4),
        ("iv", 5),
        ("vi", 9),
        ("ii", 2),
        ("v", 7),
        ("i", 0),
    ];
    let lower = rest.to_ascii_lowercase();
    let &(numeral, semis) = NUMERALS.iter().find(|(n, _)| lower.starts_with(n))?;
    let upper = rest.as_bytes().first()?.is_ascii_uppercase();
    let quality = match (&rest[numeral.len()..], upper) {
        ("", true) => Quality::Major,
        ("", false) => Quality::Minor,
        ("7", true) => Quality::Dom7,
        ("7", false) => Quality::Min7,
        ("maj7", _) => Quality::Maj7,
        ("o", _) => Quality::Dim,
        ("m7b5", _) => Quality::HalfDim7,
        ("sus2", _) => Quality::Sus2,
        ("sus4", _) => Quality::Sus4,
        ("5", _) => Quality::Power,
        ("add9", _) => Quality::Add9,
        ("9", false) => Quality::Min9,
        ("9", true) => Quality::Add9,
        _ => return None,
    };
    Some(((semis + shift).rem_euclid(12) as u8, quality))
}

/// Idiomatic four-chord progressions, by genre and mode.
pub fn progressions(genre: Genre, minor: bool) -> &'static [&'static str] {
    match (genre, minor) {
        (Genre::Pop, false) => &[
            "I V vi IV",
            "vi IV I V",
            "I vi IV V",
            "IV I V vi",
            "I iii IV V",
        ],
        (Genre::Pop, true) => &[
            "i bVI bIII bVII",
            "i iv bVI bVII",
            "bVI bVII i i",
            "i bVII bVI bVII",
        ],
        (Genre::Rock, false) => &["I bVII IV I", "I IV V IV", "I V IV IV", "IV I V V"],
        (Genre::Rock, true) => &["i bVII bVI bVII", "i bIII bVII iv", "i5 bVI5 bVII5 i5"],
        (Genre::House, false) => &["Imaj7 vi7 ii7 V", "Imaj7 IVmaj7 iii7 vi7", "I V vi IV"],
        (Genre::House, true) => &[
            "i7 bVImaj7 bIIImaj7 bVII",
            "i7 iv7 i7 bVII",
            "i bVI bIII bVII",
        ],
        (Genre::Techno, false) => &["I I bVII bVII", "I I I IV"],
        (Genre::Techno, true) => &["i i i i", "i i bVII bVII", "i i bVI bVII"],
        (Genre::HipHop, false) => &["Imaj7 vi7 ii7 V7", "IVmaj7 V7 Imaj7 vi7"],
        (Genre::HipHop, true) => &[
            "i7 iv7 i7 iv7",
            "i7 bVImaj7 iv7 v7",
            "i9 i9 iv9 iv9",
            "bVImaj7 v7 i7 i7",
        ],
        (Genre::Jazz, false) => &[
            "ii7 V7 Imaj7 Imaj7",
            "Imaj7 vi7 ii7 V7",
            "Imaj7 VI7 ii7 V7",
            "Imaj7 IV7 iii7 VI7",
        ],
        (Genre::Jazz, true) => &["iim7b5 V7 i7 i7", "i7 iv7 i7 V7", "i7 bVI7 iim7b5 V7"],
        (Genre::LoFi, false) => &[
            "ii7 V7 Imaj7 vi7",
            "IVmaj7 V7 iii7 Imaj7",
            "Imaj7 iii7 IVmaj7 iv7",
        ],
        (Genre::LoFi, true) => &[
            "i7 iv7 bVIImaj7 bIIImaj7",
            "iv7 V7 i7 i7",
            "bVImaj7 bVII7 i7 i7",
        ],
        (Genre::Folk, false) => &["I IV I V", "I V vi IV", "I IV vi V", "vi IV I V"],
        (Genre::Folk, true) => &["i bVII bVI bVII", "i bIII bVII i", "i iv V i"],
        (Genre::Ambient, false) => &[
            "Iadd9 IVadd9 Iadd9 IVadd9",
            "Imaj7 vi7 IVmaj7 IVmaj7",
            "Isus2 IVmaj7 vi7 IVmaj7",
        ],
        (Genre::Ambient, true) => &[
            "i9 bVImaj7 i9 bVImaj7",
            "i bVI bIII bVII",
            "i9 iv9 i9 bVImaj7",
        ],
        (Genre::Cinematic, false) => &["I V vi IV", "I bVI bVII I", "IV V I I"],
        (Genre::Cinematic, true) => &[
            "i bVI bIII bVII",
            "i bVI iv V",
            "i iv bVI V",
            "bVI bVII i i",
        ],
    }
}

/// What style_strength 0 sounds like: the plain progressions every listener knows.
pub fn neutral_progressions(minor: bool) -> &'static [&'static str] {
    if minor {
        &["i bVI bIII bVII", "i iv bVII bIII", "i bVII bVI bVII"]
    } else {
        &["I V vi IV", "I IV V IV", "vi IV I V"]
    }
}

/// MIDI note of scale degree `deg` (0 = tonic; may be negative or above 6) in the octave
/// whose tonic is `tonic_midi`.
pub fn degree_to_midi(tonic_midi: i32, mode: Mode, deg: i32) -> i32 {
    let scale = mode.scale();
    let oct = deg.div_euclid(7);
    let idx = deg.rem_euclid(7) as usize;
    tonic_midi + 12 * oct + i32::from(scale[idx])
}

/// Frequency in Hz of a (possibly fractional) MIDI note.
pub fn midi_to_hz(note: f32) -> f32 {
    440.0 * ((note - 69.0) / 12.0).exp2()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Genre;

    #[test]
    fn every_progression_parses() {
        let genres = [
            Genre::Ambient,
            Genre::LoFi,
            Genre::Pop,
            Genre::Rock,
            Genre::House,
            Genre::Techno,
            Genre::HipHop,
            Genre::Jazz,
            Genre::Folk,
            Genre::Cinematic,
        ];
        for g in genres {
            for minor in [false, true] {
                for p in progressions(g, minor)
                    .iter()
                    .chain(neutral_progressions(minor))
                {
                    for c in p.split_whitespace() {
                        assert!(parse_roman(c).is_some(), "{g:?} {p}: {c}");
                    }
                }
            }
        }
        assert_eq!(parse_roman("bVII"), Some((10, Quality::Major)));
        assert_eq!(parse_roman("ii7"), Some((2, Quality::Min7)));
        assert_eq!(parse_roman("iim7b5"), Some((2, Quality::HalfDim7)));
        assert_eq!(degree_to_midi(60, Mode::Minor, -1), 58);
    }
}
