//! What verifying an access token costs on the gateway's hot path.
//! `cargo bench -p cadenza-auth --bench verify`

use std::time::Instant;

use cadenza_auth::{TokenKeys, random_secret};

const ROUNDS: u32 = 100_000;

fn main() {
    let previous = [random_secret(), random_secret()];
    let keys = TokenKeys::with_previous(&random_secret(), &previous).expect("keys");
    let (token, _) = keys
        .issue_with_role(
            "0190b8d2-7c1e-7cc0-a1b2-0123456789ab",
            Some("user"),
            chrono::Duration::minutes(15),
        )
        .expect("token");
    // Warm up caches and the allocator.
    for _ in 0..1000 {
        keys.verify(&token).expect("valid");
    }
    let started = Instant::now();
    for _ in 0..ROUNDS {
        std::hint::black_box(keys.verify(std::hint::black_box(&token)).expect("valid"));
    }
    let per_token = started.elapsed() / ROUNDS;
    println!(
        "HS256 access token verification: {per_token:?} per token (mean of {ROUNDS}, one core)"
    );
}
