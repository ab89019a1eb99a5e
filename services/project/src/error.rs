//! The one error type of the project service, and its one mapping to gRPC statuses.

use cadenza_runtime::status::{self, Violation};
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid request")]
    Invalid(Vec<Violation>),
    #[error("{1}")]
    NotFound(&'static str, String),
    #[error("{1}")]
    FailedPrecondition(&'static str, String),
    #[error("{1}")]
    AlreadyExists(&'static str, String),
    #[error("{0}")]
    Unauthenticated(String),
    /// UNAUTHENTICATED with a specific reason (a refresh token reused, expired).
    #[error("{1}")]
    Denied(&'static str, String),
    #[error("{1}")]
    PermissionDenied(&'static str, String),
    /// Not enough credits: FAILED_PRECONDITION with a QuotaFailure.
    #[error("{description}")]
    QuotaExceeded {
        subject: String,
        description: String,
    },
    /// Too many failed sign-ins: come back after the wait.
    #[error("too many failed sign-ins")]
    Throttled(std::time::Duration),
    /// A resource of this replica is full (hashing slots, open streams):
    /// RESOURCE_EXHAUSTED with `reason` and a RetryInfo of `retry`.
    #[error("{message}")]
    Busy {
        reason: &'static str,
        message: String,
        retry: std::time::Duration,
    },
    /// A request beyond what the caller's plan allows (`field` names what).
    #[error("{description}")]
    PlanLimit {
        field: &'static str,
        description: String,
    },
    /// The plan's songs for today are used up until `retry_after` has passed.
    #[error("{description}")]
    DailyQuota {
        subject: String,
        description: String,
        retry_after: std::time::Duration,
    },
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("database pool: {0}")]
    Pool(String),
    #[error("storage: {0}")]
    Storage(Status),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        Self::Invalid(vec![Violation::new(field, description)])
    }

    pub fn project_not_found(name: impl std::fmt::Display) -> Self {
        Self::NotFound(
            "PROJECT_NOT_FOUND",
            format!("project `{name}` does not exist"),
        )
    }
}

impl From<cadenza_db::pool::PoolErrorAlias> for ApiError {
    fn from(err: cadenza_db::pool::PoolErrorAlias) -> Self {
        Self::Pool(err.to_string())
    }
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Self {
        match err {
            ApiError::Invalid(violations) => status::invalid_argument(violations),
            ApiError::NotFound(reason, message) => status::not_found(reason, message),
            ApiError::FailedPrecondition(reason, message) => {
                status::failed_precondition(reason, message)
            }
            ApiError::AlreadyExists(reason, message) => {
                status::with_reason(Code::AlreadyExists, reason, message)
            }
            ApiError::Unauthenticated(message) => status::unauthenticated(message),
            ApiError::QuotaExceeded {
                subject,
                description,
            } => {
                let mut details = tonic_types::ErrorDetails::with_error_info(
                    "INSUFFICIENT_CREDITS",
                    status::DOMAIN,
                    std::collections::HashMap::<String, String>::new(),
                );
                details.set_quota_failure(vec![tonic_types::QuotaViolation::new(
                    subject,
                    description.clone(),
                )]);
                <Status as tonic_types::StatusExt>::with_error_details(
                    Code::FailedPrecondition,
                    format!("not enough credits: {description}"),
                    details,
                )
            }
            ApiError::PermissionDenied(reason, message) => {
                status::with_reason(Code::PermissionDenied, reason, message)
            }
            ApiError::Throttled(wait) => {
                let mut details = tonic_types::ErrorDetails::with_error_info(
                    "LOGIN_THROTTLED",
                    status::DOMAIN,
                    std::collections::HashMap::<String, String>::new(),
                );
                details.set_retry_info(Some(wait));
                let seconds = wait.as_secs_f64().ceil().max(1.0);
                <Status as tonic_types::StatusExt>::with_error_details(
                    Code::ResourceExhausted,
                    format!("too many failed sign-ins; try again in {seconds:.0} s"),
                    details,
                )
            }
            ApiError::Busy {
                reason,
                message,
                retry,
            } => {
                let mut details = tonic_types::ErrorDetails::with_error_info(
                    reason,
                    status::DOMAIN,
                    std::collections::HashMap::<String, String>::new(),
                );
                details.set_retry_info(Some(retry));
                <Status as tonic_types::StatusExt>::with_error_details(
                    Code::ResourceExhausted,
                    message,
                    details,
                )
            }
            ApiError::PlanLimit { field, description } => {
                let mut details = tonic_types::ErrorDetails::with_error_info(
                    "FREE_TIER_LIMIT",
                    status::DOMAIN,
                    std::collections::HashMap::<String, String>::new(),
                );
                details.set_precondition_failure(vec![tonic_types::PreconditionViolation::new(
                    "FREE_TIER",
                    field,
                    description.clone(),
                )]);
                <Status as tonic_types::StatusExt>::with_error_details(
                    Code::FailedPrecondition,
                    description,
                    details,
                )
            }
            ApiError::DailyQuota {
                subject,
                description,
                retry_after,
            } => {
                let mut details = tonic_types::ErrorDetails::with_error_info(
                    "DAILY_SONG_LIMIT",
                    status::DOMAIN,
                    std::collections::HashMap::<String, String>::new(),
                );
                details.set_quota_failure(vec![tonic_types::QuotaViolation::new(
                    subject,
                    description.clone(),
                )]);
                details.set_retry_info(Some(retry_after));
                <Status as tonic_types::StatusExt>::with_error_details(
                    Code::ResourceExhausted,
                    description,
                    details,
                )
            }
            ApiError::Denied(reason, message) => {
                status::with_reason(Code::Unauthenticated, reason, message)
            }
            ApiError::Database(diesel::result::Error::NotFound) => {
                status::not_found("NOT_FOUND", "the requested resource does not exist")
            }
            ApiError::Database(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::ClosedConnection,
                _,
            ))
            | ApiError::Pool(_) => {
                tracing::warn!(error = %err, "database unavailable");
                status::unavailable("the database is unavailable; try again shortly")
            }
            ApiError::Storage(status) if status.code() == Code::Unavailable => {
                status::unavailable("storage is unavailable; try again shortly")
            }
            other => status::internal(&other),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
