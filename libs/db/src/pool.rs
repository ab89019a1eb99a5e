//! Building the connection pool.

use std::time::Duration;

use diesel::ConnectionError;
use diesel_async::pooled_connection::deadpool::{Object, Pool as DeadPool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures::FutureExt;

pub type Pool = DeadPool<AsyncPgConnection>;
pub type PooledConnection = Object<AsyncPgConnection>;

/// Pool settings. Every wait is bounded: an exhausted pool or a dead server turns
/// into an error the caller can report, never a hang.
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// `postgres://user@host:port/database`
    pub url: String,
    pub max_connections: usize,
    /// Shown in `pg_stat_activity`, to tell services apart.
    pub application_name: String,
    pub wait_timeout: Duration,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
}

impl DbConfig {
    pub fn new(url: impl Into<String>, application_name: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 16,
            application_name: application_name.into(),
            wait_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
        }
    }
}

pub fn build_pool(config: &DbConfig) -> anyhow::Result<Pool> {
    let setup_name = config.application_name.clone();
    let statement_timeout_ms = config.statement_timeout.as_millis();
    let connect_timeout = config.connect_timeout;
    let mut manager_config = ManagerConfig::default();
    // The default (`Verified`) sends a test query at every checkout: one round
    // trip more for every transaction. `Fast` still refuses a connection that is
    // closed or left inside a transaction; any other fault shows up as an error
    // of the first query, which callers already handle (retry or requeue).
    manager_config.recycling_method = RecyclingMethod::Fast;
    manager_config.custom_setup = Box::new(move |url| {
        let name = setup_name.clone();
        let url = url.to_owned();
        async move {
            let mut conn =
                tokio::time::timeout(connect_timeout, AsyncPgConnection::establish(&url))
                    .await
                    .map_err(|_| {
                        ConnectionError::BadConnection("timed out connecting to Postgres".into())
                    })??;
            // Values are ours (a service name and a number), never user input; one
            // command per statement, as prepared statements require.
            for set in [
                format!("SET application_name = '{}'", name.replace('\'', "")),
                format!("SET statement_timeout = {statement_timeout_ms}"),
            ] {
                diesel::sql_query(set)
                    .execute(&mut conn)
                    .await
                    .map_err(ConnectionError::CouldntSetupConfiguration)?;
            }
            Ok(conn)
        }
        .boxed()
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
        &config.url,
        manager_config,
    );
    let pool = DeadPool::builder(manager)
        .max_size(config.max_connections)
        .wait_timeout(Some(config.wait_timeout))
        .create_timeout(Some(config.connect_timeout))
        .recycle_timeout(Some(config.connect_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()?;
    Ok(pool)
}

/// Whether the database answers a trivial query: the readiness signal. Readiness
/// is probed every few seconds, so this is also where the pool's gauges are kept.
pub async fn ping(pool: &Pool) -> bool {
    record_pool_gauges(pool);
    let Ok(mut conn) = pool.get().await else {
        return false;
    };
    diesel::sql_query("SELECT 1")
        .execute(&mut conn)
        .await
        .is_ok()
}

/// `cadenza_db_pool_connections{state}` (in use, idle) and the pool's limit.
pub fn record_pool_gauges(pool: &Pool) {
    let status = pool.status();
    let idle = status.available;
    let in_use = status.size.saturating_sub(idle);
    metrics::gauge!("cadenza_db_pool_connections", "state" => "in_use").set(in_use as f64);
    metrics::gauge!("cadenza_db_pool_connections", "state" => "idle").set(idle as f64);
    metrics::gauge!("cadenza_db_pool_max_connections").set(status.max_size as f64);
}

/// The error of taking a connection from the pool.
pub type PoolErrorAlias = diesel_async::pooled_connection::deadpool::PoolError;

/// A pooled connection that goes back to the pool only once [`Disposable::keep`]
/// is called, and is closed otherwise. For work that leaves a connection in a
/// state the pool cannot see, such as a transaction opened by hand: should that
/// work fail or be abandoned midway, the connection is closed (the server rolls
/// the transaction back) instead of being handed to the next caller.
pub struct Disposable {
    conn: Option<PooledConnection>,
    keep: bool,
}

impl Disposable {
    pub fn new(conn: PooledConnection) -> Self {
        Self {
            conn: Some(conn),
            keep: false,
        }
    }

    /// The work finished cleanly: the connection goes back to the pool.
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl std::ops::Deref for Disposable {
    type Target = AsyncPgConnection;

    fn deref(&self) -> &AsyncPgConnection {
        self.conn.as_deref().expect("present until dropped")
    }
}

impl std::ops::DerefMut for Disposable {
    fn deref_mut(&mut self) -> &mut AsyncPgConnection {
        self.conn.as_deref_mut().expect("present until dropped")
    }
}

impl Drop for Disposable {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && !self.keep
        {
            // Out of the pool for good, and closed as it goes.
            drop(Object::take(conn));
        }
    }
}
