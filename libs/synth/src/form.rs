//! Song form: which sections, how many bars each, and the phrases inside them, fitted to
//! the requested duration on bar boundaries. The remainder becomes the closing tail.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::util::rng_for;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SectionKind {
    Intro,
    Verse,
    Chorus,
    Bridge,
    Break,
    Outro,
}

impl SectionKind {
    /// Sections that carry lyrics when the song has vocals.
    pub fn sung(self) -> bool {
        matches!(
            self,
            SectionKind::Verse | SectionKind::Chorus | SectionKind::Bridge
        )
    }
    pub fn name(self) -> &'static str {
        match self {
            SectionKind::Intro => "Intro",
            SectionKind::Verse => "Verse",
            SectionKind::Chorus => "Chorus",
            SectionKind::Bridge => "Bridge",
            SectionKind::Break => "Break",
            SectionKind::Outro => "Outro",
        }
    }
    fn energy(self) -> f32 {
        match self {
            SectionKind::Intro => 0.4,
            SectionKind::Verse => 0.6,
            SectionKind::Chorus => 0.9,
            SectionKind::Bridge => 0.55,
            SectionKind::Break => 0.5,
            SectionKind::Outro => 0.45,
        }
    }
}

/// One phrase: a line of lyrics (when sung) over a repeating melodic motif.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhrasePlan {
    /// First bar, relative to the section.
    pub start_bar: u32,
    pub bars: u32,
    /// Which motif of the section this phrase uses; equal letters sound alike.
    pub motif: u8,
    /// Target syllable count of the lyric line (0 when instrumental).
    pub syllables: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SectionPlan {
    pub kind: SectionKind,
    /// 1-based occurrence of this kind ("Verse 2").
    pub number: u32,
    /// "Verse 1", "Chorus", ...
    pub label: String,
    pub start_bar: u32,
    pub bars: u32,
    /// 0..1, drives arrangement density and dynamics.
    pub energy: f32,
    pub phrases: Vec<PhrasePlan>,
}

/// Motif letters of a section's phrases: A B A C, so every section has a hook that returns.
const MOTIF_PATTERN: [u8; 4] = [0, 1, 0, 2];

/// The tail left after the last bar for release and reverb, before the exact end.
pub fn tail_seconds(duration: u32) -> f32 {
    (duration as f32 * 0.06).clamp(0.5, 3.0)
}

/// Lays out the sections for a song of `duration` seconds with bars of `bar_seconds`.
pub fn fit_form(duration: u32, bar_seconds: f32, seed: u64) -> Vec<SectionPlan> {
    let usable = duration as f32 - tail_seconds(duration);
    let total = ((usable / bar_seconds.max(0.1)).floor() as u32).max(1);
    let layout = layout(total);
    let mut out: Vec<SectionPlan> = Vec::with_capacity(layout.len());
    let mut bar = 0;
    let last_chorus = layout.iter().rposition(|(k, _)| *k == SectionKind::Chorus);
    for (i, &(kind, bars)) in layout.iter().enumerate() {
        let number = out.iter().filter(|s| s.kind == kind).count() as u32 + 1;
        let label = match kind {
            SectionKind::Verse => format!("Verse {number}"),
            k => k.name().to_string(),
        };
        let energy = if Some(i) == last_chorus {
            1.0
        } else {
            kind.energy()
        };
        out.push(SectionPlan {
            kind,
            number,
            label,
            start_bar: bar,
            bars,
            energy,
            phrases: phrases(kind, bars, seed),
        });
        bar += bars;
    }
    out
}

/// Section kinds and lengths adding up to exactly `total` bars.
fn layout(total: u32) -> Vec<(SectionKind, u32)> {
    use SectionKind::*;
    if total < 4 {
        return vec![(Chorus, total)];
    }
    if total < 12 {
        let verse = ((total / 2) & !1).max(2);
        return vec![(Verse, verse), (Chorus, total - verse)];
    }
    let edge = if total >= 20 { 4 } else { 2 };
    let body = total - 2 * edge;
    const OPENING: [SectionKind; 6] = [Verse, Chorus, Verse, Chorus, Bridge, Chorus];
    const CYCLE: [SectionKind; 5] = [Break, Verse, Chorus, Bridge, Chorus];
    let mut seq: Vec<(SectionKind, u32)> = Vec::new();
    let mut used = 0;
    for i in 0.. {
        let kind = OPENING
            .get(i)
            .copied()
            .unwrap_or_else(|| CYCLE[(i - OPENING.len()) % CYCLE.len()]);
        if used + 8 > body {
            break;
        }
        seq.push((kind, 8));
        used += 8;
    }
    // A form must not end on a bridge or break: drop them and let the bars spread out.
    while seq.len() > 1 && matches!(seq.last(), Some((Bridge | Break | Verse, _))) {
        if let Some((_, b)) = seq.pop() {
            used -= b;
        }
    }
    if !seq.iter().any(|s| s.0 == Chorus) {
        let verse = ((body / 2) & !1).max(2);
        seq = vec![(Verse, verse), (Chorus, body - verse)];
        used = body;
    }
    let mut left = body - used;
    // Spread what is left: choruses first, then verses, four bars at a time up to 16.
    for wanted in [Chorus, Verse, Bridge] {
        for s in seq.iter_mut().filter(|s| s.0 == wanted) {
            if left >= 4 && s.1 + 4 <= 16 {
                s.1 += 4;
                left -= 4;
            }
        }
    }
    let (mut intro, mut outro) = (edge, edge);
    let extra_intro = (left / 2).min(8 - intro);
    intro += extra_intro;
    outro += left - extra_intro;
    let mut out = vec![(Intro, intro)];
    out.extend(seq);
    out.push((Outro, outro));
    out
}

fn phrases(kind: SectionKind, bars: u32, seed: u64) -> Vec<PhrasePlan> {
    let n = (bars / 2).max(1);
    (0..n)
        .map(|i| {
            let start_bar = 2 * i;
            let len = if i + 1 == n { bars - start_bar } else { 2 };
            let motif = MOTIF_PATTERN[(i % 4) as usize];
            let syllables = if kind.sung() {
                syllables_for(kind, motif, seed, len)
            } else {
                0
            };
            PhrasePlan {
                start_bar,
                bars: len,
                motif,
                syllables,
            }
        })
        .collect()
}

/// Syllable target of a motif: fixed per (kind, motif) so repeated motifs carry lines of
/// the same length, which is what makes verses and choruses sound parallel.
pub(crate) fn syllables_for(kind: SectionKind, motif: u8, seed: u64, bars: u32) -> u8 {
    let mut rng = rng_for(seed, &format!("syllables/{}/{motif}", kind.name()));
    let (lo, hi) = match kind {
        SectionKind::Chorus => (5, 8),
        _ => (6, 9),
    };
    let n: u8 = rng.random_range(lo..=hi);
    if bars < 2 { n.div_ceil(2).max(3) } else { n }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_sum_to_total() {
        for total in 1..400 {
            let l = layout(total);
            assert_eq!(l.iter().map(|x| x.1).sum::<u32>(), total, "{total}");
            assert!(l.iter().all(|x| x.1 > 0), "{total}: {l:?}");
            assert!(l.iter().any(|x| x.0 == SectionKind::Chorus), "{total}");
        }
    }
}
