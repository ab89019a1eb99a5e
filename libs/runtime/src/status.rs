//! gRPC statuses with the rich details the API promises: every error carries an
//! `ErrorInfo` (reason + domain), validation errors a `BadRequest` naming each field.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// The `ErrorInfo.domain` of every Cadenza error.
pub const DOMAIN: &str = "cadenza.dev";

/// A status with an `ErrorInfo` carrying `reason`.
pub fn with_reason(code: Code, reason: &str, message: impl Into<String>) -> Status {
    let details = ErrorDetails::with_error_info(reason, DOMAIN, HashMap::<String, String>::new());
    Status::with_error_details(code, message, details)
}

/// One bad field and what is wrong with it, in words for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub description: String,
}

impl Violation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// INVALID_ARGUMENT listing every violation; the message repeats them so a client
/// that ignores details still shows something useful.
pub fn invalid_argument(violations: Vec<Violation>) -> Status {
    let message = violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ");
    let mut details =
        ErrorDetails::with_error_info("INVALID_ARGUMENT", DOMAIN, HashMap::<String, String>::new());
    details.set_bad_request(
        violations
            .into_iter()
            .map(|v| FieldViolation::new(v.field, v.description))
            .collect::<Vec<_>>(),
    );
    Status::with_error_details(Code::InvalidArgument, message, details)
}

pub fn not_found(reason: &str, message: impl Into<String>) -> Status {
    with_reason(Code::NotFound, reason, message)
}

pub fn unauthenticated(message: impl Into<String>) -> Status {
    with_reason(Code::Unauthenticated, "UNAUTHENTICATED", message)
}

pub fn failed_precondition(reason: &str, message: impl Into<String>) -> Status {
    with_reason(Code::FailedPrecondition, reason, message)
}

pub fn unavailable(message: impl Into<String>) -> Status {
    with_reason(Code::Unavailable, "UNAVAILABLE", message)
}

/// INTERNAL with an opaque message; the cause goes to the log, never to the caller.
pub fn internal(cause: &dyn std::fmt::Display) -> Status {
    tracing::error!(error = %cause, "internal error");
    with_reason(
        Code::Internal,
        "INTERNAL",
        "something went wrong on our side; it has been logged",
    )
}
