//! The fallback chain: for each stage kind, providers in the configured order.
//!
//! A provider's transient failure is retried with exponential backoff and full
//! jitter (backon) before the chain moves on; a permanent one moves on at once;
//! an open circuit skips the provider without calling it. Bad input and
//! cancellation stop the chain: no other provider would do better.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use cadenza_proto::v1;
use cadenza_synth::Stage;

use super::breaker::{Breaker, BreakerConfig};
use super::{Job, Progress, Provider, ProviderError, Ran, STAGES, stage_name};

#[derive(Debug, Clone, Copy)]
pub struct RetryConfig {
    /// Calls to one provider for one stage, the first included.
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

struct Entry {
    provider: Arc<dyn Provider>,
    breaker: Breaker,
}

/// Every provider this worker knows, and the order to try them in per stage.
pub struct Chain {
    entries: HashMap<&'static str, Entry>,
    order: HashMap<Stage, Vec<&'static str>>,
    retry: RetryConfig,
}

/// A line for the stage's job log, about one provider.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub provider: &'static str,
    /// Set on lines that report a failure.
    pub error_code: &'static str,
    pub message: String,
}

/// Where the chain writes its job log lines.
pub type Log<'a> = &'a (dyn Fn(LogEntry) + Send + Sync);

/// The provider name reported for a stage no provider was called for.
pub const NO_PROVIDER: &str = "none";

/// Why the chain did not run a stage, and whose failure it was: metrics and
/// logs name the provider that failed last, not the first of the chain.
#[derive(Debug)]
pub struct ChainFailure {
    /// The provider the error came from; [`NO_PROVIDER`] if none was called.
    pub provider: &'static str,
    pub error: ProviderError,
}

/// The `outcome` label of a provider call or a stage attempt: a stage stopped
/// by its run's cancellation is not a failure of the provider or the stage.
pub fn outcome_label(error: Option<&ProviderError>) -> &'static str {
    match error {
        None => "succeeded",
        Some(ProviderError::Cancelled) => "cancelled",
        Some(_) => "failed",
    }
}

impl Chain {
    /// `order` names providers of `providers` for each stage; a stage it does not
    /// name runs on the first provider (the built-in engine, by convention).
    pub fn new(
        providers: Vec<Arc<dyn Provider>>,
        order: HashMap<Stage, Vec<&'static str>>,
        retry: RetryConfig,
        breaker: BreakerConfig,
    ) -> Self {
        let default = providers.first().map(|p| p.name());
        let order = STAGES
            .iter()
            .map(|stage| {
                let names = order
                    .get(stage)
                    .cloned()
                    .unwrap_or_else(|| default.into_iter().collect());
                (*stage, names)
            })
            .collect();
        let entries = providers
            .into_iter()
            .map(|provider| {
                let name = provider.name();
                (
                    name,
                    Entry {
                        provider,
                        breaker: Breaker::new(name, breaker),
                    },
                )
            })
            .collect();
        Self {
            entries,
            order,
            retry,
        }
    }

