//! The scale-out work queue: PostgreSQL as the system of record between a controller (`salve
//! run|apply --queue URL`, which enqueues one work item per host and follows them, see
//! [`enqueue`] and [`follow`]) and `salve runner` processes placed inside customer networks,
//! which connect *outbound* to the database, claim their tenants' (and site's) work, run it with
//! the normal transports and runner, and write every step back ([`worker`], [`intents`]). The
//! single-machine path (local SQLite journal) is untouched by this module.
//!
//! Division of knowledge:
//! - the database holds the playbook text (runners run exactly the enqueued bytes, checked by
//!   digest), the run options, and per host: tenant, site, DAG and which plays it is in;
//! - a runner's own inventory holds how to reach its hosts and their credentials (or secret
//!   references): credentials are never written to the queue.
//!
//! Safety: a claim takes a lease measured by the *database* clock and increments the item's
//! fencing token; every later write carries the token and is rejected once another runner has
//! claimed the item (see [`schema`]). Claims of one tenant are serialised by an advisory lock,
//! so the claim query's DAG rule (no two members of a DAG claimed or running) and the tenant's
//! concurrency cap hold across all runners; a partial unique index backs the DAG rule. The
//! claim query also holds queued work back until a maintenance-window opening has room for it.

pub mod enqueue;
pub mod follow;
pub mod intents;
pub mod item;
pub mod lease;
pub mod locks;
pub mod recorder;
mod run_cache;
pub mod schema;
pub mod status;
pub mod tenants;
mod turns;
mod work;
pub mod worker;
mod writer;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub use work::{Claim, StepWrite};

/// Why the queue could not be used.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("invalid queue URL")]
    Url(#[source] sqlx::Error),
    #[error("cannot connect to the queue database")]
    Connect(#[source] sqlx::Error),
    #[error("queue database error while {doing}")]
    Db {
        doing: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("queue database error while {doing} (in a transaction shared with other items)")]
    Shared {
        doing: &'static str,
        #[source]
        source: std::sync::Arc<sqlx::Error>,
    },
    #[error("the queue database did not answer within {after:?} while {doing}")]
    Unanswered {
        doing: &'static str,
        after: Duration,
    },
    #[error(
        "work item {work_id} belongs to another runner now (fencing token {fence} is stale); \
         this runner's result is discarded"
    )]
    Stale { work_id: i64, fence: i64 },
    #[error(
        "the queue schema is version {found}, newer than this salve knows ({known}): upgrade salve"
    )]
    NewerSchema { found: i32, known: i32 },
    #[error("the queue database has no salve schema yet: run `salve queue init` first")]
    NotInitialised,
    #[error(
        "extra variable `{0}` looks like a secret; secrets are never stored in the queue \
         (give it to the runners through their inventories)"
    )]
    SecretExtraVar(String),
    #[error("host `{0}` has no tenant; queued runs need every host in a tenant group")]
    NoTenant(String),
    #[error("run `{run}`: {problem}")]
    Run {
        run: String,
        #[source]
        problem: RunProblem,
    },
}

