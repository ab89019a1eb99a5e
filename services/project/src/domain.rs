//! The pipeline's vocabulary: stage kinds and their DAG, and the states of stages,
//! runs and projects, with their spellings in Postgres and in the API.

use cadenza_proto::v1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StageKind {
    Lyrics,
    Composition,
    Arrangement,
    Vocals,
    Mix,
    Master,
}

impl StageKind {
    pub const ALL: [StageKind; 6] = [
        Self::Lyrics,
        Self::Composition,
        Self::Arrangement,
        Self::Vocals,
        Self::Mix,
        Self::Master,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lyrics => "lyrics",
            Self::Composition => "composition",
            Self::Arrangement => "arrangement",
            Self::Vocals => "vocals",
            Self::Mix => "mix",
            Self::Master => "master",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn proto(self) -> v1::StageKind {
        match self {
            Self::Lyrics => v1::StageKind::Lyrics,
            Self::Composition => v1::StageKind::Composition,
            Self::Arrangement => v1::StageKind::Arrangement,
            Self::Vocals => v1::StageKind::Vocals,
            Self::Mix => v1::StageKind::Mix,
            Self::Master => v1::StageKind::Master,
        }
    }

    /// The stages that must succeed (or be skipped) first.
    pub fn depends_on(self) -> &'static [StageKind] {
        match self {
            Self::Lyrics | Self::Composition => &[],
            Self::Arrangement => &[Self::Composition],
            Self::Vocals => &[Self::Lyrics, Self::Composition],
            Self::Mix => &[Self::Arrangement, Self::Vocals],
            Self::Master => &[Self::Mix],
        }
    }

    /// Whether a song needs this stage.
    pub fn needed(self, has_vocals: bool) -> bool {
        has_vocals || !matches!(self, Self::Lyrics | Self::Vocals)
    }

    /// Share of a run's expected cost, for weighting progress: rendering audio
    /// dominates, writing text is cheap.
    pub fn cost_weight(self) -> f32 {
        match self {
            Self::Lyrics => 0.04,
            Self::Composition => 0.06,
            Self::Arrangement => 0.08,
            Self::Vocals => 0.22,
            Self::Mix => 0.40,
            Self::Master => 0.20,
        }
    }
}

macro_rules! text_enum {
    ($name:ident { $($variant:ident = $text:literal => $proto:expr),* $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),* }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some(Self::$variant),)* _ => None }
            }
        }
    };
}

text_enum!(StageState {
    Pending = "pending" => v1::StageState::Pending,
    Queued = "queued" => v1::StageState::Queued,
    Running = "running" => v1::StageState::Running,
    Succeeded = "succeeded" => v1::StageState::Succeeded,
    Failed = "failed" => v1::StageState::Failed,
    Cancelled = "cancelled" => v1::StageState::Cancelled,
    Skipped = "skipped" => v1::StageState::Skipped,
});

impl StageState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Cancelled | Self::Skipped
        )
    }
    /// Done in a way that lets dependent stages start.
    pub fn satisfies_dependents(self) -> bool {
        matches!(self, Self::Succeeded | Self::Skipped)
    }
    pub fn proto(self) -> v1::StageState {
        match self {
            Self::Pending => v1::StageState::Pending,
            Self::Queued => v1::StageState::Queued,
            Self::Running => v1::StageState::Running,
            Self::Succeeded => v1::StageState::Succeeded,
            Self::Failed => v1::StageState::Failed,
            Self::Cancelled => v1::StageState::Cancelled,
            Self::Skipped => v1::StageState::Skipped,
        }
    }
}

text_enum!(RunState {
    Queued = "queued" => v1::RunState::Queued,
    Running = "running" => v1::RunState::Running,
    Succeeded = "succeeded" => v1::RunState::Succeeded,
    Failed = "failed" => v1::RunState::Failed,
    Cancelled = "cancelled" => v1::RunState::Cancelled,
});

impl RunState {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
    pub fn proto(self) -> v1::RunState {
        match self {
            Self::Queued => v1::RunState::Queued,
            Self::Running => v1::RunState::Running,
            Self::Succeeded => v1::RunState::Succeeded,
            Self::Failed => v1::RunState::Failed,
            Self::Cancelled => v1::RunState::Cancelled,
        }
    }
}

