//! The song plan: every decision that can be made from the request alone (genre, tempo,
//! key, instruments, form, phrase lengths). Lyrics and composition run in parallel, so
//! both call [`plan`] and must reach the same answer: it is a pure function of the request.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::api::{SongRequest, SynthError};
use crate::form::{self, SectionPlan};
use crate::prompt;
use crate::util::{lerp, pick, rng_for};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Genre {
    Ambient,
    LoFi,
    Pop,
    Rock,
    House,
    Techno,
    HipHop,
    Jazz,
    Folk,
    Cinematic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Major,
    Minor,
    Dorian,
    Mixolydian,
}

impl Mode {
    /// Semitone offsets of the seven scale degrees.
    pub fn scale(self) -> [u8; 7] {
        match self {
            Mode::Major => [0, 2, 4, 5, 7, 9, 11],
            Mode::Minor => [0, 2, 3, 5, 7, 8, 10],
            Mode::Dorian => [0, 2, 3, 5, 7, 9, 10],
            Mode::Mixolydian => [0, 2, 4, 5, 7, 9, 10],
        }
    }
    pub fn is_minor(self) -> bool {
        matches!(self, Mode::Minor | Mode::Dorian)
    }
}

/// The sound sources the mixer knows. The arrangement names one per part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Instrument {
    Piano,
    EPiano,
    Organ,
    Pad,
    Strings,
    Guitar,
    Pluck,
    SawLead,
    SquareLead,
    Bell,
    Flute,
    SubBass,
    Bass808,
    SynthBass,
    PickBass,
    Upright,
    Drums,
}

impl Instrument {
    /// General MIDI program number, so the MIDI file sounds close in any player.
    pub fn gm_program(self) -> u8 {
        match self {
            Instrument::Piano => 0,
            Instrument::EPiano => 4,
            Instrument::Organ => 16,
            Instrument::Pad => 89,
            Instrument::Strings => 48,
            Instrument::Guitar => 25,
            Instrument::Pluck => 46,
            Instrument::SawLead => 81,
            Instrument::SquareLead => 80,
            Instrument::Bell => 14,
            Instrument::Flute => 73,
            Instrument::SubBass | Instrument::Bass808 => 38,
            Instrument::SynthBass => 39,
            Instrument::PickBass => 34,
            Instrument::Upright => 32,
            Instrument::Drums => 0,
        }
    }
}

/// Numbers that characterise a genre; the neutral profile is what style_strength 0 sounds like.
#[derive(Debug, Clone, Copy)]
struct Profile {
    tempo: f32,
    minor: bool,
    swing: f32,
    reverb: f32,
    brightness: f32,
    drums: f32,
    harmony: Instrument,
    lead: Instrument,
    bass: Instrument,
}

const NEUTRAL: Profile = Profile {
    tempo: 110.0,
    minor: false,
    swing: 0.0,
    reverb: 0.2,
    brightness: 0.6,
    drums: 1.0,
    harmony: Instrument::Piano,
    lead: Instrument::Pluck,
    bass: Instrument::SynthBass,
};

