//! `cadenza.v1.AdminService`: roles and the audit log, for administrators.

use cadenza_db::schema::{audit_events, users};
use cadenza_proto::v1::{self, admin_service_server::AdminService};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::audit::{self, Event, client_address};
use super::store::{self, UserRow};
use crate::api::Shared;
use crate::error::{ApiError, ApiResult};

pub struct AdminApi {
    pub shared: Shared,
    pub terms_version: String,
}

const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 500;
const MAX_GRANT: i64 = 1_000_000;
/// Characters in a dead letter's dismissal reason.
const MAX_DISMISS_REASON: usize = 500;

#[derive(Queryable)]
struct AuditRow {
    id: Uuid,
    actor: String,
    action: String,
    target: String,
    client_address: Option<String>,
    detail: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
}

impl AdminApi {
    async fn admin<T>(&self, request: &Request<T>) -> ApiResult<UserRow> {
        current_admin(&self.shared, request).await
    }
}

/// The caller, if their account is an administrator now (the role in the
/// database decides, not the one in a token that may predate a change) and
/// their credential may administer (a session, or a key with the ADMIN scope).
pub async fn current_admin<T>(shared: &Shared, request: &Request<T>) -> ApiResult<UserRow> {
    let denied =
        || ApiError::PermissionDenied("ADMIN_ONLY", "only administrators may do this".into());
    if !crate::api::user(request)?.has_scope(cadenza_auth::mesh::Scope::Admin) {
        return Err(ApiError::PermissionDenied(
            "API_KEY_SCOPE",
            "this API key lacks the `admin` scope".into(),
        ));
    }
    let subject = shared.caller(request).await?;
    let mut conn = shared.conn().await?;
    store::find_by_subject(&mut conn, &subject)
        .await?
        .filter(|user| user.role == "admin")
        .ok_or_else(denied)
}

