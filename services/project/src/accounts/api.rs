//! `cadenza.v1.AuthService`.

use cadenza_proto::v1::{self, auth_service_server::AuthService};
use cadenza_runtime::status::Violation;
use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::audit::{self, Event, client_address};
use super::store::{self, NewUser, UserRow};
use super::{AccountsConfig, credentials, email, throttle};
use crate::api::Shared;
use crate::error::{ApiError, ApiResult};

pub struct AuthApi {
    pub shared: Shared,
    pub config: AccountsConfig,
}

const WRONG_CREDENTIALS: &str = "the email or password is wrong";

pub fn role(name: &str) -> v1::Role {
    match name {
        "viewer" => v1::Role::Viewer,
        "admin" => v1::Role::Admin,
        _ => v1::Role::User,
    }
}

/// A user as the API shows it.
pub fn user_proto(row: &UserRow, current_terms_version: &str) -> v1::User {
    v1::User {
        name: format!("users/{}", row.id),
        email: row.email.clone(),
        role: role(&row.role) as i32,
        create_time: Some(cadenza_proto::timestamp(row.created_at)),
        accepted_terms_version: row.accepted_terms_version.clone().unwrap_or_default(),
        terms_accept_time: row.terms_accepted_at.map(cadenza_proto::timestamp),
        current_terms_version: current_terms_version.to_owned(),
        plan: crate::api::usage::plan_proto(Some(&row.plan)) as i32,
    }
}

impl AuthApi {
    fn user(&self, row: &UserRow) -> v1::User {
        user_proto(row, &self.config.terms_version)
    }

    /// Signs an access token for `user` beside a refresh token of `family`,
    /// whose hash the caller has stored.
    fn session(
        &self,
        user: &UserRow,
        refresh_token: String,
        refresh_expires: DateTime<Utc>,
    ) -> ApiResult<v1::Session> {
        let (access_token, access_expires) = self
            .config
            .keys
            .issue_with_role(
                &user.id.to_string(),
                Some(&user.role),
                self.config.access_ttl,
            )
            .map_err(|err| ApiError::Internal(err.to_string()))?;
        Ok(v1::Session {
            user: Some(self.user(user)),
            access_token,
            access_token_expire_time: Some(cadenza_proto::timestamp(access_expires)),
            refresh_token,
            refresh_token_expire_time: Some(cadenza_proto::timestamp(refresh_expires)),
        })
    }

    /// Starts a new token family for `user`.
    async fn sign_in(&self, user: &UserRow) -> ApiResult<v1::Session> {
        let now = Utc::now();
        let token = credentials::new_refresh_token();
        let expires = now + self.config.refresh_ttl;
        let mut conn = self.shared.conn().await?;
        store::insert_refresh_token(
            &mut conn,
            Uuid::now_v7(),
            user.id,
            &credentials::refresh_token_hash(&token),
            now,
            expires,
        )
        .await?;
        self.session(user, token, expires)
    }

    fn check_terms(&self, version: &str) -> Result<(), Violation> {
        if version == self.config.terms_version {
            Ok(())
        } else {
            Err(Violation::new(
                "version",
                format!(
                    "the current terms of service are version `{}`",
                    self.config.terms_version
                ),
            ))
        }
    }

    async fn current_user(&self, subject: &str) -> ApiResult<UserRow> {
        let not_found = || {
            ApiError::NotFound(
                "USER_NOT_FOUND",
                "the caller has no account (dev tokens have none)".into(),
            )
        };
        let mut conn = self.shared.conn().await?;
        store::find_by_subject(&mut conn, subject)
            .await?
            .ok_or_else(not_found)
    }
}

/// What a refresh attempt found, decided inside its transaction.
enum Exchange {
    Renewed(Box<UserRow>, String, DateTime<Utc>),
    Reused,
    Invalid,
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn register(
        &self,
        request: Request<v1::RegisterRequest>,
    ) -> Result<Response<v1::Session>, Status> {
        let address = client_address(&request);
        let request = request.into_inner();
        let mut violations = Vec::new();
        let email = email::normalise(&request.email)
            .map_err(|reason| violations.push(Violation::new("email", reason)))
            .ok();
        if let Err(reason) = credentials::check_password(&request.password) {
            violations.push(Violation::new("password", reason));
        }
        let terms = (!request.accept_terms_version.is_empty())
            .then_some(request.accept_terms_version.as_str());
        if let Some(version) = terms
            && let Err(mut violation) = self.check_terms(version)
        {
            violation.field = "accept_terms_version".into();
            violations.push(violation);
        }
        let Some(email) = email.filter(|_| violations.is_empty()) else {
            return Err(ApiError::Invalid(violations).into());
        };
        let password = request.password;
        let hash = self
            .config
            .hasher
            .run(move || credentials::hash_password(&password))
            .await?
            .map_err(ApiError::Internal)?;
        let signup_credits = self.config.signup_credits;
        let mut conn = self.shared.conn().await?;
        // The account, its starting credits and the audit entry, all or nothing.
        let user = conn
            .transaction(async |conn| -> ApiResult<UserRow> {
                let user = store::insert_user(
                    conn,
                    NewUser {
                        email: &email,
                        password_hash: &hash,
                        terms_version: terms,
                    },
                    Utc::now(),
                )
                .await?
                .ok_or_else(|| {
                    ApiError::AlreadyExists(
                        "EMAIL_TAKEN",
                        "an account with this email already exists".into(),
                    )
                })?;
                let subject = user.id.to_string();
                if signup_credits > 0 {
                    crate::credits::grant(conn, &subject, signup_credits, "signup").await?;
                }
                audit::record(
                    conn,
                    Event {
                        actor: &subject,
                        action: "account.register",
                        target: &format!("users/{subject}"),
                        client_address: address.as_deref(),
                        detail: None,
                    },
                )
                .await;
                Ok(user)
            })
            .await?;
        drop(conn);
        tracing::info!(user_id = %user.id, "account registered");
        Ok(Response::new(self.sign_in(&user).await?))
    }