    fn delays(&self) -> impl Iterator<Item = Duration> {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.retry.first_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.attempts.saturating_sub(1) as usize)
            .with_jitter()
            .build()
    }

    /// Runs `job` on the first provider of its chain that succeeds; returns that
    /// provider's name with the outputs, or the last failure and its provider.
    pub async fn run(
        &self,
        job: &Job<'_>,
        progress: Progress<'_>,
        log: Log<'_>,
    ) -> Result<(&'static str, Ran), ChainFailure> {
        let names = self.order.get(&job.stage).map(Vec::as_slice).unwrap_or(&[]);
        let fail = |provider, error| ChainFailure { provider, error };
        let mut last_provider = NO_PROVIDER;
        let mut last = ProviderError::permanent(
            "NO_PROVIDER",
            format!(
                "no provider is configured for the {} stage",
                stage_name(job.stage)
            ),
        );
        for name in names {
            let Some(entry) = self.entries.get(name) else {
                continue;
            };
            let mut delays = self.delays();
            loop {
                if job.cancel.is_cancelled() {
                    return Err(fail(last_provider, ProviderError::Cancelled));
                }
                last_provider = name;
                if !entry.breaker.admit(Instant::now()) {
                    log(LogEntry {
                        provider: name,
                        error_code: "PROVIDER_CIRCUIT_OPEN",
                        message: format!(
                            "{name}: skipped, its circuit is open after repeated failures"
                        ),
                    });
                    last = ProviderError::transient(
                        "PROVIDER_CIRCUIT_OPEN",
                        format!("{name} is failing and was skipped"),
                    );
                    break;
                }
                let started = Instant::now();
                let result = entry.provider.run(job, progress).await;
                let elapsed = started.elapsed();
                let outcome = outcome_label(result.as_ref().err());
                metrics::histogram!("cadenza_provider_call_duration_seconds", "provider" => *name, "kind" => stage_name(job.stage), "outcome" => outcome)
                    .record(elapsed.as_secs_f64());
                match result {
                    Ok(ran) => {
                        entry.breaker.succeeded(elapsed);
                        return Ok((name, ran));
                    }
                    Err(err @ (ProviderError::InvalidInput(_) | ProviderError::Cancelled)) => {
                        return Err(fail(name, err));
                    }
                    Err(err @ ProviderError::Permanent { .. }) => {
                        entry.breaker.failed(&err.to_string(), Instant::now());
                        log(LogEntry {
                            provider: name,
                            error_code: err.code(),
                            message: format!(
                                "{name}: {err}; not retried, trying the next provider"
                            ),
                        });
                        last = err;
                        break;
                    }
                    Err(err @ ProviderError::Transient { .. }) => {
                        entry.breaker.failed(&err.to_string(), Instant::now());
                        last = err;
                        match delays.next() {
                            Some(delay) => {
                                log(LogEntry {
                                    provider: name,
                                    error_code: last.code(),
                                    message: format!(
                                        "{name}: {last}; retrying in {} ms",
                                        delay.as_millis()
                                    ),
                                });
                                tokio::time::sleep(delay).await;
                            }
                            None => {
                                log(LogEntry {
                                    provider: name,
                                    error_code: last.code(),
                                    message: format!(
                                        "{name}: {last}; out of retries, trying the next provider"
                                    ),
                                });
                                break;
                            }
                        }
                    }
                }
            }
        }
        Err(fail(last_provider, last))
    }

    /// Whether a stage's chain includes a provider that fetches inputs by URL.
    pub fn needs_input_urls(&self, stage: Stage) -> bool {
        self.order
            .get(&stage)
            .is_some_and(|names| names.iter().any(|n| *n != super::builtin::NAME))
    }

    /// Every provider's state, in name order.
    pub fn health(&self) -> Vec<v1::ProviderHealth> {
        let mut all: Vec<v1::ProviderHealth> =
            self.entries.values().map(|e| e.breaker.health()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}

/// Parses `CADENZA_PROVIDER_CHAIN`: `stage=name,name;stage=name`, where stage is a
/// stage kind or `*` for every stage not named.
pub fn parse_order(
    spec: &str,
    known: &[&'static str],
) -> Result<HashMap<Stage, Vec<&'static str>>, String> {
    let mut order = HashMap::new();
    let mut fallback: Option<Vec<&'static str>> = None;
    for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (stage, names) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not `stage=provider,provider`"))?;
        let names =
            names
                .split(',')
                .map(str::trim)
                .map(|n| {
                    known.iter().find(|k| **k == n).copied().ok_or_else(|| {
                        format!("unknown provider `{n}` (known: {})", known.join(", "))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
        match stage.trim() {
            "*" => fallback = Some(names),
            slug => {
                let stage = STAGES
                    .iter()
                    .find(|s| stage_name(**s) == slug)
                    .ok_or_else(|| format!("unknown stage `{slug}`"))?;
                order.insert(*stage, names);
            }
        }
    }
    if let Some(names) = fallback {
        for stage in STAGES {
            order.entry(stage).or_insert_with(|| names.clone());
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_spec_names_stages_and_a_default() {
        let known = ["builtin", "fal", "replicate"];
        let order = parse_order("mix=fal,replicate,builtin; *=builtin", &known).expect("valid");
        assert_eq!(order[&Stage::Mix], ["fal", "replicate", "builtin"]);
        assert_eq!(order[&Stage::Lyrics], ["builtin"]);
        assert!(parse_order("", &known).expect("empty").is_empty());
        assert!(
            parse_order("mix=nobody", &known)
                .expect_err("refused")
                .contains("nobody")
        );
        assert!(
            parse_order("mixing=fal", &known)
                .expect_err("refused")
                .contains("mixing")
        );
        assert!(parse_order("fal", &known).is_err());
    }
}