fn profile(g: Genre) -> Profile {
    use Instrument as I;
    let p = |tempo, minor, swing, reverb, brightness, drums, harmony, lead, bass| Profile {
        tempo,
        minor,
        swing,
        reverb,
        brightness,
        drums,
        harmony,
        lead,
        bass,
    };
    match g {
        Genre::Ambient => p(
            72.0,
            false,
            0.0,
            0.5,
            0.35,
            0.0,
            I::Pad,
            I::Bell,
            I::SubBass,
        ),
        Genre::LoFi => p(
            80.0,
            false,
            0.55,
            0.25,
            0.3,
            0.8,
            I::EPiano,
            I::Bell,
            I::Upright,
        ),
        Genre::Pop => p(
            112.0,
            false,
            0.0,
            0.2,
            0.65,
            1.0,
            I::Piano,
            I::Pluck,
            I::SynthBass,
        ),
        Genre::Rock => p(
            128.0,
            false,
            0.0,
            0.15,
            0.75,
            1.0,
            I::Guitar,
            I::SquareLead,
            I::PickBass,
        ),
        Genre::House => p(
            124.0,
            true,
            0.0,
            0.2,
            0.7,
            1.0,
            I::Organ,
            I::SawLead,
            I::SynthBass,
        ),
        Genre::Techno => p(
            130.0,
            true,
            0.0,
            0.25,
            0.6,
            1.0,
            I::Pad,
            I::SquareLead,
            I::SynthBass,
        ),
        Genre::HipHop => p(
            88.0,
            true,
            0.35,
            0.12,
            0.45,
            1.0,
            I::EPiano,
            I::Bell,
            I::Bass808,
        ),
        Genre::Jazz => p(
            126.0,
            false,
            0.66,
            0.2,
            0.45,
            0.7,
            I::Piano,
            I::Flute,
            I::Upright,
        ),
        Genre::Folk => p(
            100.0,
            false,
            0.0,
            0.2,
            0.5,
            0.6,
            I::Guitar,
            I::Flute,
            I::PickBass,
        ),
        Genre::Cinematic => p(
            88.0,
            true,
            0.0,
            0.45,
            0.5,
            0.6,
            I::Strings,
            I::Strings,
            I::SubBass,
        ),
    }
}

/// The whole plan. Serialised into `composition.json` so later stages use the same one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub genre: Genre,
    /// Whether the prompt named the genre (otherwise pop is assumed).
    pub genre_detected: bool,
    pub style_strength: f32,
    pub tempo_bpm: u32,
    pub beats_per_bar: u32,
    /// Pitch class of the tonic, 0 = C.
    pub key_root: u8,
    pub mode: Mode,
    /// 0 = straight eighths, 1 = full triplet swing.
    pub swing: f32,
    /// Reverb send level, 0..1.
    pub reverb: f32,
    /// Filter brightness, 0..1.
    pub brightness: f32,
    /// Drum level, 0 = no drums.
    pub drums: f32,
    pub harmony: Instrument,
    pub lead: Instrument,
    pub bass: Instrument,
    pub keywords: Vec<String>,
    pub duration_seconds: u32,
    pub total_bars: u32,
    pub form: Vec<SectionPlan>,
}

impl Plan {
    pub fn seconds_per_beat(&self) -> f64 {
        60.0 / f64::from(self.tempo_bpm.max(1))
    }
    pub fn total_beats(&self) -> f64 {
        f64::from(self.total_bars * self.beats_per_bar)
    }
    /// "D minor", "Bb major".
    pub fn key_name(&self) -> String {
        const NAMES: [&str; 12] = [
            "C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B",
        ];
        let mode = match self.mode {
            Mode::Major => "major",
            Mode::Minor => "minor",
            Mode::Dorian => "dorian",
            Mode::Mixolydian => "mixolydian",
        };
        format!("{} {mode}", NAMES[usize::from(self.key_root % 12)])
    }
}

