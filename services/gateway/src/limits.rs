//! Rate limits: token buckets per user and per client address, stricter on
//! generation than on reads, answered with RESOURCE_EXHAUSTED and a RetryInfo
//! saying when to come back.
//!
//! Buckets live in this gateway's memory: with N replicas behind a balancer a
//! client can get up to N times the quota. Sticky sessions or a shared store
//! tighten that; for protecting the mesh from bursts it is what matters.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use cadenza_config::Env;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};

/// What kind of call is being limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Reads, per user.
    Read,
    /// Creating and generating, per user.
    Generate,
    /// Signing up and in, per client address.
    Anonymous,
}

/// Requests per minute and burst, per class, from configuration.
#[derive(Debug, Clone, Copy)]
pub struct LimitsConfig {
    pub read_per_minute: u32,
    pub generate_per_minute: u32,
    pub anonymous_per_minute: u32,
    /// Every call from one address, whoever it signs in as.
    pub address_per_minute: u32,
}

impl LimitsConfig {
    pub fn from_env(env: &mut Env) -> Self {
        Self {
            read_per_minute: env.bounded("CADENZA_RATE_READ_PER_MINUTE", 600, 1..=1_000_000),
            generate_per_minute: env.bounded("CADENZA_RATE_GENERATE_PER_MINUTE", 20, 1..=1_000_000),
            anonymous_per_minute: env.bounded(
                "CADENZA_RATE_ANONYMOUS_PER_MINUTE",
                30,
                1..=1_000_000,
            ),
            address_per_minute: env.bounded("CADENZA_RATE_ADDRESS_PER_MINUTE", 3000, 1..=1_000_000),
        }
    }
}

/// A bucket refilling `per_minute` tokens a minute, holding up to a fifth of a
/// minute's worth (at least one) for bursts.
fn quota(per_minute: u32) -> Quota {
    let rate = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new((per_minute / 5).max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(rate).allow_burst(burst)
}

pub struct Limits {
    per_user: HashMap<&'static str, DefaultKeyedRateLimiter<String>>,
    anonymous: DefaultKeyedRateLimiter<IpAddr>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl Limits {
    pub fn new(config: LimitsConfig) -> Arc<Self> {
        Arc::new(Self {
            per_user: HashMap::from([
                ("read", RateLimiter::keyed(quota(config.read_per_minute))),
                (
                    "generate",
                    RateLimiter::keyed(quota(config.generate_per_minute)),
                ),
            ]),
            anonymous: RateLimiter::keyed(quota(config.anonymous_per_minute)),
            per_address: RateLimiter::keyed(quota(config.address_per_minute)),
            clock: DefaultClock::default(),
        })
    }

    /// Takes one token for `class` from the caller's buckets, or says how long
    /// to wait.
    pub fn check(
        &self,
        class: Class,
        subject: Option<&str>,
        address: Option<IpAddr>,
    ) -> Result<(), Status> {
        if let Some(address) = address {
            self.per_address.check_key(&address).map_err(|wait| {
                limited(wait.wait_time_from(self.clock.now()), "from this address")
            })?;
        }
        match (class, subject) {
            (Class::Anonymous, _) | (_, None) => {
                if let Some(address) = address {
                    self.anonymous.check_key(&address).map_err(|wait| {
                        limited(
                            wait.wait_time_from(self.clock.now()),
                            "to sign up or sign in",
                        )
                    })?;
                }
            }
            (Class::Read | Class::Generate, Some(subject)) => {
                let bucket = if class == Class::Generate {
                    "generate"
                } else {
                    "read"
                };
                if let Some(limiter) = self.per_user.get(bucket) {
                    limiter.check_key(&subject.to_owned()).map_err(|wait| {
                        limited(
                            wait.wait_time_from(self.clock.now()),
                            if class == Class::Generate {
                                "to create or generate"
                            } else {
                                ""
                            },
                        )
                    })?;
                }
            }
        }
        Ok(())
    }

    /// Forgets buckets that are full again: memory stays bounded by the active keys.
    pub fn forget_idle(&self) {
        for limiter in self.per_user.values() {
            limiter.retain_recent();
        }
        self.anonymous.retain_recent();
        self.per_address.retain_recent();
    }
}

fn limited(wait: Duration, what: &str) -> Status {
    let seconds = wait.as_secs_f64().ceil().max(1.0);
    metrics::counter!("cadenza_rate_limited_total").increment(1);
    let mut details = ErrorDetails::with_error_info(
        "RATE_LIMITED",
        cadenza_runtime::status::DOMAIN,
        HashMap::<String, String>::new(),
    );
    details.set_retry_info(Some(wait.max(Duration::from_millis(1))));
    let what = if what.is_empty() {
        String::new()
    } else {
        format!(" {what}")
    };
    Status::with_error_details(
        tonic::Code::ResourceExhausted,
        format!("too many requests{what}; try again in {seconds:.0} s"),
        details,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(generate: u32) -> LimitsConfig {
        LimitsConfig {
            read_per_minute: 600,
            generate_per_minute: generate,
            anonymous_per_minute: 5,
            address_per_minute: 100_000,
        }
    }

    #[test]
    fn one_users_burst_leaves_another_untouched() {
        let limits = Limits::new(config(5));
        let address = Some(IpAddr::from([127, 0, 0, 1]));
        // A burst of one (5 a minute / 5), then refused with a wait.
        limits
            .check(Class::Generate, Some("alice"), address)
            .expect("first");
        let refused = limits
            .check(Class::Generate, Some("alice"), address)
            .expect_err("second within the same instant");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        let wait = refused
            .get_details_retry_info()
            .and_then(|info| info.retry_delay)
            .expect("retry info");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(12),
            "{wait:?}"
        );
        limits
            .check(Class::Generate, Some("bob"), address)
            .expect("bob is not slowed");
        limits
            .check(Class::Read, Some("alice"), address)
            .expect("reads have their own bucket");
    }
}
