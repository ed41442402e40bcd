//! Group commit of one runner's writes: the intents and step rows of all the items a runner
//! holds go to one writer task, which commits whatever has queued up in one transaction (the
//! queue's counterpart of the local journal's group commit). An intent's `begin` returns only
//! once the transaction holding it has committed, so "intents before changes" holds per host;
//! hosts announcing at the same moment merely share the commit.
//!
//! Requests are applied in the order they arrived within each item (the batch is sorted by
//! work item, stably), so one item's step start, intent, outcome and step end keep their order.
//! Every row still carries its item's fencing token and passes the fence trigger. When the
//! database refuses a shared transaction (one item's claim went stale, one item's row is
//! refused, or the database chose it as a deadlock victim), every request of the batch is
//! retried alone, in its own transaction, so only the item at fault sees the error (a stale
//! claim: [`QueueError::Stale`]); a database that cannot be reached is reported to every
//! request of the batch without retrying them one by one.

use std::sync::Arc;

use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::work::{StepRow, insert_intent_in, stale_unless_one, start_in, write_steps_in};
use super::{Claim, QueueError};

/// The most requests committed in one transaction.
const MAX_BATCH: usize = 256;

/// A handle to a runner's writer task; the task ends when the last handle is dropped.
#[derive(Debug, Clone)]
pub(super) struct GroupCommit(mpsc::UnboundedSender<Request>);

#[derive(Debug)]
struct Request {
    claim: Claim,
    write: Write,
}

#[derive(Debug)]
enum Write {
    Intent {
        play: i32,
        task_index: i32,
        action: String,
        reply: oneshot::Sender<Result<i64, QueueError>>,
    },
    Steps {
        /// Mark the item running (from claimed) first.
        start: bool,
        outcomes: Vec<(i64, Value)>,
        steps: Vec<StepRow>,
        reply: oneshot::Sender<Result<(), QueueError>>,
    },
}

/// Why a shared transaction did not commit.
enum Shared {
    /// The database refused a statement (one item's claim is stale, one item's row is
    /// refused, or the transaction was a deadlock victim): retry each request alone, so only
    /// the item at fault sees the error.
    Retry,
    /// The database could not be reached or did not answer: tell every request.
    Failed(sqlx::Error),
}

impl From<sqlx::Error> for Shared {
    fn from(e: sqlx::Error) -> Shared {
        if e.as_database_error().is_some() {
            Shared::Retry
        } else {
            Shared::Failed(e)
        }
    }
}

impl GroupCommit {
    /// Start the writer task on `pool`.
    pub(super) fn spawn(pool: PgPool) -> GroupCommit {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(serve(pool, rx));
        GroupCommit(tx)
    }

    /// Commit an intent row (with whatever else is waiting); its id.
    pub(super) async fn intent(
        &self,
        claim: &Claim,
        play: i32,
        task_index: i32,
        action: &str,
    ) -> Result<i64, QueueError> {
        let (reply, answer) = oneshot::channel();
        let write = Write::Intent {
            play,
            task_index,
            action: action.to_string(),
            reply,
        };
        self.request(claim, write, answer).await
    }

    /// Commit intent outcomes and step rows (after marking the item running, with `start`).
    pub(super) async fn steps(
        &self,
        claim: &Claim,
        start: bool,
        outcomes: Vec<(i64, Value)>,
        steps: Vec<StepRow>,
    ) -> Result<(), QueueError> {
        let (reply, answer) = oneshot::channel();
        let write = Write::Steps {
            start,
            outcomes,
            steps,
            reply,
        };
        self.request(claim, write, answer).await
    }

    /// Send `write` to the writer task and wait for its result on `answer`.
    async fn request<T>(
        &self,
        claim: &Claim,
        write: Write,
        answer: oneshot::Receiver<Result<T, QueueError>>,
    ) -> Result<T, QueueError> {
        let doing = doing(&write);
        let claim = claim.clone();
        (self.0.send(Request { claim, write })).map_err(|_| gone(doing))?;
        answer.await.map_err(|_| gone(doing))?
    }
}

