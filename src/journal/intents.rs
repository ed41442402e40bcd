//! The journal as the runner's [`IntentLog`]: an intent is committed (WAL, synchronous=FULL)
//! before the runner lets the change go ahead.
//!
//! Group commit: one writer task per run takes every intent and outcome that has queued up
//! while the previous commit was being flushed and writes them in one transaction
//! ([`Journal::write_intents`]), then answers each waiting host. A host still waits until its
//! own intent is on disk, so "intent before change" holds for every host, but 1,000 hosts
//! starting a change at the same moment cost a few disk flushes instead of 1,000 (at 1,000
//! hosts, one flush per intent and per outcome was a third of the controller's CPU).

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::{IntentId, IntentWrite, Journal, JournalError, StepKey};
use crate::runner::{IntentLog, Refused};

/// The most intents and outcomes written in one transaction.
const MAX_BATCH: usize = 1024;

/// One write waiting for its batch's commit.
struct Pending {
    write: IntentWrite,
    done: oneshot::Sender<Result<(), JournalError>>,
}

/// Intents of one run, in the journal.
#[derive(Debug)]
pub struct JournalIntents {
    run_id: String,
    writes: mpsc::UnboundedSender<Pending>,
}

impl JournalIntents {
    /// Start the run's intent writer on the current tokio runtime (call from inside it); it
    /// stops once this value is dropped and what was sent is written.
    pub fn new(journal: Journal, run_id: String) -> Self {
        let (writes, queued) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(journal, queued));
        JournalIntents { run_id, writes }
    }

    /// Queue `write` and wait until its batch is committed.
    async fn write(&self, write: IntentWrite) -> Result<(), JournalError> {
        let (done, committed) = oneshot::channel();
        self.writes
            .send(Pending { write, done })
            .map_err(|_| JournalError::IntentWriterStopped)?;
        committed
            .await
            .map_err(|_| JournalError::IntentWriterStopped)?
    }
}

/// Write whatever has queued up, one transaction at a time, and answer each writer.
async fn write_batches(journal: Journal, mut queued: mpsc::UnboundedReceiver<Pending>) {
    let mut batch = Vec::new();
    while queued.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (writes, done): (Vec<IntentWrite>, Vec<_>) =
            batch.drain(..).map(|p| (p.write, p.done)).unzip();
        let answers: Vec<Result<(), JournalError>> = match journal.write_intents(&writes).await {
            Ok(missing) => (writes.iter())
                .map(|w| match missing.contains(w.id()) {
                    true => Err(JournalError::NoSuchIntent(w.id().0.clone())),
                    false => Ok(()),
                })
                .collect(),
            Err(e) => {
                let shared = Arc::new(e);
                (writes.iter())
                    .map(|_| Err(JournalError::Batch(Arc::clone(&shared))))
                    .collect()
            }
        };
        for (done, answer) in done.into_iter().zip(answers) {
            // A host that stopped waiting (its run was cancelled) needs no answer.
            let _ = done.send(answer);
        }
    }
}

#[async_trait]
impl IntentLog for JournalIntents {
    async fn begin(
        &self,
        host: &str,
        play: usize,
        task_index: usize,
        action: &str,
    ) -> Result<Option<String>, Refused> {
        let begin = IntentWrite::begin(&self.run_id, host, StepKey { play, task_index }, action);
        let IntentId(id) = begin.id().clone();
        match self.write(begin).await {
            Ok(()) => Ok(Some(id)),
            Err(e) => {
                tracing::warn!("journal: cannot record the intent to `{action}` on {host}: {e}");
                Ok(None)
            }
        }
    }

    async fn complete(&self, id: &str, outcome: &Value) {
        let complete = IntentWrite::Complete {
            id: IntentId(id.to_string()),
            outcome: outcome.clone(),
        };
        if let Err(e) = self.write(complete).await {
            tracing::warn!("journal: cannot record the outcome of intent {id}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Hosts announcing changes at the same moment share commits, yet each intent is readable
    /// from a second connection as soon as its own `begin` returns, and every outcome lands.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_intents_are_each_committed_before_begin_returns() {
        let tmp = tempfile::tempdir().unwrap();
        let journal = Journal::open(tmp.path()).await.unwrap();
        let reader = Journal::open(tmp.path()).await.unwrap();
        let log = Arc::new(JournalIntents::new(journal, "r1".into()));
        let mut hosts = tokio::task::JoinSet::new();
        for n in 0..100 {
            let (log, reader) = (Arc::clone(&log), reader.clone());
            hosts.spawn(async move {
                let host = format!("ex{n:02}");
                let id = log.begin(&host, 0, 1, "install").await.unwrap().unwrap();
                let open = reader.open_intents("r1").await.unwrap();
                assert!(open.iter().any(|i| i.id.0 == id && i.host == host));
                log.complete(&id, &json!({"changed": true, "password": "hunter2"}))
                    .await;
            });
        }
        while let Some(done) = hosts.join_next().await {
            done.unwrap();
        }
        assert!(reader.open_intents("r1").await.unwrap().is_empty());
        let run = reader.intents("r1").await.unwrap();
        assert_eq!(run.len(), 100);
        assert!(
            run.iter()
                .all(|i| !i.outcome.as_ref().unwrap().to_string().contains("hunter2"))
        );
    }

    /// A completion whose intent does not exist is reported alone; the rest of its batch is
    /// written.
    #[tokio::test]
    async fn a_batch_reports_a_missing_intent_and_writes_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let journal = Journal::open(tmp.path()).await.unwrap();
        let step = StepKey {
            play: 0,
            task_index: 0,
        };
        let begin = IntentWrite::begin("r1", "ex01", step, "reboot");
        let ghost = IntentId("ghost".into());
        let writes = [
            begin.clone(),
            IntentWrite::Complete {
                id: ghost.clone(),
                outcome: json!({}),
            },
            IntentWrite::Complete {
                id: begin.id().clone(),
                outcome: json!({"changed": true}),
            },
        ];
        assert_eq!(journal.write_intents(&writes).await.unwrap(), [ghost]);
        assert!(journal.open_intents("r1").await.unwrap().is_empty());
        let steps: Vec<String> = sqlx::query_scalar("SELECT state FROM host_steps")
            .fetch_all(&journal.pool)
            .await
            .unwrap();
        assert_eq!(steps, ["intent"]);
    }
}