    async fn login(
        &self,
        request: Request<v1::LoginRequest>,
    ) -> Result<Response<v1::Session>, Status> {
        let address = client_address(&request);
        let request = request.into_inner();
        let normalised = email::normalise(&request.email);
        let attempt = throttle::Attempt::new(
            normalised.as_deref().unwrap_or(request.email.trim()),
            address.as_deref(),
        );
        let mut conn = self.shared.conn().await?;
        let verdict = throttle::check(&mut conn, &self.config.throttle, &attempt, Utc::now())
            .await
            .map_err(ApiError::from)?;
        let user = match &normalised {
            Ok(email) => store::find_by_email(&mut conn, email)
                .await
                .map_err(ApiError::from)?,
            Err(_) => None,
        };
        drop(conn);
        match verdict {
            throttle::Verdict::Wait(wait) => return Err(ApiError::Throttled(wait).into()),
            // Slowed, never refused: the right password still signs in.
            throttle::Verdict::Slow(delay) => tokio::time::sleep(delay).await,
            throttle::Verdict::Go => {}
        }
        // A missing account spends the same time as a wrong password.
        let stored = user.as_ref().map_or_else(
            || credentials::decoy_hash().to_owned(),
            |u| u.password_hash.clone(),
        );
        let password = request.password;
        let matches = self
            .config
            .hasher
            .run(move || credentials::verify_password(&password, &stored))
            .await?;
        match user {
            Some(user) if matches => {
                tracing::info!(user_id = %user.id, "signed in");
                let mut conn = self.shared.conn().await?;
                throttle::clear(&mut conn, &attempt)
                    .await
                    .map_err(ApiError::from)?;
                let subject = user.id.to_string();
                audit::record(
                    &mut conn,
                    Event {
                        actor: &subject,
                        action: "session.login",
                        target: &format!("users/{subject}"),
                        client_address: address.as_deref(),
                        detail: None,
                    },
                )
                .await;
                drop(conn);
                Ok(Response::new(self.sign_in(&user).await?))
            }
            _ => {
                metrics::counter!("cadenza_login_failures_total").increment(1);
                let mut conn = self.shared.conn().await?;
                throttle::record_failure(&mut conn, &attempt, Utc::now())
                    .await
                    .map_err(ApiError::from)?;
                audit::record(
                    &mut conn,
                    Event {
                        actor: "anonymous",
                        action: "session.login_failed",
                        target: attempt.account(),
                        client_address: address.as_deref(),
                        detail: None,
                    },
                )
                .await;
                Err(ApiError::Unauthenticated(WRONG_CREDENTIALS.into()).into())
            }
        }
    }

    async fn refresh(
        &self,
        request: Request<v1::RefreshRequest>,
    ) -> Result<Response<v1::Session>, Status> {
        let hash = credentials::refresh_token_hash(&request.into_inner().refresh_token);
        let refresh_ttl = self.config.refresh_ttl;
        let mut conn = self.shared.conn().await?;
        let exchange = conn
            .transaction(async |conn| -> ApiResult<Exchange> {
                let now = Utc::now();
                let Some(token) = store::lock_refresh_token(conn, &hash).await? else {
                    return Ok(Exchange::Invalid);
                };
                if token.used_at.is_some() || token.revoked_at.is_some() {
                    // Spent or revoked, yet presented again: someone holds a copy.
                    // End every session of the family; the revocation commits.
                    store::revoke_family(conn, token.family_id, now).await?;
                    return Ok(Exchange::Reused);
                }
                let user = store::find(conn, token.user_id).await?;
                let Some(user) = user.filter(|_| token.expires_at > now) else {
                    return Ok(Exchange::Invalid);
                };
                store::mark_used(conn, token.id, now).await?;
                let next = credentials::new_refresh_token();
                let expires = now + refresh_ttl;
                store::insert_refresh_token(
                    conn,
                    token.family_id,
                    user.id,
                    &credentials::refresh_token_hash(&next),
                    now,
                    expires,
                )
                .await?;
                Ok(Exchange::Renewed(Box::new(user), next, expires))
            })
            .await?;
        match exchange {
            Exchange::Renewed(user, token, expires) => {
                Ok(Response::new(self.session(&user, token, expires)?))
            }
            Exchange::Reused => {
                tracing::warn!("a spent refresh token was presented again; its family is revoked");
                Err(ApiError::Denied(
                    "REFRESH_TOKEN_REUSED",
                    "this refresh token was already used, so every session started from it has been ended; sign in again".into(),
                )
                .into())
            }
            Exchange::Invalid => Err(ApiError::Denied(
                "REFRESH_TOKEN_INVALID",
                "the refresh token is not valid or has expired; sign in again".into(),
            )
            .into()),
        }
    }

