//! Live delivery of stage events to watchers on every replica.
//!
//! Each replica holds one dedicated connection that `LISTEN`s on the events
//! channel. Postgres delivers a notification when the transaction that wrote an
//! event commits, whichever replica wrote it; the hub rebroadcasts the project id
//! to local watchers, which then read the durable log. Watchers also re-read on a
//! timer, so a lost notification delays an event but never loses it.

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures::StreamExt;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::store::events::EVENTS_CHANNEL;

#[derive(Clone)]
pub struct WatchHub {
    sender: broadcast::Sender<Uuid>,
}

impl WatchHub {
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(1024);
        Self { sender }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Uuid> {
        self.sender.subscribe()
    }

    /// Listens until `shutdown`, reconnecting after a lost connection.
    pub async fn listen(self, url: String, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(200);
        while !shutdown.is_cancelled() {
            match self.listen_once(&url, &shutdown).await {
                Ok(()) => return,
                Err(err) => {
                    tracing::warn!(error = %err, "event listener lost Postgres; reconnecting");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn listen_once(&self, url: &str, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let mut conn = AsyncPgConnection::establish(url).await?;
        diesel::sql_query(format!("LISTEN {EVENTS_CHANNEL}"))
            .execute(&mut conn)
            .await?;
        let mut notifications = std::pin::pin!(conn.notifications_stream());
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                next = notifications.next() => match next {
                    Some(Ok(notification)) => {
                        if let Ok(project) = Uuid::parse_str(&notification.payload) {
                            // No receivers is fine: nobody is watching.
                            let _ = self.sender.send(project);
                        }
                    }
                    Some(Err(err)) => return Err(err.into()),
                    None => anyhow::bail!("notification stream ended"),
                },
            }
        }
    }
}

impl Default for WatchHub {
    fn default() -> Self {
        Self::new()
    }
}