text_enum!(ProjectState {
    Draft = "draft" => (),
    Generating = "generating" => (),
    Ready = "ready" => (),
    Failed = "failed" => (),
    Cancelled = "cancelled" => (),
});

impl ProjectState {
    pub fn proto(self) -> v1::project::State {
        match self {
            Self::Draft => v1::project::State::Draft,
            Self::Generating => v1::project::State::Generating,
            Self::Ready => v1::project::State::Ready,
            Self::Failed => v1::project::State::Failed,
            Self::Cancelled => v1::project::State::Cancelled,
        }
    }

    /// The project follows its latest run.
    pub fn after_run(run: RunState) -> Self {
        match run {
            RunState::Queued | RunState::Running => Self::Generating,
            RunState::Succeeded => Self::Ready,
            RunState::Failed => Self::Failed,
            RunState::Cancelled => Self::Cancelled,
        }
    }
}

/// Maps an asset kind between the engine's file names and the API.
pub fn asset_kind_from_str(s: &str) -> v1::AssetKind {
    match s {
        "lyrics" => v1::AssetKind::Lyrics,
        "composition" => v1::AssetKind::Composition,
        "arrangement" => v1::AssetKind::Arrangement,
        "midi" => v1::AssetKind::Midi,
        "vocals" => v1::AssetKind::Vocals,
        "stem" => v1::AssetKind::Stem,
        "mix" => v1::AssetKind::Mix,
        "master" => v1::AssetKind::Master,
        "master_flac" => v1::AssetKind::MasterFlac,
        "preview" => v1::AssetKind::Preview,
        "peaks" => v1::AssetKind::Peaks,
        _ => v1::AssetKind::Unspecified,
    }
}

pub fn asset_kind_str(kind: v1::AssetKind) -> Option<&'static str> {
    Some(match kind {
        v1::AssetKind::Lyrics => "lyrics",
        v1::AssetKind::Composition => "composition",
        v1::AssetKind::Arrangement => "arrangement",
        v1::AssetKind::Midi => "midi",
        v1::AssetKind::Vocals => "vocals",
        v1::AssetKind::Stem => "stem",
        v1::AssetKind::Mix => "mix",
        v1::AssetKind::Master => "master",
        v1::AssetKind::MasterFlac => "master_flac",
        v1::AssetKind::Preview => "preview",
        v1::AssetKind::Peaks => "peaks",
        v1::AssetKind::Unspecified => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dag_is_acyclic_and_ends_in_master() {
        // Every dependency comes earlier in ALL, so ALL is a topological order.
        for (i, kind) in StageKind::ALL.iter().enumerate() {
            for dep in kind.depends_on() {
                let j = StageKind::ALL.iter().position(|k| k == dep).expect("known");
                assert!(j < i, "{kind:?} depends on later {dep:?}");
            }
        }
        let total: f32 = StageKind::ALL.iter().map(|k| k.cost_weight()).sum();
        assert!((total - 1.0).abs() < 1e-6);
    }

    #[test]
    fn spellings_round_trip() {
        for kind in StageKind::ALL {
            assert_eq!(StageKind::parse(kind.as_str()), Some(kind));
        }
        for state in [
            "pending",
            "queued",
            "running",
            "succeeded",
            "failed",
            "cancelled",
            "skipped",
        ] {
            assert_eq!(
                StageState::parse(state).map(StageState::as_str),
                Some(state)
            );
        }
        assert!(!StageKind::Vocals.needed(false));
        for kind in [
            v1::AssetKind::Lyrics,
            v1::AssetKind::Midi,
            v1::AssetKind::Stem,
            v1::AssetKind::Master,
            v1::AssetKind::MasterFlac,
            v1::AssetKind::Preview,
            v1::AssetKind::Peaks,
        ] {
            let text = asset_kind_str(kind).expect("named");
            assert_eq!(asset_kind_from_str(text), kind);
        }
        assert!(StageKind::Mix.needed(false));
    }
}
