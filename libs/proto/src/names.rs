//! Resource names of the public API, parsed into ids.
//!
//! Names are the only way callers refer to resources, so they are parsed once at
//! the edge and the inside of a service handles typed ids from then on.

use uuid::Uuid;

/// A name that does not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` is not a valid {expected} name: expected `{pattern}`")]
pub struct NameError {
    pub name: String,
    pub expected: &'static str,
    pub pattern: &'static str,
}

/// Longest name accepted, to bound the work of parsing hostile input.
const MAX_NAME_LEN: usize = 256;

fn segments<'a>(
    name: &'a str,
    expected: &'static str,
    pattern: &'static str,
) -> Result<Vec<&'a str>, NameError> {
    if name.len() > MAX_NAME_LEN {
        return Err(error(name, expected, pattern));
    }
    Ok(name.split('/').collect())
}

fn error(name: &str, expected: &'static str, pattern: &'static str) -> NameError {
    let shown: String = name.chars().take(80).collect();
    NameError {
        name: shown,
        expected,
        pattern,
    }
}

fn parse_uuid(segment: &str) -> Option<Uuid> {
    // Only the canonical hyphenated form: one spelling per resource.
    if segment.len() != 36 {
        return None;
    }
    Uuid::parse_str(segment).ok()
}

macro_rules! single_name {
    ($ty:ident, $collection:literal, $what:literal) => {
        #[doc = concat!("`", $collection, "/{uuid}`")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $ty(pub Uuid);

        impl $ty {
            pub const PATTERN: &'static str = concat!($collection, "/{uuid}");

            pub fn parse(name: &str) -> Result<Self, NameError> {
                let parts = segments(name, $what, Self::PATTERN)?;
                match parts.as_slice() {
                    [$collection, id] => parse_uuid(id)
                        .map(Self)
                        .ok_or_else(|| error(name, $what, Self::PATTERN)),
                    _ => Err(error(name, $what, Self::PATTERN)),
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!($collection, "/{}"), self.0)
            }
        }
    };
}

single_name!(ProjectName, "projects", "project");
single_name!(TrackName, "tracks", "track");
single_name!(JobName, "jobs", "job");

/// A resource inside a project: `projects/{p}/{collection}/{id}`.
macro_rules! project_child_name {
    ($ty:ident, $collection:literal, $what:literal, $field:ident) => {
        #[doc = concat!("`projects/{p}/", $collection, "/{id}`")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $ty {
            pub project: Uuid,
            pub $field: Uuid,
        }

        impl $ty {
            pub const PATTERN: &'static str = concat!("projects/{uuid}/", $collection, "/{uuid}");

            pub fn parse(name: &str) -> Result<Self, NameError> {
                let parts = segments(name, $what, Self::PATTERN)?;
                let ids = match parts.as_slice() {
                    ["projects", project, $collection, id] => {
                        parse_uuid(project).zip(parse_uuid(id))
                    }
                    _ => None,
                };
                ids.map(|(project, $field)| Self { project, $field })
                    .ok_or_else(|| error(name, $what, Self::PATTERN))
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(
                    f,
                    concat!("projects/{}/", $collection, "/{}"),
                    self.project, self.$field
                )
            }
        }
    };
}

project_child_name!(RunName, "runs", "run", run);
project_child_name!(AssetName, "assets", "asset", asset);
project_child_name!(ShareLinkName, "shareLinks", "share link", link);

/// A name that is either a project (meaning its latest run) or one of its runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectOrRun {
    Project(ProjectName),
    Run(RunName),
}

impl ProjectOrRun {
    pub fn parse(name: &str) -> Result<Self, NameError> {
        if let Ok(run) = RunName::parse(name) {
            return Ok(Self::Run(run));
        }
        ProjectName::parse(name).map(Self::Project).map_err(|_| {
            error(
                name,
                "project or run",
                "projects/{uuid} or projects/{uuid}/runs/{uuid}",
            )
        })
    }

    pub fn project(&self) -> Uuid {
        match self {
            Self::Project(p) => p.0,
            Self::Run(r) => r.project,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0190b8d2-7c1e-7cc0-a1b2-0123456789ab";

    #[test]
    fn parses_and_prints_every_name() {
        let project = ProjectName::parse(&format!("projects/{ID}")).expect("valid");
        assert_eq!(project.to_string(), format!("projects/{ID}"));
        let run = RunName::parse(&format!("projects/{ID}/runs/{ID}")).expect("valid");
        assert_eq!(run.to_string(), format!("projects/{ID}/runs/{ID}"));
        let asset = AssetName::parse(&format!("projects/{ID}/assets/{ID}")).expect("valid");
        assert_eq!(asset.to_string(), format!("projects/{ID}/assets/{ID}"));
        assert!(matches!(
            ProjectOrRun::parse(&format!("projects/{ID}/runs/{ID}")),
            Ok(ProjectOrRun::Run(_))
        ));
    }

    #[test]
    fn rejects_malformed_names() {
        for bad in [
            "",
            "projects/",
            "projects/not-a-uuid",
            &format!("project/{ID}"),
            &format!("projects/{ID}/"),
            &format!("projects/{ID}/runs"),
            &format!("projects/{}", ID.replace('-', "")),
            &format!("projects/../{ID}"),
            &"projects/".repeat(100),
        ] {
            assert!(ProjectName::parse(bad).is_err(), "{bad} should be rejected");
            assert!(RunName::parse(bad).is_err(), "{bad} should be rejected");
        }
        let err = ProjectName::parse("tracks/x").expect_err("wrong collection");
        assert!(err.to_string().contains("projects/{uuid}"), "{err}");
    }
}