/// Derives the plan from the request. Same request, same plan, on any worker.
pub fn plan(request: &SongRequest) -> Result<Plan, SynthError> {
    crate::validate::validate(request)?;
    let info = prompt::parse(&request.prompt);
    let mut rng = rng_for(request.seed, "plan");
    let s = request.style_strength;
    let genre = info.genre.unwrap_or(Genre::Pop);
    let g = profile(genre);
    // Discrete choices (instruments) follow the genre once the style is asked for at all;
    // continuous ones (tempo, swing, reverb, ...) blend smoothly from neutral.
    let idiomatic = s >= 0.35;
    let pickp = |genre_choice: Instrument, neutral: Instrument| {
        if idiomatic { genre_choice } else { neutral }
    };

    let tempo = match info.bpm {
        Some(bpm) => bpm as f32,
        None => {
            let jitter = rng.random_range(-4.0f32..=4.0);
            (lerp(NEUTRAL.tempo, g.tempo, s) + jitter) * info.tempo_factor
        }
    };
    let tempo_bpm = tempo.round().clamp(40.0, 220.0) as u32;
    let mode = info.mode.unwrap_or(if g.minor && s >= 0.25 {
        Mode::Minor
    } else {
        Mode::Major
    });
    const COMMON_ROOTS: [u8; 9] = [0, 2, 4, 5, 7, 9, 10, 3, 8];
    let key_root = info
        .key_root
        .unwrap_or_else(|| *pick(&mut rng, &COMMON_ROOTS));

    let beats_per_bar = 4;
    let bar_seconds = 60.0 / tempo_bpm as f32 * beats_per_bar as f32;
    let sections = form::fit_form(request.duration_seconds, bar_seconds, request.seed);
    let total_bars = sections.iter().map(|x| x.bars).sum();

    Ok(Plan {
        genre,
        genre_detected: info.genre.is_some(),
        style_strength: s,
        tempo_bpm,
        beats_per_bar,
        key_root,
        mode,
        swing: lerp(NEUTRAL.swing, g.swing, s),
        reverb: lerp(NEUTRAL.reverb, g.reverb, s),
        brightness: lerp(NEUTRAL.brightness, g.brightness, s),
        drums: lerp(NEUTRAL.drums, g.drums, s),
        harmony: info.harmony.unwrap_or(pickp(g.harmony, NEUTRAL.harmony)),
        lead: info.lead.unwrap_or(pickp(g.lead, NEUTRAL.lead)),
        bass: info.bass.unwrap_or(pickp(g.bass, NEUTRAL.bass)),
        keywords: info.keywords,
        duration_seconds: request.duration_seconds,
        total_bars,
        form: sections,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(prompt: &str, secs: u32) -> SongRequest {
        SongRequest {
            prompt: prompt.into(),
            duration_seconds: secs,
            has_vocals: true,
            style_strength: 0.8,
            seed: 7,
            lyrics: None,
        }
    }

    #[test]
    fn prompt_drives_the_plan() -> Result<(), SynthError> {
        let p = plan(&req("melancholic folk song at 92 bpm in D minor", 60))?;
        assert_eq!(p.tempo_bpm, 92);
        assert_eq!((p.key_root, p.mode), (2, Mode::Minor));
        assert_eq!(p.genre, Genre::Folk);
        assert_eq!(p.key_name(), "D minor");
        let fast = plan(&req("fast techno", 60))?;
        let slow = plan(&req("slow techno", 60))?;
        assert!(fast.tempo_bpm > slow.tempo_bpm + 30);
        assert_eq!(plan(&req("ambient", 60))?.drums, lerp(1.0, 0.0, 0.8));
        Ok(())
    }

    #[test]
    fn form_fits_the_duration() -> Result<(), SynthError> {
        for secs in [5, 7, 10, 30, 61, 180, 600] {
            for prompt in ["slow ambient at 40 bpm", "pop", "fast techno at 220 bpm"] {
                let p = plan(&req(prompt, secs))?;
                let bar = p.seconds_per_beat() * 4.0;
                let used = f64::from(p.total_bars) * bar;
                assert!(p.total_bars >= 1);
                assert!(
                    used <= f64::from(secs) || p.total_bars == 1,
                    "{prompt} {secs}: {used}"
                );
                let mut bar_at = 0;
                for s in &p.form {
                    assert_eq!(s.start_bar, bar_at);
                    bar_at += s.bars;
                }
            }
        }
        Ok(())
    }

    #[test]
    fn bad_requests_are_rejected() {
        for (d, s) in [(0, 0.5), (601, 0.5), (30, -0.1), (30, 1.5), (30, f32::NAN)] {
            let mut r = req("pop", d);
            r.style_strength = s;
            assert!(matches!(plan(&r), Err(SynthError::InvalidRequest(_))));
        }
    }
}
