//! Just enough English phonetics to sing: split words into syllables, guess each
//! syllable's vowel sound and its leading and trailing consonant. Spelling-based rules,
//! wrong now and then, always deterministic.

/// Vowel sounds with distinct formant positions (see `dsp::voice`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vowel {
    /// "father"
    A,
    /// "bed"
    E,
    /// "see"
    I,
    /// "sit"
    Ih,
    /// "go"
    O,
    /// "boot"
    U,
    /// "cup"
    Uh,
    /// "cat"
    Ae,
    /// "bird"
    Er,
}

/// Consonant classes, by how they are synthesised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Consonant {
    /// Hiss at a centre frequency: s, sh, f, th...
    Fricative { hz: f32, level: f32 },
    /// Short silence then a burst: p, t, k, b, d, g.
    Plosive { hz: f32 },
    /// Closed-mouth hum: m, n, ng.
    Nasal,
    /// Voiced glide from a vowel-like shape: l, r, w, y.
    Glide(Vowel),
    /// Breath through the vowel: h.
    Breath,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Syllable {
    pub text: String,
    pub onset: Option<Consonant>,
    pub vowel: Vowel,
    /// Second vowel of a diphthong ("my" = A then I).
    pub glide_to: Option<Vowel>,
    pub coda: Option<Consonant>,
}

fn is_vowel_at(chars: &[char], i: usize) -> bool {
    match chars[i] {
        'a' | 'e' | 'i' | 'o' | 'u' => true,
        // "y" is a vowel after a consonant ("sky", "melody"), a consonant at the start ("you").
        'y' => i > 0 && !matches!(chars[i - 1], 'a' | 'e' | 'i' | 'o' | 'u'),
        _ => false,
    }
}

/// Raw syllable parts (onset, nucleus, coda, long) of one word.
fn split(word: &str) -> Vec<(String, String, String, bool)> {
    let mut chars: Vec<char> = word
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphabetic())
        .collect();
    if chars.is_empty() {
        return Vec::new();
    }
    // Silent final e ("time", "love"), but not "the", "be" or the "-le" of "little".
    let mut magic = false;
    let n = chars.len();
    if n >= 3
        && chars[n - 1] == 'e'
        && !is_vowel_at(&chars, n - 2)
        && (0..n - 2).any(|i| is_vowel_at(&chars, i))
    {
        let le = chars[n - 2] == 'l' && n >= 4 && !is_vowel_at(&chars, n - 3);
        if !le {
            magic = n >= 4 && is_vowel_at(&chars, n - 3);
            chars.pop();
        }
    }
    // Vowel groups.
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if is_vowel_at(&chars, i) {
            let s = i;
            while i < chars.len() && is_vowel_at(&chars, i) {
                i += 1;
            }
            groups.push((s, i));
        } else {
            i += 1;
        }
    }
    if groups.is_empty() {
        let text: String = chars.iter().collect();
        return vec![(String::new(), text, String::new(), false)];
    }
    let mut out = Vec::with_capacity(groups.len());
    let mut onset_start = 0;
    for (g, &(s, e)) in groups.iter().enumerate() {
        let coda_end = match groups.get(g + 1) {
            // One consonant between vowels opens the syllable ("me-lo-dy"); more split.
            Some(&(next, _)) => {
                let between = next - e;
                if between <= 1 { e } else { e + 1 }
            }
            None => chars.len(),
        };
        let onset: String = chars[onset_start..s].iter().collect();
        let nucleus: String = chars[s..e].iter().collect();
        let coda: String = chars[e..coda_end].iter().collect();
        let last = g + 1 == groups.len();
        out.push((onset, nucleus, coda, last && magic));
        onset_start = coda_end;
    }
    out
}

/// Syllable count of a text, for fitting lyric lines to phrases.
pub fn count_syllables(text: &str) -> usize {
    text.split_whitespace().map(|w| split(w).len()).sum()
}

