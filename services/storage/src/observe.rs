//! Errors by operation and kind, for `cadenza_storage_errors_total`. Latency
//! per operation comes from the gRPC layer (`method` label) and, for signed
//! URLs, from the HTTP file server.

use tonic::Status;
use tonic_types::StatusExt;

pub const ERRORS: &str = "cadenza_storage_errors_total";

/// Counts a failed `operation` by kind and passes the result through.
pub fn outcome<T>(operation: &'static str, result: Result<T, Status>) -> Result<T, Status> {
    if let Err(status) = &result {
        metrics::counter!(ERRORS, "operation" => operation, "kind" => kind(status)).increment(1);
    }
    result
}

/// A small, fixed vocabulary: the ErrorInfo reason, or for a validation error
/// the first bad field (`invalid_sha256`, `invalid_size_bytes`).
pub fn kind(status: &Status) -> String {
    let details = status.get_error_details();
    if let Some(field) = details
        .bad_request()
        .and_then(|bad| bad.field_violations.first())
    {
        return format!("invalid_{}", field.field);
    }
    match details.error_info() {
        Some(info) => info.reason.to_ascii_lowercase(),
        None => format!("{:?}", status.code()).to_ascii_lowercase(),
    }
}
