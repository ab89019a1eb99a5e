//! Queries over the project service's tables. Every function takes the connection
//! (or transaction) it runs in, so callers decide what is atomic.

pub mod events;
pub mod models;
pub mod projects;
pub mod runs;
