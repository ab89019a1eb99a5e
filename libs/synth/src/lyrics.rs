//! Lyrics: generated from the plan (rhyming lines of the planned syllable counts, one per
//! phrase), or the user's own text verbatim. Also reads lyrics back for the vocal stage.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::form::{SectionKind, SectionPlan};
use crate::phonetics::count_syllables;
use crate::plan::Plan;
use crate::util::{pick, rng_for};
use crate::words;

/// The lyrics stage's text.
pub fn lyrics_text(plan: &Plan, seed: u64, user: Option<&str>) -> String {
    if let Some(text) = user.filter(|t| !t.trim().is_empty()) {
        return text.to_string();
    }
    let colours = colours(plan, seed);
    let mut out = String::new();
    // Lines the verses and bridges have sung so far: a later one does not repeat them.
    let mut sung: Vec<String> = Vec::new();
    for section in plan.form.iter().filter(|s| s.kind.sung()) {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("[{}]\n", section.label));
        for line in section_lines(section, seed, &colours, &mut sung) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// Colour words: the prompt's own content words first, then the theme's.
fn colours(plan: &Plan, seed: u64) -> Vec<String> {
    let mut rng = rng_for(seed, "lyrics/theme");
    let theme = words::THEMES
        .iter()
        .find(|(triggers, _)| plan.keywords.iter().any(|k| triggers.contains(&k.as_str())))
        .map(|t| t.1)
        .unwrap_or_else(|| {
            if rng.random_bool(0.5) {
                words::DEFAULT_COLOURS
            } else {
                pick(&mut rng, words::THEMES).1
            }
        });
    let mut out: Vec<String> = plan
        .keywords
        .iter()
        .filter(|k| k.len() <= 9)
        .take(3)
        .cloned()
        .collect();
    out.extend(theme.iter().map(|s| s.to_string()));
    out
}

/// One line per phrase. Every chorus gets the same words (the salt has no number, and
/// it ignores `sung`); each verse gets its own, avoiding the lines in `sung` (the
/// verses' and bridges' so far), to which it adds its own.
fn section_lines(
    section: &SectionPlan,
    seed: u64,
    colours: &[String],
    sung: &mut Vec<String>,
) -> Vec<String> {
    let salt = match section.kind {
        SectionKind::Verse => format!("lyrics/{}", section.label),
        k => format!("lyrics/{}", k.name()),
    };
    let mut rng = rng_for(seed, &salt);
    let mut lines = Vec::with_capacity(section.phrases.len());
    let mut family: &[&str] = &[];
    let mut used: Vec<&str> = Vec::new();
    let mut hook = String::new();
    for (i, phrase) in section.phrases.iter().enumerate() {
        let target = usize::from(phrase.syllables.max(3));
        let chorus = section.kind == SectionKind::Chorus;
        // Verses rhyme in couplets (AABB); a chorus is hook, B, hook, B.
        if (chorus && i <= 1) || (!chorus && i % 2 == 0) {
            family = *pick(&mut rng, words::RHYMES);
        }
        if section.kind == SectionKind::Chorus && i % 2 == 0 && !hook.is_empty() {
            lines.push(hook.clone());
            continue;
        }
        let rhyme = family
            .iter()
            .find(|w| !used.contains(w))
            .or(family.first())
            .copied()
            .unwrap_or("night");
        used.push(rhyme);
        let line = if chorus && i == 0 {
            build_line(&mut rng, words::HOOKS, colours, rhyme, target, &[])
        } else if chorus {
            build_line(&mut rng, words::OPENINGS, colours, rhyme, target, &[])
        } else {
            let line = build_line(&mut rng, words::OPENINGS, colours, rhyme, target, sung);
            sung.push(line.clone());
            line
        };
        if section.kind == SectionKind::Chorus && i == 0 {
            hook = line.clone();
        }
        lines.push(line);
    }
    lines
}

/// Tries a handful of openings and colours and keeps the line closest to `target`
/// syllables, preferring any line not in `avoid` to one that is.
fn build_line(
    rng: &mut ChaCha8Rng,
    openings: &[&str],
    colours: &[String],
    rhyme: &str,
    target: usize,
    avoid: &[String],
) -> String {
    let mut best = String::new();
    let mut best_err = (true, usize::MAX);
    for _ in 0..12 {
        let opening = pick(rng, openings);
        let colour = if colours.is_empty() || rng.random_bool(0.25) {
            None
        } else {
            Some(pick(rng, colours))
        };
        let line = match colour {
            Some(c) => format!("{opening} the {c} {rhyme}"),
            None => format!("{opening} the {rhyme}"),
        };
        let syllables = count_syllables(&line);
        let line = capitalise(&line);
        let err = (avoid.contains(&line), syllables.abs_diff(target));
        if err < best_err {
            best_err = err;
            best = line;
        }
    }
    best
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A labelled block of lyric lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub kind: Option<SectionKind>,
    pub lines: Vec<String>,
}

/// Splits lyrics into blocks at `[Label]` lines and blank lines.
pub fn parse_blocks(text: &str) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut current = Block {
        kind: None,
        lines: Vec::new(),
    };
    let mut labelled = false;
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with('[') && line.ends_with(']') {
            if !current.lines.is_empty() || labelled {
                blocks.push(std::mem::replace(
                    &mut current,
                    Block {
                        kind: None,
                        lines: Vec::new(),
                    },
                ));
            }
            current.kind = label_kind(line);
            labelled = true;
        } else if line.is_empty() {
            if !current.lines.is_empty() {
                blocks.push(std::mem::replace(
                    &mut current,
                    Block {
                        kind: None,
                        lines: Vec::new(),
                    },
                ));
                labelled = false;
            }
        } else {
            current.lines.push(line.to_string());
        }
    }
    if !current.lines.is_empty() {
        blocks.push(current);
    }
    blocks.retain(|b| !b.lines.is_empty());
    blocks
}