/// What is wrong with one queued run, as its controller or a runner found it.
#[derive(Debug, thiserror::Error)]
pub enum RunProblem {
    #[error("cannot read {}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} changed while loading", path.display())]
    Changed { path: std::path::PathBuf },
    #[error("cannot store the run's options")]
    Encode(#[source] serde_json::Error),
    #[error("no such run in the queue (see `salve queue status`)")]
    NotFound,
    #[error("unreadable run options")]
    Options(#[source] serde_json::Error),
    #[error("unreadable approved plan")]
    Plan(#[source] serde_json::Error),
    #[error("host `{0}` is not in this runner's inventory")]
    HostNotHere(String),
    #[error("cannot write the playbook to a temporary directory")]
    Scratch(#[source] std::io::Error),
    #[error("playbook does not load here:\n{0}")]
    Playbook(crate::diag::Diagnostics),
    #[error("playbook digest {found} differs from the enqueued {enqueued}")]
    Digest { found: String, enqueued: String },
}

impl RunProblem {
    /// This problem, of run `run`.
    pub fn of(self, run: &str) -> QueueError {
        QueueError::Run {
            run: run.to_string(),
            problem: self,
        }
    }
}

impl QueueError {
    /// The `Db` variant for `doing`, or `Stale` when the fence trigger refused the write.
    fn db(doing: &'static str, claim: Option<&Claim>) -> impl FnOnce(sqlx::Error) -> QueueError {
        let fenced = claim.map(|c| (c.work_id, c.fence));
        move |source| {
            let stale = source
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|code| code == schema::STALE_FENCE);
            match fenced {
                Some((work_id, fence)) if stale => QueueError::Stale { work_id, fence },
                _ => QueueError::Db { doing, source },
            }
        }
    }
}

/// A connection pool to the queue database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Queue {
    pool: PgPool,
    /// Set by [`Queue::grouped`]: intents and step rows go through a group commit.
    group: Option<writer::GroupCommit>,
}

impl Queue {
    /// Connect to `url` (`postgres://user@host/db?sslmode=verify-full`). The URL's password,
    /// if any, is never printed.
    pub async fn connect(url: &str) -> Result<Queue, QueueError> {
        let options: PgConnectOptions = url.parse().map_err(QueueError::Url)?;
        let options = options.application_name("salve");
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(QueueError::Connect)?;
        Ok(Queue { pool, group: None })
    }

    /// This queue with its intents and step rows committed together with those of every
    /// other item written through the same grouped queue (a runner's items; see [`writer`]).
    /// Each write still returns only once its own transaction has committed.
    pub fn grouped(&self) -> Queue {
        Queue {
            pool: self.pool.clone(),
            group: Some(writer::GroupCommit::spawn(self.pool.clone())),
        }
    }

    /// The pool (tests and status queries).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Create or upgrade the schema; returns the versions applied (empty when up to date).
    pub async fn init(&self) -> Result<Vec<i32>, QueueError> {
        sqlx::raw_sql(schema::BOOTSTRAP)
            .execute(&self.pool)
            .await
            .map_err(QueueError::db("creating the salve schema", None))?;
        let mut applied = Vec::new();
        for (index, sql) in schema::MIGRATIONS.iter().enumerate() {
            let version = index as i32 + 1;
            let mut tx = self
                .pool
                .begin()
                .await
                .map_err(QueueError::db("starting a migration", None))?;
            // One migrator at a time; the others wait and then find the work done.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('salve.migrate', 0))")
                .execute(&mut *tx)
                .await
                .map_err(QueueError::db("locking the schema", None))?;
            let found: Option<i32> =
                sqlx::query_scalar("SELECT max(version) FROM salve.schema_version")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(QueueError::db("reading the schema version", None))?;
            let found = found.unwrap_or(0);
            if found > schema::version() {
                return Err(QueueError::NewerSchema {
                    found,
                    known: schema::version(),
                });
            }
            if found >= version {
                continue;
            }
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                .execute(&mut *tx)
                .await
                .map_err(QueueError::db("applying a migration", None))?;
            sqlx::query("INSERT INTO salve.schema_version (version) VALUES ($1)")
                .bind(version)
                .execute(&mut *tx)
                .await
                .map_err(QueueError::db("recording the schema version", None))?;
            tx.commit()
                .await
                .map_err(QueueError::db("committing a migration", None))?;
            applied.push(version);
        }
        Ok(applied)
    }

    /// Fail unless the schema exists at exactly this salve's version.
    pub async fn check_schema(&self) -> Result<(), QueueError> {
        let found: Option<i32> =
            sqlx::query_scalar("SELECT max(version) FROM salve.schema_version")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| match e.as_database_error().and_then(|d| d.code()) {
                    // 42P01 undefined_table, 3F000 invalid_schema_name
                    Some(code) if code == "42P01" || code == "3F000" => QueueError::NotInitialised,
                    _ => QueueError::Db {
                        doing: "reading the schema version",
                        source: e,
                    },
                })?;
        match found {
            None => Err(QueueError::NotInitialised),
            Some(v) if v > schema::version() => Err(QueueError::NewerSchema {
                found: v,
                known: schema::version(),
            }),
            Some(v) if v < schema::version() => Err(QueueError::NotInitialised),
            Some(_) => Ok(()),
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
