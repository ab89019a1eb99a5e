//! A circuit breaker and health record per provider.
//!
//! After `threshold` failed calls in a row the circuit opens: the chain skips the
//! provider without calling it. When `cooldown` has passed, one call is let
//! through as a probe (half-open); its success closes the circuit, its failure
//! opens it for another cool-down. Every change of state is logged and counted.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use cadenza_proto::v1;

/// How many recent successful call durations the latency figure is taken from.
const LATENCY_WINDOW: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    Closed,
    Open { until: Instant },
    HalfOpen,
}

#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    pub threshold: u32,
    pub cooldown: Duration,
}

#[derive(Debug)]
struct State {
    circuit: Circuit,
    consecutive_failures: u32,
    /// Whether the half-open probe is out.
    probing: bool,
    ok: bool,
    last_error: Option<(String, SystemTime)>,
    latencies: VecDeque<Duration>,
    calls: u64,
    failures: u64,
}

#[derive(Debug)]
pub struct Breaker {
    name: &'static str,
    config: BreakerConfig,
    state: Mutex<State>,
}

impl Breaker {
    pub fn new(name: &'static str, config: BreakerConfig) -> Self {
        metrics::gauge!("cadenza_provider_up", "provider" => name).set(1.0);
        Self {
            name,
            config,
            state: Mutex::new(State {
                circuit: Circuit::Closed,
                consecutive_failures: 0,
                probing: false,
                ok: true,
                last_error: None,
                latencies: VecDeque::with_capacity(LATENCY_WINDOW),
                calls: 0,
                failures: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain counters behind: still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a call may go to the provider now. Claims the probe when the
    /// cool-down is over, so only one call tests a recovering provider.
    pub fn admit(&self, now: Instant) -> bool {
        let mut state = self.lock();
        match state.circuit {
            Circuit::Closed => true,
            Circuit::Open { until } if now >= until => {
                self.flip(&mut state, Circuit::HalfOpen);
                state.probing = true;
                true
            }
            Circuit::Open { .. } => false,
            Circuit::HalfOpen if !state.probing => {
                state.probing = true;
                true
            }
            Circuit::HalfOpen => false,
        }
    }

    pub fn succeeded(&self, elapsed: Duration) {
        let mut state = self.lock();
        state.calls += 1;
        state.consecutive_failures = 0;
        state.probing = false;
        if state.latencies.len() == LATENCY_WINDOW {
            state.latencies.pop_front();
        }
        state.latencies.push_back(elapsed);
        if !state.ok {
            state.ok = true;
            tracing::info!(provider = self.name, "provider is working again");
            metrics::gauge!("cadenza_provider_up", "provider" => self.name).set(1.0);
        }
        if state.circuit != Circuit::Closed {
            self.flip(&mut state, Circuit::Closed);
        }
    }

    pub fn failed(&self, error: &str, now: Instant) {
        let mut state = self.lock();
        state.calls += 1;
        state.failures += 1;
        state.consecutive_failures += 1;
        state.probing = false;
        state.last_error = Some((error.to_owned(), SystemTime::now()));
        if state.ok {
            state.ok = false;
            tracing::warn!(provider = self.name, error, "provider is failing");
            metrics::gauge!("cadenza_provider_up", "provider" => self.name).set(0.0);
        }
        let reopen = matches!(state.circuit, Circuit::HalfOpen)
            || (state.circuit == Circuit::Closed
                && state.consecutive_failures >= self.config.threshold);
        if reopen {
            self.flip(
                &mut state,
                Circuit::Open {
                    until: now + self.config.cooldown,
                },
            );
        }
    }

    fn flip(&self, state: &mut State, to: Circuit) {
        let label = circuit_label(to);
        tracing::warn!(
            provider = self.name,
            circuit = label,
            "provider circuit changed"
        );
        metrics::counter!("cadenza_provider_circuit_changes_total", "provider" => self.name, "to" => label)
            .increment(1);
        state.circuit = to;
    }

    pub fn circuit(&self) -> Circuit {
        self.lock().circuit
    }

    pub fn health(&self) -> v1::ProviderHealth {
        let state = self.lock();
        let mut latencies: Vec<Duration> = state.latencies.iter().copied().collect();
        latencies.sort();
        v1::ProviderHealth {
            name: self.name.to_owned(),
            ok: state.ok,
            last_error: state
                .last_error
                .as_ref()
                .map(|(e, _)| e.clone())
                .unwrap_or_default(),
            last_error_time: state
                .last_error
                .as_ref()
                .map(|(_, at)| prost_types::Timestamp::from(*at)),
            circuit: match state.circuit {
                Circuit::Closed => v1::CircuitState::Closed,
                Circuit::Open { .. } => v1::CircuitState::Open,
                Circuit::HalfOpen => v1::CircuitState::HalfOpen,
            } as i32,
            recent_latency: latencies
                .get(latencies.len() / 2)
                .and_then(|d| prost_types::Duration::try_from(*d).ok()),
            calls: state.calls,
            failures: state.failures,
            // Filled in by the service, which knows which replica it is.
            replica: String::new(),
        }
    }
}

fn circuit_label(circuit: Circuit) -> &'static str {
    match circuit {
        Circuit::Closed => "closed",
        Circuit::Open { .. } => "open",
        Circuit::HalfOpen => "half_open",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(
            "test",
            BreakerConfig {
                threshold: 3,
                cooldown: Duration::from_secs(10),
            },
        )
    }

    #[test]
    fn opens_after_consecutive_failures_and_probes_once_after_the_cooldown() {
        let b = breaker();
        let t0 = Instant::now();
        for _ in 0..2 {
            assert!(b.admit(t0));
            b.failed("UPSTREAM_5XX: boom", t0);
        }
        assert_eq!(b.circuit(), Circuit::Closed, "two failures are not enough");
        assert!(b.admit(t0));
        b.failed("UPSTREAM_5XX: boom", t0);
        assert!(matches!(b.circuit(), Circuit::Open { .. }));
        assert!(!b.admit(t0 + Duration::from_secs(9)), "skipped while open");

        let later = t0 + Duration::from_secs(10);
        assert!(b.admit(later), "the probe goes through");
        assert!(!b.admit(later), "only one probe at a time");
        b.failed("UPSTREAM_5XX: still", later);
        assert!(
            matches!(b.circuit(), Circuit::Open { .. }),
            "a failed probe reopens"
        );

        let again = later + Duration::from_secs(10);
        assert!(b.admit(again));
        b.succeeded(Duration::from_millis(40));
        assert_eq!(b.circuit(), Circuit::Closed);
        let health = b.health();
        assert!(health.ok);
        assert_eq!((health.calls, health.failures), (5, 4));
        assert_eq!(health.last_error, "UPSTREAM_5XX: still");
    }

    #[test]
    fn a_success_resets_the_count_of_failures() {
        let b = breaker();
        let t0 = Instant::now();
        for _ in 0..5 {
            b.failed("x", t0);
            b.failed("x", t0);
            b.succeeded(Duration::from_millis(1));
        }
        assert_eq!(b.circuit(), Circuit::Closed);
    }
}
