//! The queue database's session advisory locks as the runners' shared
//! [`Exclusive`] store: a step that must run once at a time (a forest's AD preparation) is
//! held by one runner, on any machine, while the others wait.
//!
//! Each held key has its own connection, opened for it and closed when the guard drops. A
//! session-level lock lives exactly as long as its session, so a runner that dies (SIGKILL, a
//! lost network) releases its keys when the database notices the connection gone, with no
//! lease to wait out. Waiting is a `pg_try_advisory_lock` every second rather than a blocking
//! `pg_advisory_lock`, so a step that gives up (Ctrl-C, its item's claim lost) leaves no
//! statement queued behind the lock.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use crate::modules::exclusive::{Exclusive, ExclusiveError, ExclusiveGuard};

/// Between two tries of a key another runner holds.
const RETRY: Duration = Duration::from_secs(1);

/// Keys held in the queue database at `options`.
#[derive(Debug, Clone)]
pub struct QueueLocks {
    options: PgConnectOptions,
}

impl QueueLocks {
    pub fn new(queue: &super::Queue) -> Self {
        QueueLocks {
            options: (*queue.pool().connect_options()).clone(),
        }
    }
}

#[async_trait]
impl Exclusive for QueueLocks {
    async fn hold(&self, key: &str) -> Result<ExclusiveGuard, ExclusiveError> {
        let failed = |e: sqlx::Error| ExclusiveError {
            key: key.to_string(),
            source: Box::new(e),
        };
        let mut conn = PgConnection::connect_with(&self.options)
            .await
            .map_err(failed)?;
        loop {
            let held: bool = sqlx::query_scalar(
                "SELECT pg_try_advisory_lock(hashtextextended('salve.exclusive:' || $1, 0))",
            )
            .bind(key)
            .fetch_one(&mut conn)
            .await
            .map_err(failed)?;
            if held {
                return Ok(ExclusiveGuard::new(conn));
            }
            tokio::time::sleep(RETRY).await;
        }
    }
}
