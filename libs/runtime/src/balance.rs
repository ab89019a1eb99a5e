//! Client-side balancing over every replica a host name resolves to.
//!
//! A gRPC client keeps one HTTP/2 connection, and kube-proxy balances
//! connections, not calls: behind one address every call of a client lands on
//! the same replica. With `CADENZA_BALANCE_REFRESH_SECONDS` above zero, an
//! internal client instead resolves the URL's host (a headless Service: every
//! ready pod's address) at start and again every interval, keeps one lazy
//! connection per address and spreads calls over them (tower's
//! power-of-two-choices). Each replica is dialled by address; under mutual TLS
//! its certificate is still checked against the URL's host, the name the
//! certificates carry.
//!
//! DNS trouble never empties the set: a failed lookup, or one that answers no
//! address, keeps the replicas already known (a warning once per streak). While
//! no replica is known yet, the name is asked again every second.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use cadenza_config::Env;
use cadenza_telemetry::grpc::TracedChannel;
use futures::future::BoxFuture;
use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;
use tonic::transport::channel::Change;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint, Uri};

/// The variable: seconds between lookups; `0` (the default) turns balancing off.
pub const REFRESH_SECONDS: &str = "CADENZA_BALANCE_REFRESH_SECONDS";

/// How soon the name is asked again while no replica is known.
const EMPTY_RETRY: Duration = Duration::from_secs(1);

/// Room for changes not yet taken in by the channel.
const CHANGE_CAPACITY: usize = 64;

/// `CADENZA_BALANCE_REFRESH_SECONDS` (0 to 3600): `None` when 0, balancing off.
pub fn refresh_from_env(env: &mut Env) -> Option<Duration> {
    match env.bounded(REFRESH_SECONDS, 0u64, 0..=3600) {
        0 => None,
        seconds => Some(Duration::from_secs(seconds)),
    }
}

/// Resolves a host and port to addresses.
pub type Resolver =
    Arc<dyn Fn(String, u16) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> + Send + Sync>;

/// The system resolver (`tokio::net::lookup_host`).
pub fn dns() -> Resolver {
    Arc::new(|host, port| {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect())
        })
    })
}

/// What to tell the channel after a lookup.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    pub insert: Vec<SocketAddr>,
    pub remove: Vec<SocketAddr>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.insert.is_empty() && self.remove.is_empty()
    }
}

/// From the replicas in use and the addresses a lookup found, what to add and
/// what to drop (each sorted). An empty lookup changes nothing: DNS that
/// momentarily answers nothing must not take every replica away.
pub fn diff(current: &BTreeSet<SocketAddr>, resolved: &BTreeSet<SocketAddr>) -> Changes {
    if resolved.is_empty() {
        return Changes::default();
    }
    Changes {
        insert: resolved.difference(current).copied().collect(),
        remove: current.difference(resolved).copied().collect(),
    }
}

/// What every replica's endpoint is made from.
struct Target {
    url: String,
    origin: Uri,
    scheme: String,
    host: String,
    port: u16,
    tls: Option<ClientTlsConfig>,
}

impl Target {
    fn parse(url: &str, tls: Option<ClientTlsConfig>) -> anyhow::Result<Self> {
        // The URL as a whole must make an endpoint (scheme and TLS agree).
        cadenza_telemetry::grpc::endpoint(url, tls.clone())?;
        let origin: Uri = url
            .parse()
            .with_context(|| format!("`{url}` is not a URL"))?;
        let scheme = origin.scheme_str().unwrap_or("http").to_owned();
        let host = origin
            .host()
            .with_context(|| format!("`{url}` has no host"))?
            .trim_matches(|c| c == '[' || c == ']')
            .to_owned();
        let port = origin
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        Ok(Self {
            url: url.to_owned(),
            origin,
            scheme,
            host,
            port,
            tls,
        })
    }

    /// One replica: dialled at `addr`, with the same settings as any internal
    /// channel, its certificate checked against the URL's host, and calls
    /// addressed (`:authority`) as to the URL.
    fn endpoint(&self, addr: SocketAddr) -> anyhow::Result<Endpoint> {
        let tls = self
            .tls
            .clone()
            .map(|config| config.domain_name(self.host.clone()));
        Ok(
            cadenza_telemetry::grpc::endpoint(&format!("{}://{addr}", self.scheme), tls)?
                .origin(self.origin.clone()),
        )
    }
}

/// A traced channel spreading calls over every address `url`'s host resolves
/// to (by `resolver`), asked again every `refresh`. It is lazy like a single
/// channel: the first lookup happens in the background, and calls made before
/// any replica is known wait for one. The refresh task ends at `shutdown` or
/// when the last clone of the channel is dropped.
pub fn balanced_channel(
    url: &str,
    tls: Option<ClientTlsConfig>,
    refresh: Duration,
    resolver: Resolver,
    shutdown: CancellationToken,
    credentials: crate::tls::Credentials,
) -> anyhow::Result<TracedChannel> {
    let target = Target::parse(url, tls)?;
    let (channel, changes) = Channel::balance_channel(CHANGE_CAPACITY);
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = changes.closed() => {}
            () = follow(target, resolver, refresh, changes.clone()) => {}
        }
    });
    Ok(cadenza_telemetry::grpc::traced_with(channel, credentials))
}