/// The singable syllables of a lyric line.
pub fn syllables(line: &str) -> Vec<Syllable> {
    let mut out = Vec::new();
    for word in line.split_whitespace() {
        let parts = split(word);
        let count = parts.len();
        for (onset, nucleus, coda, long) in parts {
            let (vowel, glide_to) = vowel_sound(&nucleus, &coda, long, count == 1);
            out.push(Syllable {
                text: format!("{onset}{nucleus}{coda}"),
                onset: consonant(&onset, true),
                vowel,
                glide_to,
                coda: consonant(&coda, false),
            });
        }
    }
    out
}

fn vowel_sound(nucleus: &str, coda: &str, long: bool, single: bool) -> (Vowel, Option<Vowel>) {
    use Vowel::*;
    if coda.starts_with("gh") && nucleus == "i" {
        return (A, Some(I)); // "night"
    }
    if coda.starts_with('r') && matches!(nucleus, "e" | "i" | "u" | "ea" | "ou") {
        return (Er, None); // "her", "bird", "turn", "heart" is close enough
    }
    match nucleus {
        "ee" | "ea" | "ie" | "ei" | "ey" => (I, None),
        "ai" | "ay" => (E, Some(I)),
        "oo" | "ue" | "ew" | "ui" => (U, None),
        "ou" | "ow" => (A, Some(U)),
        "oa" | "oe" => (O, Some(U)),
        "oi" | "oy" => (O, Some(I)),
        "au" | "aw" => (O, None),
        "y" if single => (A, Some(I)), // "my", "sky"
        "y" => (I, None),
        "a" if long => (E, Some(I)),
        "i" if long => (A, Some(I)),
        "o" if long => (O, Some(U)),
        "u" if long => (U, None),
        "e" if long => (I, None),
        "a" if coda.starts_with('r') || coda.starts_with('l') => (A, None),
        "a" => (Ae, None),
        "e" if single && coda.is_empty() => (I, None), // "me", "we", "be"
        "e" => (E, None),
        "i" => (Ih, None),
        "o" if coda.is_empty() => (O, Some(U)), // "go", "no"
        "o" => (A, None),
        "u" => (Uh, None),
        _ => (Uh, None),
    }
}

fn consonant(letters: &str, onset: bool) -> Option<Consonant> {
    use Consonant::*;
    let l = letters;
    // The consonant heard first at an onset, last at a coda.
    let key = if onset {
        l.get(..2).filter(|d| is_digraph(d)).or(l.get(..1))?
    } else {
        last_sound(l)?
    };
    Some(match key {
        "s" | "z" | "c" | "x" => Fricative {
            hz: 6500.0,
            level: 0.5,
        },
        "sh" | "ch" | "j" => Fricative {
            hz: 3000.0,
            level: 0.5,
        },
        "f" | "v" | "th" | "ph" => Fricative {
            hz: 5000.0,
            level: 0.18,
        },
        "p" | "b" => Plosive { hz: 900.0 },
        "t" | "d" => Plosive { hz: 4000.0 },
        "k" | "g" | "q" | "ck" => Plosive { hz: 2000.0 },
        "m" | "n" | "ng" => Nasal,
        "l" => Glide(Vowel::O),
        "r" => Glide(Vowel::Er),
        "w" | "wh" => Glide(Vowel::U),
        "y" => Glide(Vowel::I),
        "h" => Breath,
        _ => return None,
    })
}

fn is_digraph(d: &str) -> bool {
    matches!(d, "sh" | "ch" | "th" | "ph" | "wh" | "ck" | "ng")
}

fn last_sound(l: &str) -> Option<&str> {
    if l.len() >= 2 {
        let tail = &l[l.len() - 2..];
        if is_digraph(tail) {
            return Some(tail);
        }
        if tail == "gh" {
            return None; // "high", "though": silent
        }
    }
    l.get(l.len().checked_sub(1)?..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_syllables() {
        assert_eq!(count_syllables("melody"), 3);
        assert_eq!(count_syllables("time"), 1);
        assert_eq!(count_syllables("little"), 2);
        assert_eq!(count_syllables("the night is young"), 4);
        assert_eq!(count_syllables("underground"), 3);
        let s = syllables("my night");
        assert_eq!(s[0].vowel, Vowel::A);
        assert_eq!(s[1].onset, Some(Consonant::Nasal));
        assert_eq!(s[1].glide_to, Some(Vowel::I));
    }
}
