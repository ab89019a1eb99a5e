//! The private Postgres and RabbitMQ the chaos test starts, stops and kills, and
//! the process helpers everything else uses: running a command, blocking work,
//! free ports, log files and the progress line.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use uuid::Uuid;

pub(crate) static CLOCK: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

pub(crate) fn say(message: impl AsRef<str>) {
    let elapsed = CLOCK.get_or_init(Instant::now).elapsed().as_secs_f64();
    println!("[chaos {elapsed:6.1}s] {}", message.as_ref());
}

/// Runs a command to completion; its output, or an error quoting it.
pub(crate) fn run(command: &mut Command, what: &str) -> anyhow::Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{what}: could not run {command:?}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(stdout)
}

/// Blocking work (process control) without stalling the runtime.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

pub(crate) fn free_ports(n: usize) -> Vec<u16> {
    // Held together so they differ, then released for the services to take.
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("address").port())
        .collect()
}

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

pub(crate) fn log_file(path: &Path) -> anyhow::Result<fs::File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A private Postgres cluster in the scratch directory.
pub(crate) struct Postgres {
    bin: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) port: u16,
    as_postgres: bool,
    pub(crate) running: bool,
}

impl Postgres {
    fn find_bin() -> anyhow::Result<PathBuf> {
        let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
                let bin = entry.path().join("bin");
                bin.join("initdb").exists().then_some((version, bin))
            })
            .collect();
        found.sort();
        if let Some((_, bin)) = found.pop() {
            return Ok(bin);
        }
        let dir = run(
            Command::new("pg_config").arg("--bindir"),
            "finding Postgres",
        )
        .context("no /usr/lib/postgresql/*/bin/initdb and no pg_config: install postgresql")?;
        Ok(PathBuf::from(dir.trim()))
    }

    pub(crate) fn create(root: &Path, port: u16) -> anyhow::Result<Self> {
        let dir = root.join("postgres");
        fs::create_dir_all(&dir)?;
        let as_postgres = is_root();
        if as_postgres {
            // Postgres refuses to run as root.
            run(
                Command::new("chown").arg("postgres:postgres").arg(&dir),
                "giving the Postgres directory to the postgres user",
            )?;
        }
        let this = Self {
            bin: Self::find_bin()?,
            dir,
            port,
            as_postgres,
            running: false,
        };
        run(
            this.tool("initdb")
                .arg("-D")
                .arg(this.dir.join("data"))
                .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]),
            "initdb",
        )?;
        Ok(this)
    }

    pub(crate) fn tool(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        // The postgres user may not be allowed into the caller's directory.
        command.current_dir(&self.dir);
        command
    }

    pub(crate) fn start(&mut self) -> anyhow::Result<()> {
        // No fsync (the test stops Postgres, never the machine: what reached the
        // kernel survives), but every commit is written before it is answered:
        // with synchronous_commit off, an immediate stop loses commits already
        // acknowledged, which no production database does and no service can
        // make up for (a stored object's catalog row lost after the upload
        // succeeded).
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300 \
             -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.display()
        );
        run(
            self.tool("pg_ctl")
                .arg("-D")
                .arg(self.dir.join("data"))
                .arg("-l")
                .arg(self.dir.join("postgres.log"))
                .args(["-w", "-t", "60", "-o", &options, "start"]),
            "starting the private Postgres",
        )?;
        self.running = true;
        Ok(())
    }

    /// `immediate` cuts every connection at once, as a crash would.
    pub(crate) fn stop(&mut self, mode: &str) -> anyhow::Result<()> {
        run(
            self.tool("pg_ctl")
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-m", mode, "-w", "-t", "60", "stop"]),
            "stopping the private Postgres",
        )?;
        self.running = false;
        Ok(())
    }

    pub(crate) fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self.stop("immediate");
        }
    }
}

/// A private RabbitMQ node: its own name, ports, data, logs and cookie.
pub(crate) struct Rabbit {
    dir: PathBuf,
    logs: PathBuf,
    pub(crate) node: String,
    port: u16,
    dist_port: u16,
    server: PathBuf,
    ctl: PathBuf,
    pub(crate) child: Option<Child>,
}

impl Rabbit {
    fn tool(name: &str) -> PathBuf {
        // Debian's /usr/sbin wrappers switch to the system `rabbitmq` user and its
        // cookie; the scripts behind them take our environment as it is.
        let debian = Path::new("/usr/lib/rabbitmq/bin").join(name);
        if debian.exists() {
            debian
        } else {
            PathBuf::from(name)
        }
    }

