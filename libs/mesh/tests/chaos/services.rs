//! The service processes (storage, project, two generation workers, gateway)
//! and the sandbox that starts them on the private Postgres and RabbitMQ, keeps
//! them running and stops everything at the end.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cadenza_proto::v1::project_service_client::ProjectServiceClient;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tonic::transport::Channel;
use uuid::Uuid;

use crate::infra::{Postgres, Rabbit, blocking, free_ports, log_file, run, say, tail};
use crate::{QUEUE_PREFIX, SERVICE_START_TIMEOUT, SIGNUP_CREDITS};

/// One service process.
pub(crate) struct Service {
    name: &'static str,
    program: PathBuf,
    env: Vec<(String, String)>,
    grpc_port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl Service {
    pub(crate) fn spawn(&mut self, pids: &Path) -> anyhow::Result<()> {
        let mut log = log_file(&self.log)?;
        writeln!(log, "==== chaos: starting {} ====", self.name)?;
        let child = Command::new(&self.program)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.program.display()))?;
        // For scripts/chaos.sh's trap, should this test die without cleaning up.
        writeln!(log_file(pids)?, "{}", child.id())?;
        self.child = Some(child);
        Ok(())
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no shutdown, no acknowledgements, no goodbyes.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if let Ok(mut log) = log_file(&self.log) {
                let _ = writeln!(log, "==== chaos: killed {} with SIGKILL ====", self.name);
            }
        }
    }

    /// Whether it exited by itself (it is never expected to).
    fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill9();
    }
}

async fn health(port: u16) -> bool {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let Ok(endpoint) = Channel::from_shared(format!("http://127.0.0.1:{port}")) else {
        return false;
    };
    let Ok(channel) = endpoint
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(2))
        .connect()
        .await
    else {
        return false;
    };
    tonic_health::pb::health_client::HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .is_ok_and(|r| r.into_inner().status() == ServingStatus::Serving)
}

pub(crate) struct Sandbox {
    // Dropped in this order: services, then the broker, then the database.
    services: Vec<Service>,
    pub(crate) rabbit: Rabbit,
    pub(crate) postgres: Postgres,
    pub(crate) data_dir: PathBuf,
    pub(crate) logs: PathBuf,
    pub(crate) pids: PathBuf,
    pub(crate) channel: Channel,
    _scratch: Option<tempfile::TempDir>,
}

