//! Word banks for generated lyrics. Lines are built as
//! `<opening> the [<colour>] <rhyme noun>`, which stays grammatical for every combination.

/// Phrases that lead into "the ...".
pub const OPENINGS: &[&str] = &[
    "we are dancing in",
    "I keep running to",
    "you were shining like",
    "hold me closer to",
    "we were born under",
    "I can hear",
    "lost inside",
    "take me back to",
    "nothing's stopping",
    "we light up",
    "I'm still waiting for",
    "you and I against",
    "follow me into",
    "reaching for",
    "everybody's singing to",
    "I remember",
    "we keep holding on to",
    "don't let go of",
    "calling from",
    "running through",
    "we come alive in",
    "I found you in",
    "tell me about",
    "dreaming of",
    "we will never leave",
    "carry me across",
    "I see you in",
    "walking down",
];

/// Short openings for chorus hooks.
pub const HOOKS: &[&str] = &[
    "oh",
    "into",
    "we are",
    "chasing",
    "hold on to",
    "take me to",
    "we belong to",
    "here comes",
];

/// Rhyme families of nouns that can follow "the".
pub const RHYMES: &[&[&str]] = &[
    &["night", "light", "flight", "sight"],
    &["fire", "wire", "choir", "spire"],
    &["rain", "train", "lane", "chain"],
    &["day", "way", "bay", "display"],
    &["sea", "tree", "key", "melody"],
    &["stars", "cars", "bars", "guitars"],
    &["dream", "stream", "beam", "team"],
    &["town", "crown", "gown", "sundown"],
    &["heart", "start", "art", "chart"],
    &["glow", "snow", "show", "radio"],
    &["tide", "ride", "side", "divide"],
    &["sound", "ground", "underground", "merry-go-round"],
    &["sky", "lullaby", "butterfly", "firefly"],
];

/// Themes: (trigger words in the prompt, colour words).
pub const THEMES: &[(&[&str], &[&str])] = &[
    (
        &["love", "heart", "romance", "romantic", "kiss"],
        &[
            "golden", "tender", "secret", "burning", "gentle", "restless",
        ],
    ),
    (
        &["night", "city", "neon", "midnight", "street", "urban"],
        &["neon", "midnight", "city", "electric", "silver", "empty"],
    ),
    (
        &["summer", "sun", "beach", "sunny", "holiday"],
        &["summer", "golden", "burning", "sunlit", "wild", "careless"],
    ),
    (
        &["ocean", "sea", "waves", "sail", "island"],
        &["ocean", "salty", "endless", "deep", "blue", "silver"],
    ),
    (
        &["rain", "storm", "grey", "gray", "winter", "cold"],
        &["falling", "gray", "quiet", "heavy", "winter", "cold"],
    ),
    (
        &["road", "drive", "highway", "travel", "journey", "car"],
        &["open", "dusty", "highway", "endless", "lonely", "distant"],
    ),
    (
        &["space", "stars", "dream", "dreams", "sky", "cosmic"],
        &[
            "starlit", "distant", "hollow", "sleeping", "velvet", "cosmic",
        ],
    ),
];

/// Colour words when the prompt names no theme.
pub const DEFAULT_COLOURS: &[&str] = &[
    "golden", "endless", "silver", "wild", "quiet", "burning", "distant", "open",
];