/// What an administrator changes about a user.
#[derive(Debug, Clone, Copy)]
enum UserChange {
    Role(&'static str),
    Plan(&'static str),
}

impl AdminApi {
    /// Applies one change to the user `name` (`users/{id}`) as an administrator,
    /// and records it in the audit log.
    async fn change_user<T>(
        &self,
        request: &Request<T>,
        name: &str,
        change: UserChange,
    ) -> ApiResult<v1::User> {
        let admin = self.admin(request).await?;
        let address = client_address(request);
        let target = name
            .strip_prefix("users/")
            .and_then(|id| Uuid::parse_str(id).ok())
            .ok_or_else(|| ApiError::invalid("name", "must be `users/{id}`"))?;
        let live = users::table
            .find(target)
            .filter(users::deleted_at.is_null());
        let mut conn = self.shared.conn().await?;
        let updated: Option<UserRow> = match change {
            UserChange::Role(role) => diesel::update(live)
                .set(users::role.eq(role))
                .returning(UserRow::as_returning())
                .get_result(&mut conn)
                .await
                .optional()?,
            UserChange::Plan(plan) => diesel::update(live)
                .set(users::plan.eq(plan))
                .returning(UserRow::as_returning())
                .get_result(&mut conn)
                .await
                .optional()?,
        };
        let updated = updated.ok_or_else(|| {
            ApiError::NotFound("USER_NOT_FOUND", format!("user `{name}` does not exist"))
        })?;
        let (action, detail) = match change {
            UserChange::Role(role) => ("role.change", format!("role set to {role}")),
            UserChange::Plan(plan) => ("plan.change", format!("plan set to {plan}")),
        };
        audit::record(
            &mut conn,
            Event {
                actor: &admin.id.to_string(),
                action,
                target: name,
                client_address: address.as_deref(),
                detail: Some(&detail),
            },
        )
        .await;
        Ok(super::api::user_proto(&updated, &self.terms_version))
    }
}

fn role_name(role: i32) -> Option<&'static str> {
    match v1::Role::try_from(role).ok()? {
        v1::Role::Viewer => Some("viewer"),
        v1::Role::User => Some("user"),
        v1::Role::Admin => Some("admin"),
        v1::Role::Unspecified => None,
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn change_role(
        &self,
        request: Request<v1::ChangeRoleRequest>,
    ) -> Result<Response<v1::User>, Status> {
        let role = role_name(request.get_ref().role)
            .ok_or_else(|| ApiError::invalid("role", "must be VIEWER, USER or ADMIN"))?;
        let user = self
            .change_user(&request, &request.get_ref().name, UserChange::Role(role))
            .await?;
        Ok(Response::new(user))
    }

    async fn change_plan(
        &self,
        request: Request<v1::ChangePlanRequest>,
    ) -> Result<Response<v1::User>, Status> {
        let plan = match v1::Plan::try_from(request.get_ref().plan) {
            Ok(v1::Plan::Free) => "free",
            Ok(v1::Plan::Standard) => "standard",
            _ => return Err(ApiError::invalid("plan", "must be FREE or STANDARD").into()),
        };
        let user = self
            .change_user(&request, &request.get_ref().name, UserChange::Plan(plan))
            .await?;
        Ok(Response::new(user))
    }

    async fn list_dead_letters(
        &self,
        request: Request<v1::ListDeadLettersRequest>,
    ) -> Result<Response<v1::ListDeadLettersResponse>, Status> {
        self.admin(&request).await?;
        let request = request.into_inner();
        let size = crate::api::validate::page_size(request.page_size, DEFAULT_PAGE, MAX_PAGE)?;
        let after = crate::api::projects::decode_page_token(&request.page_token)?;
        let mut conn = self.shared.conn().await?;
        let (dead_letters, next) = crate::dead_letters::list(&mut conn, size, after).await?;
        Ok(Response::new(v1::ListDeadLettersResponse {
            dead_letters,
            next_page_token: next
                .map(|(time, id)| crate::api::projects::encode_page_token(time, id))
                .unwrap_or_default(),
        }))
    }

    async fn requeue_dead_letter(
        &self,
        request: Request<v1::RequeueDeadLetterRequest>,
    ) -> Result<Response<v1::DeadLetter>, Status> {
        let admin = self.admin(&request).await?;
        let address = client_address(&request);
        let name = request.into_inner().name;
        let mut conn = self.shared.conn().await?;
        let letter =
            crate::dead_letters::requeue(&mut conn, &self.shared.orchestrator.exchange, &name)
                .await?;
        self.shared.relay_wake.notify_one();
        audit::record(
            &mut conn,
            Event {
                actor: &admin.id.to_string(),
                action: "dead_letter.requeue",
                target: &name,
                client_address: address.as_deref(),
                detail: Some(&letter.kind),
            },
        )
        .await;
        Ok(Response::new(letter))
    }

    async fn dismiss_dead_letter(
        &self,
        request: Request<v1::DismissDeadLetterRequest>,
    ) -> Result<Response<v1::DeadLetter>, Status> {
        let admin = self.admin(&request).await?;
        let address = client_address(&request);
        let request = request.into_inner();
        let mut violations = Vec::new();
        let id = crate::dead_letters::parse_name(&request.name);
        if id.is_err() {
            violations.push(cadenza_runtime::status::Violation::new(
                "name",
                "must be `deadLetters/{id}`",
            ));
        }
        let reason = request.reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_DISMISS_REASON {
            violations.push(cadenza_runtime::status::Violation::new(
                "reason",
                format!("say why in 1 to {MAX_DISMISS_REASON} characters"),
            ));
        }
        let (Ok(id), true) = (id, violations.is_empty()) else {
            return Err(ApiError::Invalid(violations).into());
        };
        let actor = admin.id.to_string();
        let name = request.name.as_str();
        let mut conn = self.shared.conn().await?;
        // The dismissal and its audit entry are one transaction: neither is kept
        // without the other. A repeated dismissal changes nothing and is not
        // recorded again.
        let letter = conn
            .transaction(async |conn| -> ApiResult<v1::DeadLetter> {
                let (letter, dismissed) =
                    crate::dead_letters::dismiss(conn, id, name, reason).await?;
                if dismissed {
                    let detail = format!("{}: {reason}", letter.kind);
                    let event = Event {
                        actor: &actor,
                        action: "dead_letter.dismiss",
                        target: name,
                        client_address: address.as_deref(),
                        detail: Some(&detail),
                    };
                    audit::write(conn, &event).await?;
                }
                Ok(letter)
            })
            .await?;
        Ok(Response::new(letter))
    }

    async fn grant_credits(
        &self,
        request: Request<v1::GrantCreditsRequest>,
    ) -> Result<Response<v1::GrantCreditsResponse>, Status> {
        let admin = self.admin(&request).await?;
        let address = client_address(&request);
        let request = request.into_inner();
        let mut violations = Vec::new();
        if !(1..=MAX_GRANT).contains(&request.amount) {
            violations.push(cadenza_runtime::status::Violation::new(
                "amount",
                format!("must be 1 to {MAX_GRANT}"),
            ));
        }
        let reason = request.reason.trim();
        if reason.is_empty() || reason.chars().count() > 200 {
            violations.push(cadenza_runtime::status::Violation::new(
                "reason",
                "say why in 1 to 200 characters",
            ));
        }
        let target = request
            .name
            .strip_prefix("users/")
            .and_then(|id| Uuid::parse_str(id).ok());
        if target.is_none() {
            violations.push(cadenza_runtime::status::Violation::new(
                "name",
                "must be `users/{id}`",
            ));
        }
        let (Some(target), true) = (target, violations.is_empty()) else {
            return Err(ApiError::Invalid(violations).into());
        };
        let actor = admin.id.to_string();
        let mut conn = self.shared.conn().await?;
        let balance = conn
            .transaction(async |conn| -> ApiResult<i64> {
                store::find(conn, target).await?.ok_or_else(|| {
                    ApiError::NotFound(
                        "USER_NOT_FOUND",
                        format!("user `{}` does not exist", request.name),
                    )
                })?;
                let owner = target.to_string();
                crate::credits::grant(conn, &owner, request.amount, &actor).await?;
                audit::record(
                    conn,
                    Event {
                        actor: &actor,
                        action: "credits.grant",
                        target: &request.name,
                        client_address: address.as_deref(),
                        detail: Some(&format!("{} credits: {reason}", request.amount)),
                    },
                )
                .await;
                Ok(crate::credits::balance(conn, &owner).await?)
            })
            .await?;
        Ok(Response::new(v1::GrantCreditsResponse { balance }))
    }

    async fn list_audit_events(
        &self,
        request: Request<v1::ListAuditEventsRequest>,
    ) -> Result<Response<v1::ListAuditEventsResponse>, Status> {
        self.admin(&request).await?;
        let request = request.into_inner();
        let limit = match i64::from(request.page_size) {
            0 => DEFAULT_PAGE,
            n if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return Err(
                    ApiError::invalid("page_size", format!("must be 0 to {MAX_PAGE}")).into(),
                );
            }
        };
        let before =
            if request.page_token.is_empty() {
                None
            } else {
                Some(Uuid::parse_str(&request.page_token).map_err(|_| {
                    ApiError::invalid("page_token", "is not from a previous response")
                })?)
            };
        let mut query = audit_events::table
            .order(audit_events::id.desc())
            .limit(limit + 1)
            .into_boxed();
        if let Some(before) = before {
            query = query.filter(audit_events::id.lt(before));
        }
        if !request.actor.is_empty() {
            query = query.filter(audit_events::actor.eq(request.actor.clone()));
        }
        let mut conn = self.shared.conn().await?;
        let mut rows: Vec<AuditRow> = query.load(&mut conn).await.map_err(ApiError::from)?;
        let next_page_token = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|r| r.id.to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(v1::ListAuditEventsResponse {
            audit_events: rows
                .into_iter()
                .map(|row| v1::AuditEvent {
                    name: format!("auditEvents/{}", row.id),
                    actor: row.actor,
                    action: row.action,
                    target: row.target,
                    client_address: row.client_address.unwrap_or_default(),
                    create_time: Some(cadenza_proto::timestamp(row.created_at)),
                    detail: row.detail.unwrap_or_default(),
                })
                .collect(),
            next_page_token,
        }))
    }
}
