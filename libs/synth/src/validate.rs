//! Checking a request before any work: everything a stage relies on, and everything the
//! prompt asks for that the engine cannot honour, becomes a clear `InvalidRequest`.

use crate::api::{SongRequest, SynthError};
use crate::prompt::{mode_word, note_token, tokens};

/// Longer prompts are refused rather than cut: a prompt is a description, not a document.
pub const MAX_PROMPT_CHARS: usize = 2_000;
/// Ten minutes of fast rap is about 8,000 characters; more cannot be sung in a song.
pub const MAX_LYRICS_CHARS: usize = 10_000;

/// Checks the parts of a request every stage relies on.
pub fn validate(request: &SongRequest) -> Result<(), SynthError> {
    let d = request.duration_seconds;
    if !(5..=600).contains(&d) {
        return Err(SynthError::InvalidRequest(format!(
            "duration_seconds must be 5..=600, got {d}"
        )));
    }
    let s = request.style_strength;
    if !s.is_finite() || !(0.0..=1.0).contains(&s) {
        return Err(SynthError::InvalidRequest(format!(
            "style_strength must be within 0..=1, got {s}"
        )));
    }
    let chars = request.prompt.chars().count();
    if chars > MAX_PROMPT_CHARS {
        return Err(SynthError::InvalidRequest(format!(
            "the prompt has {chars} characters; at most {MAX_PROMPT_CHARS} are read"
        )));
    }
    if let Some(lyrics) = &request.lyrics {
        let chars = lyrics.chars().count();
        if chars > MAX_LYRICS_CHARS {
            return Err(SynthError::InvalidRequest(format!(
                "the lyrics have {chars} characters; at most {MAX_LYRICS_CHARS} fit a song"
            )));
        }
    }
    if let Some(problem) = problems(&request.prompt) {
        return Err(SynthError::InvalidRequest(problem));
    }
    Ok(())
}

/// The tempo range the engine plays; an explicit tempo outside it is refused.
pub const TEMPO_RANGE: std::ops::RangeInclusive<u32> = 40..=220;

/// What the prompt asks for that cannot be honoured: an explicit tempo outside
/// [`TEMPO_RANGE`] or a key whose name is not a note ("in H minor").
pub fn problems(prompt: &str) -> Option<String> {
    let toks = tokens(prompt);
    for (i, t) in toks.iter().enumerate() {
        // Digits too many for u64 are simply a very large tempo.
        let num = |n: &str| {
            (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .then(|| n.parse::<u64>().unwrap_or(u64::MAX))
        };
        let number = if let Some(n) = t.strip_suffix("bpm") {
            num(n)
        } else if toks.get(i + 1).is_some_and(|n| n == "bpm") || (i > 0 && toks[i - 1] == "tempo") {
            num(t)
        } else {
            None
        };
        let playable = u64::from(*TEMPO_RANGE.start())..=u64::from(*TEMPO_RANGE.end());
        if let Some(n) = number.filter(|n| !playable.contains(n)) {
            return Some(format!(
                "tempo {n} bpm is outside {}..={} bpm",
                TEMPO_RANGE.start(),
                TEMPO_RANGE.end()
            ));
        }
        // A one-letter "note" that is not one: "H minor", "key of X", "in Q# major".
        let looks_like_note = {
            let mut cs = t.chars();
            let first = cs.next();
            let rest: String = cs.collect();
            first.is_some_and(|c| c.is_ascii_alphabetic())
                && matches!(rest.as_str(), "" | "#" | "b" | "♯" | "♭")
        };
        if looks_like_note && note_token(t).is_none() {
            let next_is_mode = toks.get(i + 1).is_some_and(|n| mode_word(n).is_some());
            let after_key = i > 0
                && (toks[i - 1] == "key"
                    || (toks[i - 1] == "of" && i >= 2 && toks[i - 2] == "key"));
            if next_is_mode || after_key {
                return Some(format!(
                    "unknown key \"{t}\": keys are C, C#, Db, D, ... B, with major or minor"
                ));
            }
        }
    }
    None
}