fn label_kind(label: &str) -> Option<SectionKind> {
    let l = label.to_lowercase();
    if l.contains("pre") {
        None
    } else if l.contains("chorus") || l.contains("hook") || l.contains("refrain") {
        Some(SectionKind::Chorus)
    } else if l.contains("verse") {
        Some(SectionKind::Verse)
    } else if l.contains("bridge") || l.contains("middle") {
        Some(SectionKind::Bridge)
    } else {
        None
    }
}

/// The lyric text for each phrase of a sung section, for sections given as (kind, phrase
/// count) in song order. Labelled blocks go to sections of their kind (the n-th verse
/// block to the n-th verse, choruses repeat); unlabelled blocks fill the rest in order.
pub fn assign(blocks: &[Block], sections: &[(SectionKind, usize)]) -> Vec<Vec<String>> {
    let mut cursor = 0usize;
    let mut seen: Vec<SectionKind> = Vec::new();
    let mut out = Vec::with_capacity(sections.len());
    for &(kind, phrases) in sections {
        let nth = seen.iter().filter(|k| **k == kind).count();
        seen.push(kind);
        let same: Vec<&Block> = blocks.iter().filter(|b| b.kind == Some(kind)).collect();
        let block = if !same.is_empty() {
            same.get(nth % same.len()).copied()
        } else if !blocks.is_empty() {
            let others: Vec<&Block> = blocks.iter().filter(|b| b.kind.is_none()).collect();
            let pool = if others.is_empty() {
                blocks.iter().collect()
            } else {
                others
            };
            let b = pool.get(cursor % pool.len()).copied();
            cursor += 1;
            b
        } else {
            None
        };
        let lines = block.map(|b| b.lines.as_slice()).unwrap_or(&[]);
        out.push(spread(lines, phrases));
    }
    out
}

/// Fits `lines` onto `phrases` phrases: extra lines share a phrase, missing ones repeat.
fn spread(lines: &[String], phrases: usize) -> Vec<String> {
    if lines.is_empty() {
        return vec![String::new(); phrases];
    }
    (0..phrases)
        .map(|p| {
            if lines.len() <= phrases {
                lines[p % lines.len()].clone()
            } else {
                let a = p * lines.len() / phrases;
                let b = (p + 1) * lines.len() / phrases;
                lines[a..b.max(a + 1)].join(" ")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verses_do_not_repeat_lines_and_choruses_do() {
        let request = crate::api::SongRequest {
            prompt: "pop song about the sea".into(),
            duration_seconds: 300,
            has_vocals: true,
            style_strength: 0.8,
            seed: 7,
            lyrics: None,
        };
        let plan = crate::plan::plan(&request).expect("plan");
        let text = lyrics_text(&plan, 7, None);
        let blocks = parse_blocks(&text);
        let verses: Vec<&String> = blocks
            .iter()
            .filter(|b| b.kind == Some(SectionKind::Verse))
            .flat_map(|b| &b.lines)
            .collect();
        assert!(verses.len() >= 8, "{text}");
        for (i, line) in verses.iter().enumerate() {
            assert!(!verses[..i].contains(line), "repeated {line:?} in\n{text}");
        }
        let choruses: Vec<&Vec<String>> = blocks
            .iter()
            .filter(|b| b.kind == Some(SectionKind::Chorus))
            .map(|b| &b.lines)
            .collect();
        assert!(choruses.len() >= 2, "{text}");
        // Choruses repeat word for word (a longer last chorus sings on past the end).
        for c in &choruses {
            let n = c.len().min(choruses[0].len());
            assert_eq!(c[..n], choruses[0][..n], "{text}");
        }
    }

    #[test]
    fn blocks_and_assignment() {
        let text = "[Verse 1]\na\nb\n\n[Chorus]\nc\nd\n\n[Verse 2]\ne\nf\n";
        let blocks = parse_blocks(text);
        assert_eq!(blocks.len(), 3);
        let sections = [
            (SectionKind::Verse, 2),
            (SectionKind::Chorus, 4),
            (SectionKind::Verse, 1),
            (SectionKind::Chorus, 2),
        ];
        let got = assign(&blocks, &sections);
        assert_eq!(got[0], ["a", "b"]);
        assert_eq!(got[1], ["c", "d", "c", "d"]);
        assert_eq!(got[2], ["e f"]);
        assert_eq!(got[3], ["c", "d"]);
        let plain = parse_blocks("one\ntwo\nthree");
        assert_eq!(
            assign(&plain, &[(SectionKind::Verse, 1)])[0],
            ["one two three"]
        );
    }
}
