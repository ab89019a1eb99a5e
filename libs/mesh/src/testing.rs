//! A whole mesh for one test: its own database, queue prefix, data directory and
//! ports, so tests run in parallel against one Postgres and one RabbitMQ.

use std::time::Duration;

use cadenza_db::testing::TestDatabase;
use cadenza_proto::v1;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::{Mesh, MeshConfig};

const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Queues of a crashed test disappear after this long unused.
const TEST_QUEUE_EXPIRY: Duration = Duration::from_secs(600);

pub struct TestMesh {
    pub mesh: Mesh,
    pub database: TestDatabase,
    pub queue_prefix: String,
    pub amqp_url: String,
    data_dir: tempfile::TempDir,
}

impl TestMesh {
    /// Starts a mesh. Fails the test, saying how to fix it, when Postgres or
    /// RabbitMQ is not running.
    pub async fn start() -> Self {
        let mut env = cadenza_config::Env::default();
        env.set("CADENZA_DEV_MODE", "true");
        Self::start_with(env).await
    }

    /// Starts a mesh as production runs it: dev mode off (no dev tokens: sign
    /// up with [`register`]), credits charged, its secrets random, plus `env`.
    pub async fn production(mut env: cadenza_config::Env) -> Self {
        use cadenza_config::ExposeSecret;
        env.set("CADENZA_DEV_MODE", "false");
        for secret in ["CADENZA_JWT_SECRET", "CADENZA_URL_SIGNING_KEY"] {
            if env.optional(secret).is_none() {
                env.set(secret, cadenza_auth::random_secret().expose_secret());
            }
        }
        Self::start_with(env).await
    }

    /// Starts a mesh with these settings (for example dev mode off, with secrets).
    pub async fn start_with(env: cadenza_config::Env) -> Self {
        let amqp_url =
            std::env::var("CADENZA_TEST_AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.into());
        Self::start_on_broker(env, &amqp_url).await
    }

    /// [`Self::start_with`], its services reaching RabbitMQ at `amqp_url` (a
    /// proxy a test can cut, for example).
    pub async fn start_on_broker(mut env: cadenza_config::Env, amqp_url: &str) -> Self {
        cadenza_telemetry::init_for_test();
        // Tests fire calls faster than any person: rate limits apply only where a
        // test sets them.
        for limit in [
            "CADENZA_RATE_READ_PER_MINUTE",
            "CADENZA_RATE_GENERATE_PER_MINUTE",
            "CADENZA_RATE_ANONYMOUS_PER_MINUTE",
            "CADENZA_RATE_ADDRESS_PER_MINUTE",
        ] {
            if env.optional(limit).is_none() {
                env.set(limit, "1000000");
            }
        }
        let database = TestDatabase::create().await;
        let amqp_url = amqp_url.to_owned();
        if let Err(err) = cadenza_queue::connect(&amqp_url, "cadenza-test-probe").await {
            panic!(
                "RabbitMQ is not reachable at {amqp_url}: {err}. Start it with `make services`."
            );
        }
        let queue_prefix = format!("cadenza-test-{}", uuid::Uuid::new_v4().simple());
        let data_dir = tempfile::tempdir().expect("temporary data directory");
        let config = MeshConfig {
            database_url: database.url.clone(),
            amqp_url: amqp_url.clone(),
            queue_prefix: queue_prefix.clone(),
            queue_expiry: Some(TEST_QUEUE_EXPIRY),
            data_dir: data_dir.path().to_path_buf(),
            gateway_addr: "127.0.0.1:0".parse().expect("address"),
            storage_http_addr: "127.0.0.1:0".parse().expect("address"),
            admin_ports: false,
            worker_concurrency: 2,
            env,
        };
        let mesh = Mesh::start(config).await.expect("the mesh starts");
        Self {
            mesh,
            database,
            queue_prefix,
            amqp_url,
            data_dir,
        }
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.mesh.gateway_url())
            .expect("gateway url")
            .connect()
            .await
            .expect("the gateway accepts connections")
    }

    /// Where storage keeps this mesh's bytes (the local backend's root).
    pub fn data_dir(&self) -> &std::path::Path {
        self.data_dir.path()
    }

    /// The mesh's exchanges and queues, declared as its services declare them.
    pub fn topology(&self) -> cadenza_queue::Topology {
        let mut topology = cadenza_queue::Topology::new(&self.queue_prefix);
        topology.expires = Some(TEST_QUEUE_EXPIRY);
        topology
    }

    /// A dev token for `subject`, issued by the gateway.
    pub async fn token(&self, subject: &str) -> String {
        let mut dev = v1::dev_service_client::DevServiceClient::new(self.channel().await);
        dev.issue_dev_token(v1::IssueDevTokenRequest {
            subject: subject.into(),
            ttl_seconds: 0,
        })
        .await
        .expect("dev token")
        .into_inner()
        .token
    }

