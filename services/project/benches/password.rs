//! The cost of the Argon2id parameters chosen for passwords (19 MiB, t=2, p=1).
//! `cargo bench -p cadenza-project --bench password`

use std::time::Instant;

use cadenza_project::accounts::credentials::{hash_password, verify_password};

const ROUNDS: u32 = 20;

fn main() {
    let started = Instant::now();
    let mut hash = String::new();
    for _ in 0..ROUNDS {
        hash = hash_password("correct horse battery staple").expect("hash");
    }
    let per_hash = started.elapsed() / ROUNDS;
    let started = Instant::now();
    for _ in 0..ROUNDS {
        assert!(verify_password("correct horse battery staple", &hash));
    }
    let per_verify = started.elapsed() / ROUNDS;
    println!(
        "argon2id m=19456 KiB t=2 p=1: hash {per_hash:?}, verify {per_verify:?} (mean of {ROUNDS}, one core)"
    );
}
