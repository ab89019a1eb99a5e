//! One-bar rhythm patterns per genre, written as 16 sixteenth-note steps:
//! `X` accent, `x` normal, `o` ghost, `.` rest. Drums use General MIDI note numbers.

use crate::plan::Genre;

pub const KICK: u8 = 36;
pub const RIM: u8 = 37;
pub const SNARE: u8 = 38;
pub const CLAP: u8 = 39;
pub const HAT: u8 = 42;
pub const LOW_TOM: u8 = 45;
pub const OPEN_HAT: u8 = 46;
pub const MID_TOM: u8 = 47;
pub const CRASH: u8 = 49;
pub const HIGH_TOM: u8 = 50;
pub const RIDE: u8 = 51;
pub const SHAKER: u8 = 70;

/// A drum pattern: (GM note, steps).
pub type DrumPattern = &'static [(u8, &'static str)];

/// The full-energy groove of a genre.
pub fn drums(genre: Genre) -> DrumPattern {
    match genre {
        Genre::Pop => &[
            (KICK, "x.......x.x....."),
            (SNARE, "....X.......X..."),
            (HAT, "x.x.x.x.x.x.x.x."),
        ],
        Genre::Rock => &[
            (KICK, "x.....x.x......."),
            (SNARE, "....X.......X..."),
            (HAT, "x.x.x.x.x.x.x.x."),
        ],
        Genre::House => &[
            (KICK, "X...X...X...X..."),
            (CLAP, "....x.......x..."),
            (OPEN_HAT, "..x...x...x...x."),
            (HAT, "o.o.o.o.o.o.o.o."),
        ],
        Genre::Techno => &[
            (KICK, "X...X...X...X..."),
            (OPEN_HAT, "..x...x...x...x."),
            (HAT, "oxoxoxoxoxoxoxox"),
            (RIM, "...x..x....x..x."),
        ],
        Genre::HipHop => &[
            (KICK, "X......x.xx....."),
            (SNARE, "....X.......X..."),
            (HAT, "x.x.x.x.x.xox.x."),
        ],
        Genre::LoFi => &[
            // Boom-bap: the second kick on a sixteenth, so the groove leans on the
            // backbeat instead of filling every eighth.
            (KICK, "x......x..x....."),
            (SNARE, "....x.......x..."),
            (HAT, "x.xox.x.x.xox.x."),
        ],
        Genre::Jazz => &[
            (RIDE, "x...x.x.x...x.x."),
            (HAT, "....x.......x..."),
            (KICK, "o...o...o...o..."),
        ],
        Genre::Folk => &[
            (KICK, "x.......x......."),
            (RIM, "....x.......x..."),
            (SHAKER, "xoxoxoxoxoxoxoxo"),
        ],
        Genre::Cinematic => &[
            (KICK, "X..............."),
            (LOW_TOM, "x.....x...x....."),
            (MID_TOM, "..........x.x..."),
        ],
        Genre::Ambient => &[(KICK, "x.......x......."), (SHAKER, "..x...x...x...x.")],
    }
}

/// What style_strength 0 plays: a plain backbeat.
pub const NEUTRAL_DRUMS: DrumPattern = &[
    (KICK, "x.......x.x....."),
    (SNARE, "....x.......x..."),
    (HAT, "x.x.x.x.x.x.x.x."),
];

/// Bass line shapes: `r` root, `f` fifth, `o` octave; each note lasts until the next.
pub fn bass(genre: Genre) -> &'static str {
    match genre {
        Genre::Pop | Genre::Rock => "r.r.r.r.r.r.r.r.",
        Genre::House => "..r...r...r...r.",
        Genre::Techno => "..rr..rr..rr..rr",
        Genre::HipHop => "r......r.r......",
        Genre::LoFi => "r.....f...r.....",
        Genre::Folk => "r.......f.......",
        Genre::Ambient | Genre::Cinematic => "r...............",
        // Jazz walks; see `arrange::walking_bass`.
        Genre::Jazz => "r...r...r...r...",
    }
}

pub const NEUTRAL_BASS: &str = "r.....r.r.......";

/// Harmony rhythm: when chords are struck (`x`), or `-` for one held chord per change.
pub fn comping(genre: Genre) -> &'static str {
    match genre {
        Genre::House => "..x...x...x...x.",
        Genre::Techno | Genre::Ambient | Genre::Cinematic => "-",
        Genre::Jazz => "x.....x.........",
        Genre::LoFi | Genre::HipHop => "x.....x.........",
        Genre::Rock => "x.x.x.x.x.x.x.x.",
        Genre::Folk => "x.x.xx.xx.x.xx.x",
        Genre::Pop => "x...x...x...x...",
    }
}

/// Velocity of a drum step character, or `None` for a rest.
pub fn step_velocity(c: u8) -> Option<u8> {
    match c {
        b'X' => Some(112),
        b'x' => Some(92),
        b'o' => Some(56),
        _ => None,
    }
}
