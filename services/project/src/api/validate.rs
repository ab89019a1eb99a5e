//! Turning API input into validated values, reporting every bad field at once.

use cadenza_proto::v1;
use cadenza_runtime::status::Violation;

use crate::error::ApiError;
use crate::store::projects::ProjectFields;

pub const MAX_PROMPT_CHARS: usize = 2_000;
pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_LYRICS_CHARS: usize = 10_000;
pub const MIN_DURATION_SECONDS: u32 = 5;
const MAX_REQUEST_ID_CHARS: usize = 128;
/// A title taken from the prompt is cut to this many characters.
const DERIVED_TITLE_CHARS: usize = 60;

pub struct Limits {
    pub max_duration_seconds: u32,
}

pub fn prompt(value: &str, field: &str, violations: &mut Vec<Violation>) -> String {
    let trimmed = value.trim();
    let chars = trimmed.chars().count();
    if chars == 0 {
        violations.push(Violation::new(
            field,
            "describe the song: the prompt cannot be empty",
        ));
    } else if chars > MAX_PROMPT_CHARS {
        violations.push(Violation::new(
            field,
            format!(
                "the prompt is {chars} characters long; at most {MAX_PROMPT_CHARS} are allowed"
            ),
        ));
    }
    trimmed.to_owned()
}

pub fn duration(value: u32, field: &str, limits: &Limits, violations: &mut Vec<Violation>) -> i32 {
    if value < MIN_DURATION_SECONDS || value > limits.max_duration_seconds {
        // A negative number sent as uint32 arrives as a huge one: same message.
        violations.push(Violation::new(
            field,
            format!(
                "the duration must be {MIN_DURATION_SECONDS} to {} seconds",
                limits.max_duration_seconds
            ),
        ));
    }
    i32::try_from(value).unwrap_or(i32::MAX)
}

pub fn style_strength(value: f32, field: &str, violations: &mut Vec<Violation>) -> f32 {
    if !value.is_finite() || !(0.0..=1.0).contains(&value) {
        violations.push(Violation::new(
            field,
            "style strength must be between 0 and 1",
        ));
        return 0.0;
    }
    value
}

pub fn lyrics(value: Option<&str>, field: &str, violations: &mut Vec<Violation>) -> Option<String> {
    let text = value?.trim();
    let chars = text.chars().count();
    if chars > MAX_LYRICS_CHARS {
        violations.push(Violation::new(
            field,
            format!("lyrics are {chars} characters long; at most {MAX_LYRICS_CHARS} are allowed"),
        ));
    }
    (!text.is_empty()).then(|| text.to_owned())
}

pub fn title(value: &str, prompt: &str, field: &str, violations: &mut Vec<Violation>) -> String {
    let trimmed = value.trim();
    if trimmed.chars().count() > MAX_TITLE_CHARS {
        violations.push(Violation::new(
            field,
            format!("the title can be at most {MAX_TITLE_CHARS} characters"),
        ));
    }
    if trimmed.is_empty() {
        derived_title(prompt)
    } else {
        trimmed.to_owned()
    }
}

fn derived_title(prompt: &str) -> String {
    let mut title: String = prompt.chars().take(DERIVED_TITLE_CHARS).collect();
    if prompt.chars().count() > DERIVED_TITLE_CHARS {
        title.push('…');
    }
    if title.is_empty() {
        "Untitled song".into()
    } else {
        title
    }
}

/// Validates every field of a new project.
pub fn new_project(project: &v1::Project, limits: &Limits) -> Result<ProjectFields, ApiError> {
    let mut violations = Vec::new();
    let prompt = prompt(&project.prompt, "project.prompt", &mut violations);
    let fields = ProjectFields {
        title: title(&project.title, &prompt, "project.title", &mut violations),
        title_derived: project.title.trim().is_empty(),
        duration_seconds: duration(
            project.duration_seconds,
            "project.duration_seconds",
            limits,
            &mut violations,
        ),
        has_vocals: project.has_vocals,
        style_strength: style_strength(
            project.style_strength,
            "project.style_strength",
            &mut violations,
        ),
        seed: project.seed.map(|s| s as i64),
        lyrics: lyrics(project.lyrics.as_deref(), "project.lyrics", &mut violations),
        prompt,
    };
    if violations.is_empty() {
        Ok(fields)
    } else {
        Err(ApiError::Invalid(violations))
    }
}

/// An optional idempotency key: empty, or 1 to 128 printable characters.
pub fn request_id(value: &str) -> Result<Option<&str>, ApiError> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.chars().count() > MAX_REQUEST_ID_CHARS || value.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "request_id",
            format!("a request id is 1 to {MAX_REQUEST_ID_CHARS} printable characters"),
        ));
    }
    Ok(Some(value))
}

/// A page size within `1..=max`, where 0 means `default`.
pub fn page_size(value: i32, default: i64, max: i64) -> Result<i64, ApiError> {
    match value {
        0 => Ok(default),
        v if v < 0 || i64::from(v) > max => Err(ApiError::invalid(
            "page_size",
            format!("must be 0 to {max}"),
        )),
        v => Ok(i64::from(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(prompt: &str, duration: u32, strength: f32) -> v1::Project {
        v1::Project {
            prompt: prompt.into(),
            duration_seconds: duration,
            style_strength: strength,
            ..v1::Project::default()
        }
    }

    const LIMITS: Limits = Limits {
        max_duration_seconds: 600,
    };

    #[test]
    fn reports_every_bad_field() {
        let Err(ApiError::Invalid(violations)) = new_project(&project("  ", 0, 2.0), &LIMITS)
        else {
            panic!("expected violations");
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "project.prompt",
                "project.duration_seconds",
                "project.style_strength"
            ]
        );
    }

    #[test]
    fn rejects_long_prompts_and_durations_out_of_range() {
        assert!(new_project(&project(&"x".repeat(4000), 30, 0.5), &LIMITS).is_err());
        assert!(new_project(&project("ok", 601, 0.5), &LIMITS).is_err());
        assert!(new_project(&project("ok", u32::MAX, 0.5), &LIMITS).is_err());
        assert!(new_project(&project("ok", 30, f32::NAN), &LIMITS).is_err());
        let fields = new_project(&project("warm ambient pad", 30, 0.5), &LIMITS).expect("valid");
        assert_eq!(fields.title, "warm ambient pad");
    }
}
