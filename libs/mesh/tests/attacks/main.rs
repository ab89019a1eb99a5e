//! The attack suite (issue 18): Cadenza tried as an attacker would, with a
//! valid account, a stolen key, a process inside the network or a patient
//! script. One test per protection; each sends a request that would succeed
//! but for the protection it names, and most show the same request, with the
//! one thing the attacker lacks supplied, succeeding.

mod abuse;
mod authorization;
mod identity;
mod privacy;
