//! Keeping a song's words out of our logs when a hosted provider echoes them.
//!
//! Providers' log lines and error messages often repeat their input, and not
//! verbatim: upper-cased, re-punctuated, wrapped, quoted, cut mid-sentence.
//! So a line is compared word by word, not as a string: both it and the
//! private texts (the prompt, the lyrics) become sequences of lower-case words
//! (runs of letters and digits; everything else only separates), and any run
//! of [`WINDOW`] consecutive words of the line that also occurs, in order, in a
//! private text is replaced, with whatever separates its words, by
//! `[redacted]`. A private text shorter than the window is matched whole.

use std::collections::{HashMap, HashSet};

/// Words in a row that make a fragment worth hiding.
pub const WINDOW: usize = 8;
const MARK: &str = "[redacted]";

/// The words of `text`, lower-cased, with their byte ranges in it.
fn words(text: &str) -> Vec<(String, std::ops::Range<usize>)> {
    let mut found = Vec::new();
    let mut start = None;
    for (at, c) in text.char_indices() {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(at),
            (false, Some(from)) => {
                found.push((text[from..at].to_lowercase(), from..at));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(from) = start {
        found.push((text[from..].to_lowercase(), from..text.len()));
    }
    found
}

/// Hides fragments of some private texts from lines of text.
#[derive(Debug, Default)]
pub struct Redactor {
    /// Window length → every run of that many words of a private text.
    runs: HashMap<usize, HashSet<String>>,
}

impl Redactor {
    pub fn new<'a>(private: impl IntoIterator<Item = &'a str>) -> Self {
        let mut runs: HashMap<usize, HashSet<String>> = HashMap::new();
        for text in private {
            let words: Vec<String> = words(text).into_iter().map(|(w, _)| w).collect();
            if words.is_empty() {
                continue;
            }
            let window = words.len().min(WINDOW);
            let set = runs.entry(window).or_default();
            for run in words.windows(window) {
                set.insert(run.join(" "));
            }
        }
        Self { runs }
    }

    /// `line` with every private fragment replaced by `[redacted]`.
    pub fn redact(&self, line: &str) -> String {
        let words = words(line);
        let mut hidden = vec![false; words.len()];
        for (&window, runs) in &self.runs {
            if words.len() < window {
                continue;
            }
            for start in 0..=words.len() - window {
                let run = words[start..start + window]
                    .iter()
                    .map(|(w, _)| w.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                if runs.contains(&run) {
                    hidden[start..start + window].fill(true);
                }
            }
        }
        let mut out = String::with_capacity(line.len());
        let mut copied = 0;
        let mut i = 0;
        while i < words.len() {
            if !hidden[i] {
                i += 1;
                continue;
            }
            let from = words[i].1.start;
            while i < words.len() && hidden[i] {
                i += 1;
            }
            let to = words[i - 1].1.end;
            out.push_str(&line[copied..from]);
            out.push_str(MARK);
            copied = to;
        }
        out.push_str(&line[copied..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMPT: &str = "a gentle lullaby for my daughter Ada who loves sailing boats at dawn";
    const LYRICS: &str = "[Verse]\nLittle boat upon the bay,\nsail me home at end of day";

    fn redactor() -> Redactor {
        Redactor::new([PROMPT, LYRICS])
    }

    #[test]
    fn an_echo_reformatted_is_hidden() {
        let line =
            "INFO prompt=\"A GENTLE lullaby -- for my daughter, Ada who loves SAILING\" len=77";
        let redacted = redactor().redact(line);
        assert_eq!(redacted, "INFO prompt=\"[redacted]\" len=77");
        let wrapped = "lyrics: little boat upon\nthe bay; sail me home at end";
        assert_eq!(redactor().redact(wrapped), "lyrics: [redacted]");
    }

    #[test]
    fn shorter_fragments_and_other_words_stay() {
        // Seven words of the prompt: below the window, kept.
        let line = "style: gentle lullaby for my daughter Ada who";
        assert_eq!(redactor().redact(line), line);
        let unrelated = "loading model weights (step 3 of 9), a gentle warm-up";
        assert_eq!(redactor().redact(unrelated), unrelated);
    }

    #[test]
    fn a_short_private_text_is_hidden_whole() {
        let redactor = Redactor::new(["secret song for Ada"]);
        assert_eq!(
            redactor.redact("got: Secret song, for ADA!"),
            "got: [redacted]!"
        );
        assert_eq!(redactor.redact("a secret song"), "a secret song");
    }

    #[test]
    fn nothing_private_changes_nothing() {
        assert_eq!(Redactor::new([""]).redact("all fine"), "all fine");
    }
}