    async fn logout(&self, request: Request<v1::LogoutRequest>) -> Result<Response<()>, Status> {
        let hash = credentials::refresh_token_hash(&request.into_inner().refresh_token);
        let mut conn = self.shared.conn().await?;
        conn.transaction(async |conn| -> ApiResult<()> {
            if let Some(token) = store::lock_refresh_token(conn, &hash).await? {
                store::revoke_family(conn, token.family_id, Utc::now()).await?;
            }
            Ok(())
        })
        .await?;
        Ok(Response::new(()))
    }

    async fn get_current_user(
        &self,
        request: Request<v1::GetCurrentUserRequest>,
    ) -> Result<Response<v1::User>, Status> {
        let subject = self.shared.caller(&request).await?;
        let user = self.current_user(&subject).await?;
        Ok(Response::new(self.user(&user)))
    }

    async fn accept_terms(
        &self,
        request: Request<v1::AcceptTermsRequest>,
    ) -> Result<Response<v1::User>, Status> {
        let subject = self.shared.caller(&request).await?;
        self.check_terms(&request.get_ref().version)
            .map_err(|violation| ApiError::Invalid(vec![violation]))?;
        let user = self.current_user(&subject).await?;
        let mut conn = self.shared.conn().await?;
        let updated =
            store::accept_terms(&mut conn, user.id, &self.config.terms_version, Utc::now())
                .await
                .map_err(ApiError::from)?
                .ok_or_else(|| {
                    ApiError::NotFound("USER_NOT_FOUND", "the account no longer exists".into())
                })?;
        Ok(Response::new(self.user(&updated)))
    }

    async fn delete_account(
        &self,
        request: Request<v1::DeleteAccountRequest>,
    ) -> Result<Response<()>, Status> {
        let subject = self.shared.caller(&request).await?;
        let address = client_address(&request);
        let user = self.current_user(&subject).await?;
        // Asking for the password again is a sign-in attempt: throttled alike.
        let attempt = throttle::Attempt::new(&user.email, address.as_deref());
        let mut conn = self.shared.conn().await?;
        let verdict = throttle::check(&mut conn, &self.config.throttle, &attempt, Utc::now())
            .await
            .map_err(ApiError::from)?;
        drop(conn);
        match verdict {
            throttle::Verdict::Wait(wait) => return Err(ApiError::Throttled(wait).into()),
            throttle::Verdict::Slow(delay) => tokio::time::sleep(delay).await,
            throttle::Verdict::Go => {}
        }
        let (password, stored) = (request.into_inner().password, user.password_hash.clone());
        let matches = self
            .config
            .hasher
            .run(move || credentials::verify_password(&password, &stored))
            .await?;
        if !matches {
            let mut conn = self.shared.conn().await?;
            throttle::record_failure(&mut conn, &attempt, Utc::now())
                .await
                .map_err(ApiError::from)?;
            return Err(ApiError::PermissionDenied(
                "WRONG_PASSWORD",
                "the password is wrong; the account was not deleted".into(),
            )
            .into());
        }
        let orchestrator = self.shared.orchestrator.clone();
        let mut conn = self.shared.conn().await?;
        // One transaction: the account and all its projects go together, or not at all.
        let deleted = conn
            .transaction(async |conn| -> ApiResult<Vec<Uuid>> {
                let projects = crate::store::projects::lock_all_of(conn, &subject).await?;
                for project in &projects {
                    crate::api::projects::delete_locked(conn, &orchestrator, project).await?;
                }
                store::tombstone(conn, user.id, Utc::now()).await?;
                audit::record(
                    conn,
                    Event {
                        actor: &subject,
                        action: "account.delete",
                        target: &format!("users/{subject}"),
                        client_address: address.as_deref(),
                        detail: Some(&format!("{} projects deleted", projects.len())),
                    },
                )
                .await;
                Ok(projects.iter().map(|p| p.id).collect())
            })
            .await?;
        drop(conn);
        for project_id in deleted {
            crate::api::projects::forget_objects(&self.shared, &subject, project_id).await;
        }
        tracing::info!(user_id = %user.id, "account deleted");
        Ok(Response::new(()))
    }
}
