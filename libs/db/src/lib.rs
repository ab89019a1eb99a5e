#![doc = include_str!("../README.md")]

pub mod migrate;
pub mod pool;
pub mod schema;
pub mod testing;

pub use diesel_async::AsyncPgConnection;
pub use pool::{DbConfig, Disposable, Pool, PooledConnection, build_pool};
