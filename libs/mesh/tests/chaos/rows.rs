//! The rows the chaos checks read from the services' databases, by raw SQL.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Int4, Nullable, Text, Uuid as SqlUuid};
use uuid::Uuid;

#[derive(QueryableByName)]
pub(crate) struct Count {
    #[diesel(sql_type = BigInt)]
    pub(crate) n: i64,
}

#[derive(QueryableByName)]
pub(crate) struct RunRow {
    #[diesel(sql_type = SqlUuid)]
    pub(crate) id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub(crate) project_id: Uuid,
    #[diesel(sql_type = Text)]
    pub(crate) owner: String,
    #[diesel(sql_type = Text)]
    pub(crate) state: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) error_code: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) error_message: Option<String>,
}

#[derive(QueryableByName)]
pub(crate) struct StageRow {
    #[diesel(sql_type = SqlUuid)]
    pub(crate) run_id: Uuid,
    #[diesel(sql_type = Text)]
    pub(crate) kind: String,
    #[diesel(sql_type = Text)]
    pub(crate) state: String,
    #[diesel(sql_type = Int4)]
    pub(crate) attempt: i32,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) error_code: Option<String>,
}

#[derive(QueryableByName)]
pub(crate) struct LedgerRow {
    #[diesel(sql_type = SqlUuid)]
    pub(crate) run_id: Uuid,
    #[diesel(sql_type = Text)]
    pub(crate) kind: String,
    #[diesel(sql_type = BigInt)]
    pub(crate) n: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) amount: i64,
}

#[derive(QueryableByName)]
pub(crate) struct EventRow {
    #[diesel(sql_type = SqlUuid)]
    pub(crate) project_id: Uuid,
    #[diesel(sql_type = BigInt)]
    pub(crate) seq: i64,
    #[diesel(sql_type = SqlUuid)]
    pub(crate) run_id: Uuid,
    #[diesel(sql_type = Text)]
    pub(crate) event_type: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) stage_kind: Option<String>,
    #[diesel(sql_type = Int4)]
    pub(crate) attempt: i32,
    #[diesel(sql_type = Text)]
    pub(crate) message: String,
}

#[derive(QueryableByName)]
pub(crate) struct ProvenanceRow {
    #[diesel(sql_type = SqlUuid)]
    pub(crate) run_id: Uuid,
    #[diesel(sql_type = Text)]
    pub(crate) kind: String,
    #[diesel(sql_type = Int4)]
    pub(crate) attempt: i32,
    #[diesel(sql_type = Int4)]
    pub(crate) stage_attempt: i32,
    #[diesel(sql_type = Text)]
    pub(crate) outputs: String,
}

#[derive(QueryableByName)]
pub(crate) struct AssetRow {
    #[diesel(sql_type = SqlUuid)]
    pub(crate) run_id: Uuid,
    #[diesel(sql_type = Text)]
    pub(crate) stage_kind: String,
    #[diesel(sql_type = Text)]
    pub(crate) file_name: String,
    #[diesel(sql_type = Text)]
    pub(crate) object_key: String,
    #[diesel(sql_type = Text)]
    pub(crate) sha256: String,
    #[diesel(sql_type = BigInt)]
    pub(crate) size_bytes: i64,
}

#[derive(QueryableByName)]
pub(crate) struct ObjectRow {
    #[diesel(sql_type = SqlUuid)]
    pub(crate) run_id: Uuid,
    #[diesel(sql_type = Text)]
    pub(crate) key: String,
    #[diesel(sql_type = Text)]
    pub(crate) sha256: String,
    #[diesel(sql_type = BigInt)]
    pub(crate) size_bytes: i64,
}

#[derive(QueryableByName)]
pub(crate) struct DeadLetterRow {
    #[diesel(sql_type = Text)]
    pub(crate) kind: String,
    #[diesel(sql_type = Text)]
    pub(crate) reason: String,
    #[diesel(sql_type = diesel::sql_types::Bytea)]
    pub(crate) payload: Vec<u8>,
}

#[derive(QueryableByName)]
pub(crate) struct ProjectSeq {
    #[diesel(sql_type = SqlUuid)]
    pub(crate) id: Uuid,
    #[diesel(sql_type = BigInt)]
    pub(crate) last_event_seq: i64,
}