impl Sandbox {
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let logs = std::env::var_os("CADENZA_TEST_OUTPUT")
            .map_or_else(|| workspace.join("test-output/chaos"), PathBuf::from);
        let _ = fs::remove_dir_all(&logs);
        fs::create_dir_all(&logs)?;
        let logs = logs.canonicalize()?;
        let (root, scratch) = match std::env::var_os("CADENZA_CHAOS_DIR") {
            Some(dir) => (PathBuf::from(dir), None),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("cadenza-chaos-")
                    .tempdir()?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        fs::create_dir_all(&root)?;
        // The postgres user must reach its directory inside.
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755))?;
        let bin_dir = match std::env::var_os("CADENZA_CHAOS_BIN_DIR") {
            Some(dir) => PathBuf::from(dir),
            // target/<profile>/deps/chaos-<hash> → target/<profile>
            None => std::env::current_exe()?
                .parent()
                .and_then(Path::parent)
                .context("the test binary's directory")?
                .to_path_buf(),
        };
        for name in [
            "cadenza-gateway",
            "cadenza-project",
            "cadenza-generation",
            "cadenza-storage",
        ] {
            if !bin_dir.join(name).exists() {
                bail!(
                    "{} is missing: build the services first (`cargo build --bins`, or run scripts/chaos.sh)",
                    bin_dir.join(name).display()
                );
            }
        }
        say(format!(
            "scratch {}, logs {}, binaries {}",
            root.display(),
            logs.display(),
            bin_dir.display()
        ));

        let ports = free_ports(9);
        let (pg_port, amqp_port, dist_port) = (ports[0], ports[1], ports[2]);
        let (gateway, project, gen1, gen2, storage, storage_http) =
            (ports[3], ports[4], ports[5], ports[6], ports[7], ports[8]);

        let postgres = blocking(|| -> anyhow::Result<Postgres> {
            let mut pg = Postgres::create(&root, pg_port)?;
            pg.start()?;
            Ok(pg)
        })?;
        say(format!("private Postgres up on 127.0.0.1:{pg_port}"));
        let mut admin = AsyncPgConnection::establish(&postgres.url("postgres")).await?;
        diesel::sql_query("CREATE DATABASE cadenza")
            .execute(&mut admin)
            .await?;
        drop(admin);

        let mut rabbit = Rabbit::create(&root, &logs, amqp_port, dist_port)?;
        blocking(|| rabbit.start())?;
        say(format!(
            "private RabbitMQ node {} up on 127.0.0.1:{amqp_port}",
            rabbit.node
        ));

        let data_dir = root.join("data");
        fs::create_dir_all(&data_dir)?;
        let jwt_secret = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        let common: Vec<(String, String)> = [
            ("CADENZA_DEV_MODE", "true".to_owned()),
            // Separate processes: the gateway verifies what project signs.
            ("CADENZA_JWT_SECRET", jwt_secret),
            ("CADENZA_DATABASE_URL", postgres.url("cadenza")),
            ("CADENZA_AMQP_URL", rabbit.url()),
            ("CADENZA_QUEUE_PREFIX", QUEUE_PREFIX.to_owned()),
            ("CADENZA_DATA_DIR", data_dir.display().to_string()),
            ("CADENZA_WEB_DIR", String::new()),
            ("CADENZA_GATEWAY_ADDR", format!("127.0.0.1:{gateway}")),
            ("CADENZA_PROJECT_ADDR", format!("127.0.0.1:{project}")),
            ("CADENZA_PROJECT_URL", format!("http://127.0.0.1:{project}")),
            ("CADENZA_GENERATION_URL", format!("http://127.0.0.1:{gen1}")),
            ("CADENZA_STORAGE_ADDR", format!("127.0.0.1:{storage}")),
            ("CADENZA_STORAGE_URL", format!("http://127.0.0.1:{storage}")),
            (
                "CADENZA_STORAGE_HTTP_ADDR",
                format!("127.0.0.1:{storage_http}"),
            ),
            ("CADENZA_GATEWAY_ADMIN_ADDR", "127.0.0.1:0".to_owned()),
            ("CADENZA_PROJECT_ADMIN_ADDR", "127.0.0.1:0".to_owned()),
            ("CADENZA_GENERATION_ADMIN_ADDR", "127.0.0.1:0".to_owned()),
            ("CADENZA_STORAGE_ADMIN_ADDR", "127.0.0.1:0".to_owned()),
            // Real charging.
            ("CADENZA_CREDITS_ENFORCED", "true".to_owned()),
            ("CADENZA_SIGNUP_CREDITS", SIGNUP_CREDITS.to_string()),
            ("CADENZA_FREE_SONGS_PER_DAY", "0".to_owned()),
            // Quick recovery.
            ("CADENZA_HEARTBEAT_SECONDS", "1".to_owned()),
            ("CADENZA_STAGE_HEARTBEAT_TIMEOUT_SECONDS", "5".to_owned()),
            ("CADENZA_RECONCILE_SECONDS", "1".to_owned()),
            ("CADENZA_STAGE_LOST_WORK_SECONDS", "10".to_owned()),
            ("CADENZA_WORKER_CONCURRENCY", "2".to_owned()),
            // A test fires calls faster than any person.
            ("CADENZA_RATE_READ_PER_MINUTE", "1000000".to_owned()),
            ("CADENZA_RATE_GENERATE_PER_MINUTE", "1000000".to_owned()),
            ("CADENZA_RATE_ANONYMOUS_PER_MINUTE", "1000000".to_owned()),
            ("CADENZA_RATE_ADDRESS_PER_MINUTE", "1000000".to_owned()),
            ("CADENZA_LOG_FORMAT", "plain".to_owned()),
            ("NO_COLOR", "1".to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();

        let pids = root.join("pids");
        let program = |name: &str| bin_dir.join(name);
        let migrate = run(
            Command::new(program("cadenza-project"))
                .arg("migrate")
                .envs(common.iter().map(|(k, v)| (k, v))),
            "cadenza-project migrate",
        );
        if let Err(err) = migrate {
            bail!("{err:#}");
        }
        // Each service its own mesh secret and the secrets of its callers.
        let secrets = cadenza_mesh::MeshSecrets::random();
        let service = |name: &'static str, binary: &str, port: u16, extra: &[(&str, &str)]| {
            let mut env = common.clone();
            let role = binary
                .trim_start_matches("cadenza-")
                .parse()
                .expect("a service binary");
            env.extend(secrets.variables(role));
            env.extend(
                extra
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            );
            Service {
                name,
                program: program(binary),
                env,
                grpc_port: port,
                log: logs.join(format!("{name}.log")),
                child: None,
            }
        };
        let gen1_addr = format!("127.0.0.1:{gen1}");
        let gen2_addr = format!("127.0.0.1:{gen2}");
        let mut services = vec![
            service("storage", "cadenza-storage", storage, &[]),
            service("project", "cadenza-project", project, &[]),
            service(
                "generation-1",
                "cadenza-generation",
                gen1,
                // The worker id in job logs starts with HOSTNAME.
                &[
                    ("CADENZA_GENERATION_ADDR", &gen1_addr),
                    ("HOSTNAME", "chaos-gen1"),
                ],
            ),
            service(
                "generation-2",
                "cadenza-generation",
                gen2,
                &[
                    ("CADENZA_GENERATION_ADDR", &gen2_addr),
                    ("HOSTNAME", "chaos-gen2"),
                ],
            ),
            service("gateway", "cadenza-gateway", gateway, &[]),
        ];
        for s in &mut services {
            s.spawn(&pids)?;
        }
        let channel = Channel::from_shared(format!("http://127.0.0.1:{gateway}"))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(20))
            .connect_lazy();
        let mut sandbox = Self {
            services,
            rabbit,
            postgres,
            data_dir,
            logs,
            pids,
            channel,
            _scratch: scratch,
        };
        for name in [
            "storage",
            "project",
            "generation-1",
            "generation-2",
            "gateway",
        ] {
            sandbox.wait_serving(name).await?;
        }
        say("mesh up: storage, project, generation ×2, gateway (separate processes)");
        Ok(sandbox)
    }

    pub(crate) fn service(&mut self, name: &str) -> &mut Service {
        self.services
            .iter_mut()
            .find(|s| s.name == name)
            .expect("a known service")
    }

    pub(crate) async fn wait_serving(&mut self, name: &str) -> anyhow::Result<()> {
        let port = self.service(name).grpc_port;
        let deadline = Instant::now() + SERVICE_START_TIMEOUT;
        while Instant::now() < deadline {
            if health(port).await {
                return Ok(());
            }
            if let Some(status) = self.service(name).exited() {
                let log = self.service(name).log.clone();
                bail!(
                    "{name} exited ({status}) while starting:\n{}",
                    tail(&log, 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!(
            "{name} was not SERVING within {SERVICE_START_TIMEOUT:?}; see {}",
            self.service(name).log.display()
        )
    }

    /// A service that exited by itself is a finding; it is started again (as a
    /// supervisor would) so the run goes on.
    pub(crate) fn supervise(&mut self, violations: &mut Vec<String>) {
        let pids = self.pids.clone();
        for service in &mut self.services {
            if let Some(status) = service.exited() {
                let message = format!(
                    "{} exited by itself ({status}); last lines of {}:\n{}",
                    service.name,
                    service.log.display(),
                    tail(&service.log, 15)
                );
                say(format!("VIOLATION: {message}"));
                violations.push(message);
                if let Err(err) = service.spawn(&pids) {
                    violations.push(format!("restarting {}: {err:#}", service.name));
                }
            }
        }
    }

    pub(crate) async fn db(&self) -> anyhow::Result<AsyncPgConnection> {
        Ok(AsyncPgConnection::establish(&self.postgres.url("cadenza")).await?)
    }

    pub(crate) fn projects(&self) -> ProjectServiceClient<Channel> {
        ProjectServiceClient::new(self.channel.clone())
    }

    /// Stops everything: services, broker, database. Also what Drop does.
    pub(crate) fn teardown(&mut self) {
        for service in &mut self.services {
            service.kill9();
        }
        if self.rabbit.child.is_some() && self.rabbit.stop().is_err() {
            self.rabbit.kill();
        }
        if self.postgres.running {
            let _ = self.postgres.stop("immediate");
        }
        let _ = fs::copy(
            self.postgres.dir.join("postgres.log"),
            self.logs.join("postgres.log"),
        );
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.teardown();
    }
}