    /// Stops the mesh and deletes its queues.
    pub async fn stop(mut self) {
        self.mesh.stop().await;
        if let Ok(connection) = cadenza_queue::connect(&self.amqp_url, "cadenza-test-cleanup").await
            && let Ok(channel) = connection.create_channel().await
        {
            let _ = cadenza_queue::Topology::new(&self.queue_prefix)
                .delete(&channel)
                .await;
        }
    }
}

/// Adds `authorization: Bearer <token>` to a request.
pub fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = MetadataValue::try_from(format!("Bearer {token}")).expect("ascii token");
    request.metadata_mut().insert("authorization", value);
    request
}

/// The password test accounts are registered with.
pub const TEST_PASSWORD: &str = "a long enough passphrase";

/// Registers `email` with [`TEST_PASSWORD`] and returns its session.
pub async fn register(channel: &Channel, email: &str) -> v1::Session {
    v1::auth_service_client::AuthServiceClient::new(channel.clone())
        .register(v1::RegisterRequest {
            email: email.into(),
            password: TEST_PASSWORD.into(),
            accept_terms_version: String::new(),
        })
        .await
        .expect("register")
        .into_inner()
}

/// Registers `email`, makes it an administrator in the database (there is no
/// other way to make the first one) and signs it in: its access token.
pub async fn admin_token(mesh: &TestMesh, channel: &Channel, email: &str) -> String {
    admin_token_in(&mesh.database.url, channel, email).await
}

/// [`admin_token`] for services whose database is at `database_url` (services
/// started as processes rather than as a [`TestMesh`]).
pub async fn admin_token_in(database_url: &str, channel: &Channel, email: &str) -> String {
    use diesel_async::{AsyncConnection, RunQueryDsl};
    register(channel, email).await;
    let mut conn = diesel_async::AsyncPgConnection::establish(database_url)
        .await
        .expect("database");
    diesel::sql_query("UPDATE users SET role = 'admin' WHERE email = $1")
        .bind::<diesel::sql_types::Text, _>(email)
        .execute(&mut conn)
        .await
        .expect("make an admin");
    v1::auth_service_client::AuthServiceClient::new(channel.clone())
        .login(v1::LoginRequest {
            email: email.into(),
            password: TEST_PASSWORD.into(),
        })
        .await
        .expect("admin login")
        .into_inner()
        .access_token
}

/// The fields a status's `BadRequest` details name, in its order; empty without.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// The `ErrorInfo` reason of a status, or empty.
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

/// Polls a project's status until its latest run has finished, within `timeout`.
pub async fn finished_state(
    channel: &Channel,
    token: &str,
    project: &str,
    timeout: std::time::Duration,
) -> v1::RunState {
    let mut projects = v1::project_service_client::ProjectServiceClient::new(channel.clone());
    tokio::time::timeout(timeout, async {
        loop {
            let status = projects
                .get_project_status(authed(
                    token,
                    v1::GetProjectStatusRequest {
                        name: project.into(),
                    },
                ))
                .await
                .expect("status")
                .into_inner();
            let state = status.state();
            if matches!(
                state,
                v1::RunState::Succeeded | v1::RunState::Failed | v1::RunState::Cancelled
            ) {
                return state;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the run finishes in time")
}

/// The caller's `UsageService.GetUsage`.
pub async fn usage(channel: &Channel, token: &str) -> v1::Usage {
    v1::usage_service_client::UsageServiceClient::new(channel.clone())
        .get_usage(authed(token, v1::GetUsageRequest {}))
        .await
        .expect("usage")
        .into_inner()
}

/// Creates a project of the caller's from `fields` (title, prompt, duration...).
pub async fn create_project(channel: &Channel, token: &str, fields: v1::Project) -> v1::Project {
    v1::project_service_client::ProjectServiceClient::new(channel.clone())
        .create_project(authed(
            token,
            v1::CreateProjectRequest {
                project: Some(fields),
                request_id: String::new(),
            },
        ))
        .await
        .expect("create project")
        .into_inner()
}

/// Starts generating `project` (`projects/{id}`) and returns its run.
pub async fn generate(channel: &Channel, token: &str, project: &str) -> v1::Run {
    v1::project_service_client::ProjectServiceClient::new(channel.clone())
        .generate_song(authed(
            token,
            v1::GenerateSongRequest {
                name: project.into(),
                request_id: String::new(),
            },
        ))
        .await
        .expect("generate")
        .into_inner()
}

/// Waits (up to two minutes) until `project`'s mix stage is running and has
/// reported progress: the moment to cancel a long song in the middle of a stage.
pub async fn wait_until_mixing(channel: &Channel, token: &str, project: &str) {
    let mut projects = v1::project_service_client::ProjectServiceClient::new(channel.clone());
    tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let status = projects
                .get_project_status(authed(
                    token,
                    v1::GetProjectStatusRequest {
                        name: project.into(),
                    },
                ))
                .await
                .expect("status")
                .into_inner();
            let mixing = status.stages.iter().any(|s| {
                s.kind() == v1::StageKind::Mix
                    && s.state() == v1::StageState::Running
                    && s.progress > 0.0
            });
            if mixing {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the mix starts");
}