/// The writer task is gone (the runtime is shutting down).
fn gone(doing: &'static str) -> QueueError {
    QueueError::Unanswered {
        doing,
        after: std::time::Duration::ZERO,
    }
}

async fn serve(pool: PgPool, mut rx: mpsc::UnboundedReceiver<Request>) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        batch.sort_by_key(|r| r.claim.work_id);
        let shared = if batch.len() > 1 {
            together(&pool, &batch).await
        } else {
            Err(Shared::Retry)
        };
        match shared {
            Ok(ids) => {
                for (request, id) in batch.drain(..).zip(ids) {
                    answer(request.write, Ok(id));
                }
            }
            Err(Shared::Retry) => {
                for request in batch.drain(..) {
                    alone(&pool, request).await;
                }
            }
            Err(Shared::Failed(e)) => {
                let e = Arc::new(e);
                for request in batch.drain(..) {
                    let doing = doing(&request.write);
                    answer(
                        request.write,
                        Err(QueueError::Shared {
                            doing,
                            source: Arc::clone(&e),
                        }),
                    );
                }
            }
        }
    }
}

/// Every request in one transaction; per request, the intent id (`None` for step rows).
async fn together(pool: &PgPool, batch: &[Request]) -> Result<Vec<Option<i64>>, Shared> {
    let mut tx = pool.begin().await?;
    let mut ids = Vec::with_capacity(batch.len());
    for Request { claim, write } in batch {
        ids.push(
            apply_in(&mut tx, claim, write)
                .await
                .map_err(|refused| match refused {
                    Refused::Stale(_) => Shared::Retry,
                    Refused::Db(e) => Shared::from(e),
                })?,
        );
    }
    tx.commit().await?;
    Ok(ids)
}

/// One request in its own transaction, answered with its own result.
async fn alone(pool: &PgPool, Request { claim, write }: Request) {
    let doing = doing(&write);
    let err = |e| QueueError::db(doing, Some(&claim))(e);
    let result = async {
        let mut tx = pool.begin().await.map_err(err)?;
        let id = apply_in(&mut tx, &claim, &write)
            .await
            .map_err(|refused| match refused {
                Refused::Stale(e) => e,
                Refused::Db(e) => err(e),
            })?;
        tx.commit().await.map_err(err)?;
        Ok(id)
    }
    .await;
    answer(write, result);
}

/// Why one request's statements did not all apply.
enum Refused {
    /// Its first rows were to mark the item running, but the item is no longer this claim's
    /// to start ([`QueueError::Stale`]).
    Stale(QueueError),
    Db(sqlx::Error),
}

/// One request's statements on `conn`, inside the caller's transaction: the intent's id, or
/// `None` for step rows.
async fn apply_in(
    conn: &mut sqlx::PgConnection,
    claim: &Claim,
    write: &Write,
) -> Result<Option<i64>, Refused> {
    match write {
        Write::Intent {
            play,
            task_index,
            action,
            ..
        } => insert_intent_in(conn, claim, *play, *task_index, action)
            .await
            .map(Some)
            .map_err(Refused::Db),
        Write::Steps {
            start,
            outcomes,
            steps,
            ..
        } => {
            if *start {
                let rows = start_in(conn, claim).await.map_err(Refused::Db)?;
                stale_unless_one(claim, rows).map_err(Refused::Stale)?;
            }
            let steps: Vec<_> = steps.iter().map(StepRow::as_write).collect();
            write_steps_in(conn, claim, outcomes, &steps)
                .await
                .map_err(Refused::Db)?;
            Ok(None)
        }
    }
}

fn doing(write: &Write) -> &'static str {
    match write {
        Write::Intent { .. } => "writing an intent",
        Write::Steps { .. } => "writing steps",
    }
}

/// Send a request's result to its waiting item (which may have stopped waiting).
fn answer(write: Write, result: Result<Option<i64>, QueueError>) {
    match write {
        Write::Intent { reply, .. } => {
            let result = result.and_then(|id| id.ok_or_else(|| gone("writing an intent")));
            let _ = reply.send(result);
        }
        Write::Steps { reply, .. } => {
            let _ = reply.send(result.map(|_| ()));
        }
    }
}
