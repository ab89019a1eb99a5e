//! Reading the user's prompt: genre, tempo, key, mood and named instruments.
//! Only plain keyword matching: predictable, explainable, and the same on every machine.

use crate::plan::{Genre, Instrument, Mode};

/// Everything the prompt said explicitly. `None` means "not mentioned".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PromptInfo {
    pub genre: Option<Genre>,
    pub bpm: Option<u32>,
    /// Multiplier from words like "slow" or "fast" (1.0 when none).
    pub tempo_factor: f32,
    pub key_root: Option<u8>,
    pub mode: Option<Mode>,
    pub harmony: Option<Instrument>,
    pub lead: Option<Instrument>,
    pub bass: Option<Instrument>,
    /// Content words (not genre, tempo or filler words) for the lyrics' imagery.
    pub keywords: Vec<String>,
}

/// Lower-cases and splits the prompt, gluing common multi-word names into one token.
pub fn tokens(prompt: &str) -> Vec<String> {
    let mut s = prompt.to_lowercase();
    for (from, to) in [
        ("lo-fi", "lofi"),
        ("lo fi", "lofi"),
        ("hip-hop", "hiphop"),
        ("hip hop", "hiphop"),
        ("electric piano", "epiano"),
        ("music box", "musicbox"),
        ("drum and bass", "dnb"),
        ("synth-pop", "synthpop"),
    ] {
        s = s.replace(from, to);
    }
    s.split(|c: char| !(c.is_alphanumeric() || c == '#' || c == '♯' || c == '♭'))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

const GENRE_WORDS: &[(Genre, &[&str])] = &[
    (
        Genre::Ambient,
        &[
            "ambient",
            "atmospheric",
            "drone",
            "meditation",
            "meditative",
            "ethereal",
            "spacey",
        ],
    ),
    (
        Genre::LoFi,
        &["lofi", "chillhop", "study", "chill", "chilled", "vinyl"],
    ),
    (Genre::Pop, &["pop", "synthpop", "catchy", "radio", "kpop"]),
    (
        Genre::Rock,
        &["rock", "punk", "grunge", "metal", "indie", "garage"],
    ),
    (
        Genre::House,
        &[
            "house", "edm", "dance", "club", "disco", "trance", "electro",
        ],
    ),
    (
        Genre::Techno,
        &["techno", "industrial", "rave", "warehouse", "minimal"],
    ),
    (
        Genre::HipHop,
        &["hiphop", "rap", "trap", "boombap", "drill"],
    ),
    (
        Genre::Jazz,
        &["jazz", "jazzy", "swing", "bebop", "bossa", "lounge", "noir"],
    ),
    (
        Genre::Folk,
        &[
            "folk",
            "acoustic",
            "country",
            "americana",
            "campfire",
            "bluegrass",
        ],
    ),
    (
        Genre::Cinematic,
        &[
            "cinematic",
            "epic",
            "orchestral",
            "film",
            "soundtrack",
            "score",
            "trailer",
            "heroic",
        ],
    ),
];

const SLOW_WORDS: &[&str] = &[
    "slow",
    "slower",
    "ballad",
    "downtempo",
    "relaxed",
    "lazy",
    "sleepy",
    "calm",
];
const FAST_WORDS: &[&str] = &[
    "fast",
    "faster",
    "uptempo",
    "energetic",
    "driving",
    "frantic",
    "upbeat",
    "hyper",
];
const MINOR_MOOD: &[&str] = &[
    "sad",
    "dark",
    "melancholy",
    "melancholic",
    "moody",
    "gloomy",
    "haunting",
    "somber",
];
const MAJOR_MOOD: &[&str] = &[
    "happy",
    "bright",
    "uplifting",
    "sunny",
    "joyful",
    "cheerful",
    "hopeful",
];

/// Named instruments: (word, role, instrument). Role 0 = harmony, 1 = lead, 2 = bass.
const INSTRUMENT_WORDS: &[(&str, u8, Instrument)] = &[
    ("piano", 0, Instrument::Piano),
    ("epiano", 0, Instrument::EPiano),
    ("rhodes", 0, Instrument::EPiano),
    ("keys", 0, Instrument::EPiano),
    ("organ", 0, Instrument::Organ),
    ("pad", 0, Instrument::Pad),
    ("pads", 0, Instrument::Pad),
    ("strings", 0, Instrument::Strings),
    ("orchestra", 0, Instrument::Strings),
    ("violin", 1, Instrument::Strings),
    ("cello", 0, Instrument::Strings),
    ("guitar", 0, Instrument::Guitar),
    ("guitars", 0, Instrument::Guitar),
    ("synth", 1, Instrument::SawLead),
    ("synths", 1, Instrument::SawLead),
    ("lead", 1, Instrument::SawLead),
    ("pluck", 1, Instrument::Pluck),
    ("harp", 1, Instrument::Pluck),
    ("bell", 1, Instrument::Bell),
    ("bells", 1, Instrument::Bell),
    ("glockenspiel", 1, Instrument::Bell),
    ("musicbox", 1, Instrument::Bell),
    ("flute", 1, Instrument::Flute),
    ("whistle", 1, Instrument::Flute),
    ("chiptune", 1, Instrument::SquareLead),
    ("8bit", 1, Instrument::SquareLead),
    ("808", 2, Instrument::Bass808),
    ("upright", 2, Instrument::Upright),
    ("double", 2, Instrument::Upright),
];

const STOP_WORDS: &[&str] = &[
    "a",
    "an",
    "the",
    "and",
    "or",
    "of",
    "in",
    "on",
    "at",
    "to",
    "for",
    "with",
    "about",
    "song",
    "track",
    "music",
    "tune",
    "beat",
    "beats",
    "bpm",
    "tempo",
    "key",
    "major",
    "minor",
    "vocals",
    "vocal",
    "voice",
    "singing",
    "sung",
    "instrumental",
    "style",
    "vibe",
    "vibes",
    "feel",
    "like",
    "some",
    "very",
    "really",
    "that",
    "this",
    "is",
    "my",
    "me",
    "we",
    "our",
    "your",
    "by",
    "from",
    "into",
    "make",
    "write",
    "create",
    "please",
    "minutes",
    "seconds",
    "long",
    "short",
    "mood",
    "sound",
    "sounds",
    "genre",
    "kind",
    "sort",
    "it",
];

/// Parses everything the prompt says explicitly.
pub fn parse(prompt: &str) -> PromptInfo {
    let toks = tokens(prompt);
    let mut info = PromptInfo {
        tempo_factor: 1.0,
        ..PromptInfo::default()
    };
    info.genre = detect_genre(&toks);
    info.bpm = detect_bpm(&toks);
    if let Some((root, mode)) = detect_key(&toks) {
        info.key_root = Some(root);
        info.mode = mode;
    }
    let mut very = false;
    for t in &toks {
        let t = t.as_str();
        if SLOW_WORDS.contains(&t) {
            info.tempo_factor = if very { 0.7 } else { 0.82 };
        } else if FAST_WORDS.contains(&t) {
            info.tempo_factor = if very { 1.35 } else { 1.2 };
        }
        very = t == "very" || t == "super";
        if info.mode.is_none() {
            if MINOR_MOOD.contains(&t) {
                info.mode = Some(Mode::Minor);
            } else if MAJOR_MOOD.contains(&t) {
                info.mode = Some(Mode::Major);
            }
        }
        for &(word, role, inst) in INSTRUMENT_WORDS {
            if t == word {
                let slot = match role {
                    0 => &mut info.harmony,
                    1 => &mut info.lead,
                    _ => &mut info.bass,
                };
                slot.get_or_insert(inst);
            }
        }
    }
    info.keywords = keywords(&toks);
    info
}

fn detect_genre(toks: &[String]) -> Option<Genre> {
    let mut best: Option<(usize, Genre)> = None;
    for &(genre, words) in GENRE_WORDS {
        let n = toks.iter().filter(|t| words.contains(&t.as_str())).count();
        // Strictly greater: ties go to the genre listed first, whatever the prompt's order.
        if n > 0 && best.is_none_or(|(m, _)| n > m) {
            best = Some((n, genre));
        }
    }
    best.map(|(_, g)| g)
}

fn detect_bpm(toks: &[String]) -> Option<u32> {
    for (i, t) in toks.iter().enumerate() {
        let number = if let Some(n) = t.strip_suffix("bpm") {
            n.parse::<u32>().ok()
        } else if toks.get(i + 1).is_some_and(|n| n == "bpm") {
            t.parse::<u32>().ok()
        } else if t == "tempo" {
            toks.get(i + 1).and_then(|n| n.parse::<u32>().ok())
        } else {
            None
        };
        if let Some(n) = number.filter(|n| crate::validate::TEMPO_RANGE.contains(n)) {
            return Some(n);
        }
    }
    None
}

pub(crate) fn mode_word(t: &str) -> Option<Mode> {
    match t {
        "major" | "maj" => Some(Mode::Major),
        "minor" | "min" => Some(Mode::Minor),
        "dorian" => Some(Mode::Dorian),
        "mixolydian" => Some(Mode::Mixolydian),
        _ => None,
    }
}

/// A note-name token: pitch class, whether it carried an accidental or an `m` suffix.
pub(crate) fn note_token(t: &str) -> Option<(u8, bool, Option<Mode>)> {
    let mut chars = t.chars();
    let base: i32 = match chars.next()? {
        'c' => 0,
        'd' => 2,
        'e' => 4,
        'f' => 5,
        'g' => 7,
        'a' => 9,
        'b' => 11,
        _ => return None,
    };
    let rest: String = chars.collect();
    let (acc, marked, mode) = match rest.as_str() {
        "" => (0, false, None),
        "#" | "♯" => (1, true, None),
        "b" | "♭" => (-1, true, None),
        "m" => (0, true, Some(Mode::Minor)),
        "#m" | "♯m" => (1, true, Some(Mode::Minor)),
        "bm" | "♭m" => (-1, true, Some(Mode::Minor)),
        _ => return None,
    };
    Some(((base + acc).rem_euclid(12) as u8, marked, mode))
}

/// Finds "in D minor", "key of Bb", "F# major", "in Am". A bare letter counts only when
/// the context makes it a key, so "a song in a dream" does not become A.
fn detect_key(toks: &[String]) -> Option<(u8, Option<Mode>)> {
    for (i, t) in toks.iter().enumerate() {
        let Some((mut pc, marked, mut mode)) = note_token(t) else {
            continue;
        };
        let mut j = i + 1;
        match toks.get(j).map(String::as_str) {
            Some("sharp") => {
                pc = (pc + 1) % 12;
                j += 1;
            }
            Some("flat") => {
                pc = (pc + 11) % 12;
                j += 1;
            }
            _ => {}
        }
        let explicit = toks.get(j).and_then(|n| mode_word(n));
        if explicit.is_some() {
            mode = explicit;
        }
        let prev = i
            .checked_sub(1)
            .and_then(|p| toks.get(p))
            .map(String::as_str);
        let key_context =
            prev == Some("key") || (prev == Some("of") && i >= 2 && toks[i - 2] == "key");
        let in_context = prev == Some("in") && (marked || t != "a");
        if explicit.is_some() || key_context || in_context {
            return Some((pc, mode));
        }
    }
    None
}

fn keywords(toks: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in toks {
        let skip = t.len() < 3
            || t.chars().any(|c| c.is_ascii_digit())
            || !t.chars().all(|c| c.is_alphabetic())
            || STOP_WORDS.contains(&t.as_str())
            || SLOW_WORDS.contains(&t.as_str())
            || FAST_WORDS.contains(&t.as_str())
            || GENRE_WORDS.iter().any(|(_, ws)| ws.contains(&t.as_str()))
            || INSTRUMENT_WORDS.iter().any(|(w, _, _)| w == t);
        if !skip && !out.contains(t) {
            out.push(t.clone());
        }
    }
    out.truncate(6);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpm_key_and_genre() {
        let p = parse("A dreamy lo-fi hip hop track at 92 bpm in D minor with rhodes");
        assert_eq!(p.bpm, Some(92));
        assert_eq!(p.key_root, Some(2));
        assert_eq!(p.mode, Some(Mode::Minor));
        assert_eq!(p.harmony, Some(Instrument::EPiano));
        assert!(matches!(p.genre, Some(Genre::LoFi) | Some(Genre::HipHop)));
        assert_eq!(parse("fast techno, 140bpm").bpm, Some(140));
        assert_eq!(parse("key of Bb").key_root, Some(10));
        assert_eq!(parse("song in F# major").key_root, Some(6));
        assert_eq!(parse("a song in a dream").key_root, None);
        assert_eq!(parse("i am happy").key_root, None);
        assert_eq!(parse("in Am").mode, Some(Mode::Minor));
        assert_eq!(parse("slow jazz ballad").tempo_factor, 0.82);
    }

    #[test]
    fn every_genre_has_a_keyword() {
        for (prompt, g) in [
            ("ambient drone", Genre::Ambient),
            ("lofi beats", Genre::LoFi),
            ("catchy pop", Genre::Pop),
            ("garage rock", Genre::Rock),
            ("deep house", Genre::House),
            ("EDM banger", Genre::House),
            ("berlin techno", Genre::Techno),
            ("hip-hop", Genre::HipHop),
            ("smooth jazz", Genre::Jazz),
            ("campfire folk", Genre::Folk),
            ("epic cinematic", Genre::Cinematic),
        ] {
            assert_eq!(parse(prompt).genre, Some(g), "{prompt}");
        }
        assert_eq!(parse("a song about my cat").genre, None);
    }
}