    pub(crate) fn create(
        root: &Path,
        logs: &Path,
        port: u16,
        dist_port: u16,
    ) -> anyhow::Result<Self> {
        let dir = root.join("rabbitmq");
        fs::create_dir_all(&dir)?;
        fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.default = 127.0.0.1:{port}\nloopback_users.guest = true\n"),
        )?;
        // No plugins: management stays off.
        fs::write(dir.join("enabled_plugins"), "[].\n")?;
        // Read instead of /etc/rabbitmq/rabbitmq-env.conf (which names the shared node).
        fs::write(dir.join("rabbitmq-env.conf"), "")?;
        let id = Uuid::new_v4().simple().to_string();
        Ok(Self {
            node: format!("chaos-{}@localhost", &id[..12]),
            logs: logs.join("rabbitmq"),
            dir,
            port,
            dist_port,
            server: Self::tool("rabbitmq-server"),
            ctl: Self::tool("rabbitmqctl"),
            child: None,
        })
    }

    fn environment(&self, command: &mut Command) {
        let d = &self.dir;
        command
            .env("HOME", d)
            .env("RABBITMQ_CONF_ENV_FILE", d.join("rabbitmq-env.conf"))
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", &self.logs)
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", d.join("advanced.config"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", d.join("pid"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}",
            )
            .current_dir(d);
    }

    fn ctl(&self) -> Command {
        let mut command = Command::new(&self.ctl);
        self.environment(&mut command);
        command.arg("-n").arg(&self.node);
        command
    }

    pub(crate) fn start(&mut self) -> anyhow::Result<()> {
        fs::create_dir_all(&self.logs)?;
        let out = log_file(&self.logs.join("server.out"))?;
        let mut command = Command::new(&self.server);
        self.environment(&mut command);
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", self.server.display()))?;
        self.child = Some(child);
        let waited = run(
            self.ctl()
                .args(["wait", "--timeout", "120"])
                .arg(self.dir.join("pid")),
            "waiting for the private RabbitMQ",
        );
        if let Err(err) = waited {
            let log = tail(&self.logs.join("server.out"), 20);
            self.kill();
            bail!("{err:#}\n{log}");
        }
        Ok(())
    }

    pub(crate) fn stop(&mut self) -> anyhow::Result<()> {
        let stopped = run(
            self.ctl().arg("stop").arg(self.dir.join("pid")),
            "stopping the private RabbitMQ",
        );
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        stopped.map(drop)
    }

    pub(crate) fn kill(&mut self) {
        // Only the node of this run: a stale pid may belong to someone else by now.
        let home = format!("HOME={}", self.dir.display());
        if let Ok(pid) = fs::read_to_string(self.dir.join("pid"))
            && fs::read(format!("/proc/{}/environ", pid.trim()))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == home.as_bytes()))
        {
            let _ = Command::new("kill")
                .args(["-9", pid.trim()])
                .stderr(Stdio::null())
                .status();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Every queue of the node with its messages (ready and unacknowledged).
    pub(crate) fn queues(&self) -> anyhow::Result<Vec<(String, i64)>> {
        let out = run(
            self.ctl().args([
                "list_queues",
                "-q",
                "--formatter",
                "json",
                "name",
                "messages",
            ]),
            "listing the private RabbitMQ's queues",
        )?;
        let rows: Vec<serde_json::Value> =
            serde_json::from_str(out.trim()).context("rabbitmqctl list_queues output")?;
        Ok(rows
            .iter()
            .map(|row| {
                (
                    row["name"].as_str().unwrap_or_default().to_owned(),
                    row["messages"].as_i64().unwrap_or(-1),
                )
            })
            .collect())
    }

    /// Deliveries not yet acknowledged on the connections of process `pid`.
    pub(crate) fn unacked_of(&self, pid: u32) -> anyhow::Result<i64> {
        let ss = run(
            Command::new("ss").args(["-Htnp", "state", "established"]),
            "listing TCP connections",
        )?;
        let mine = format!("pid={pid},");
        let broker = format!("127.0.0.1:{}", self.port);
        // The process's own ends of its connections to the broker.
        let clients: BTreeSet<String> = ss
            .lines()
            .filter(|l| l.contains(&mine))
            .filter_map(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                let peer = fields.iter().position(|f| *f == broker)?;
                Some(fields.get(peer.checked_sub(1)?)?.to_string())
            })
            .collect();
        let out = run(
            self.ctl().args([
                "list_channels",
                "-q",
                "--formatter",
                "json",
                "name",
                "messages_unacknowledged",
            ]),
            "listing the private RabbitMQ's channels",
        )?;
        // A channel's name starts with its client's address: "127.0.0.1:54321 -> ...".
        let channels: Vec<serde_json::Value> = serde_json::from_str(out.trim())?;
        Ok(channels
            .iter()
            .filter(|ch| {
                ch["name"]
                    .as_str()
                    .and_then(|n| n.split_whitespace().next())
                    .is_some_and(|client| clients.contains(client))
            })
            .filter_map(|ch| ch["messages_unacknowledged"].as_i64())
            .sum())
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        if self.child.is_some() && self.stop().is_err() {
            self.kill();
        }
    }
}