/// Looks the host up every `refresh` (every second while nothing is known) and
/// passes the differences on, until the channel is gone.
async fn follow(
    target: Target,
    resolver: Resolver,
    refresh: Duration,
    changes: Sender<Change<SocketAddr, Endpoint>>,
) {
    let mut current = BTreeSet::new();
    let mut failing = false;
    loop {
        let found = resolver(target.host.clone(), target.port)
            .await
            .map(|found| found.into_iter().collect::<BTreeSet<_>>());
        match found {
            Ok(found) if !found.is_empty() => {
                if failing {
                    tracing::info!(url = %target.url, replicas = found.len(), "the replicas resolve again");
                    failing = false;
                }
                let plan = diff(&current, &found);
                if !plan.is_empty() {
                    tracing::info!(
                        url = %target.url,
                        added = ?plan.insert,
                        removed = ?plan.remove,
                        "replicas changed"
                    );
                }
                // New replicas first, so the set never passes through empty.
                for addr in plan.insert {
                    match target.endpoint(addr) {
                        Ok(endpoint) => {
                            if changes.send(Change::Insert(addr, endpoint)).await.is_err() {
                                return;
                            }
                            current.insert(addr);
                        }
                        Err(err) => {
                            tracing::warn!(url = %target.url, %addr, error = %format!("{err:#}"), "cannot dial a replica");
                        }
                    }
                }
                for addr in plan.remove {
                    if changes.send(Change::Remove(addr)).await.is_err() {
                        return;
                    }
                    current.remove(&addr);
                }
            }
            other => {
                if !failing {
                    let error = match other {
                        Err(err) => err.to_string(),
                        Ok(_) => "no address".to_owned(),
                    };
                    tracing::warn!(
                        url = %target.url,
                        host = %target.host,
                        error,
                        kept = current.len(),
                        "cannot resolve the replicas; keeping the ones known"
                    );
                    failing = true;
                }
            }
        }
        let wait = if current.is_empty() {
            refresh.min(EMPTY_RETRY)
        } else {
            refresh
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(addrs: &[&str]) -> BTreeSet<SocketAddr> {
        addrs.iter().map(|a| a.parse().expect("address")).collect()
    }

    fn addrs(addrs: &[&str]) -> Vec<SocketAddr> {
        set(addrs).into_iter().collect()
    }

    #[test]
    fn the_first_lookup_inserts_everything() {
        let changes = diff(&set(&[]), &set(&["10.0.0.2:50061", "10.0.0.1:50061"]));
        assert_eq!(changes.insert, addrs(&["10.0.0.1:50061", "10.0.0.2:50061"]));
        assert!(changes.remove.is_empty());
    }

    #[test]
    fn new_and_vanished_addresses_are_inserted_and_removed() {
        let changes = diff(
            &set(&["10.0.0.1:50061", "10.0.0.2:50061"]),
            &set(&["10.0.0.2:50061", "10.0.0.3:50061"]),
        );
        assert_eq!(
            changes,
            Changes {
                insert: addrs(&["10.0.0.3:50061"]),
                remove: addrs(&["10.0.0.1:50061"]),
            }
        );
    }

    #[test]
    fn the_same_answer_changes_nothing() {
        let both = set(&["10.0.0.1:50061", "[fd00::1]:50061"]);
        assert!(diff(&both, &both).is_empty());
    }

    #[test]
    fn an_empty_answer_keeps_the_replicas() {
        assert!(diff(&set(&["10.0.0.1:50061"]), &set(&[])).is_empty());
        assert!(diff(&set(&[]), &set(&[])).is_empty());
    }

    #[test]
    fn the_same_address_on_another_port_is_another_replica() {
        let changes = diff(&set(&["10.0.0.1:50061"]), &set(&["10.0.0.1:50062"]));
        assert_eq!(changes.insert, addrs(&["10.0.0.1:50062"]));
        assert_eq!(changes.remove, addrs(&["10.0.0.1:50061"]));
    }

    #[test]
    fn refresh_is_off_unless_set() {
        let mut env = Env::from_pairs(Vec::<(String, String)>::new());
        assert_eq!(refresh_from_env(&mut env), None);
        let mut env = Env::from_pairs([(REFRESH_SECONDS, "30")]);
        assert_eq!(refresh_from_env(&mut env), Some(Duration::from_secs(30)));
        let mut env = Env::from_pairs([(REFRESH_SECONDS, "0")]);
        assert_eq!(refresh_from_env(&mut env), None);
        assert!(env.finish().is_ok());
        let mut env = Env::from_pairs([(REFRESH_SECONDS, "-1")]);
        refresh_from_env(&mut env);
        assert!(env.finish().is_err());
    }

    #[tokio::test]
    async fn urls_are_checked_like_single_channels() {
        let resolver = dns();
        let token = CancellationToken::new();
        let plain = |url: &str| {
            balanced_channel(
                url,
                None,
                Duration::from_secs(30),
                resolver.clone(),
                token.clone(),
                None,
            )
        };
        assert!(plain("http://cadenza-project-headless:50061").is_ok());
        assert!(plain("https://cadenza-project-headless:50061").is_err());
        assert!(plain("not a url").is_err());
        token.cancel();
    }

    #[test]
    fn replicas_keep_the_urls_host_for_tls_and_authority() {
        let target = Target::parse("http://[fd00::1]:50061", None).expect("target");
        assert_eq!((target.host.as_str(), target.port), ("fd00::1", 50061));
        let target = Target::parse("http://cadenza-storage-headless:50063", None).expect("target");
        assert_eq!(target.host, "cadenza-storage-headless");
        let endpoint = target
            .endpoint("10.1.2.3:50063".parse().expect("addr"))
            .expect("endpoint");
        assert_eq!(endpoint.uri().to_string(), "http://10.1.2.3:50063/");
    }
}
