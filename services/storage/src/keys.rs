//! Object keys: built here from what an object belongs to, never taken from a caller.

use cadenza_proto::v1::ObjectLocator;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct KeyError {
    pub field: &'static str,
    pub reason: String,
}

fn err(field: &'static str, reason: impl Into<String>) -> KeyError {
    KeyError {
        field,
        reason: reason.into(),
    }
}

const MAX_FILE_NAME: usize = 128;

/// `users/{owner}/projects/{project}/runs/{run}/{file_name}`
pub fn object_key(locator: &ObjectLocator) -> Result<String, KeyError> {
    let owner = owner(&locator.owner)?;
    let project = uuid(&locator.project_id, "project_id")?;
    let run = uuid(&locator.run_id, "run_id")?;
    let file = file_name(&locator.file_name)?;
    Ok(format!(
        "{}/runs/{run}/{file}",
        project_prefix(owner, project)
    ))
}

/// `users/{owner}/projects/{project}`: everything of one project lies under it.
pub fn project_prefix(owner: &str, project: uuid::Uuid) -> String {
    format!("users/{owner}/projects/{project}")
}

pub fn owner(owner: &str) -> Result<&str, KeyError> {
    if cadenza_auth::valid_subject(owner) {
        Ok(owner)
    } else {
        Err(err("owner", "must be a valid subject name"))
    }
}

pub fn uuid(value: &str, field: &'static str) -> Result<uuid::Uuid, KeyError> {
    (value.len() == 36)
        .then(|| uuid::Uuid::parse_str(value).ok())
        .flatten()
        .ok_or_else(|| err(field, "must be a UUID"))
}

/// One to three `/`-separated segments of `[A-Za-z0-9._-]`, none of them `.` or `..`.
pub fn file_name(name: &str) -> Result<&str, KeyError> {
    if name.is_empty() || name.len() > MAX_FILE_NAME {
        return Err(err(
            "file_name",
            format!("must be 1 to {MAX_FILE_NAME} characters"),
        ));
    }
    let segments: Vec<&str> = name.split('/').collect();
    let valid = segments.len() <= 3
        && segments.iter().all(|s| {
            !s.is_empty()
                && *s != "."
                && *s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
    if valid {
        Ok(name)
    } else {
        Err(err(
            "file_name",
            "must be relative segments of letters, digits, `.`, `_` and `-`",
        ))
    }
}

/// Checks that a key handed back by a caller is one this service could have built.
pub fn parse_key(key: &str) -> Result<&str, KeyError> {
    let parts: Vec<&str> = key.splitn(7, '/').collect();
    match parts.as_slice() {
        ["users", owner_part, "projects", project, "runs", run, file] => {
            owner(owner_part)?;
            uuid(project, "key")?;
            uuid(run, "key")?;
            file_name(file)?;
            Ok(key)
        }
        _ => Err(err("key", "is not a Cadenza object key")),
    }
}

/// The owner segment of a key that [`parse_key`] accepted.
pub fn owner_of(key: &str) -> &str {
    key.split('/').nth(1).unwrap_or("")
}

/// Content type from the file extension, for objects whose type was not stored.
pub fn content_type_for(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        "mp3" => "audio/mpeg",
        "ogg" | "opus" => "audio/ogg",
        "mid" | "midi" => "audio/midi",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0190b8d2-7c1e-7cc0-a1b2-0123456789ab";

    fn locator(owner: &str, file: &str) -> ObjectLocator {
        ObjectLocator {
            owner: owner.into(),
            project_id: ID.into(),
            run_id: ID.into(),
            file_name: file.into(),
        }
    }

    #[test]
    fn builds_keys_under_the_owner_prefix() {
        let key = object_key(&locator("alice", "stems/drums.wav")).expect("valid");
        assert_eq!(
            key,
            format!("users/alice/projects/{ID}/runs/{ID}/stems/drums.wav")
        );
        assert_eq!(parse_key(&key), Ok(key.as_str()));
    }

    #[test]
    fn no_key_escapes_its_prefix() {
        for file in [
            "../x",
            "a/../../b",
            "/etc/passwd",
            "a//b",
            ".",
            "a\\b",
            "a b",
            "a/b/c/d",
            "",
        ] {
            assert!(object_key(&locator("alice", file)).is_err(), "{file}");
        }
        assert!(object_key(&locator("../bob", "x.wav")).is_err());
        assert!(parse_key("users/alice/../bob/projects/x").is_err());
        assert!(parse_key(&format!("users/alice/projects/{ID}/runs/{ID}/../../x")).is_err());
    }
}
