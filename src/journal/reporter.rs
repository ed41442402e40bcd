//! [`JournalReporter`]: the journal as one more [`Reporter`]. Reporters are called on a
//! blocking thread while the journal is async, so the reporter forwards each event over a
//! channel to a writer task on the run's tokio runtime, which records them in order, whatever
//! has queued up at once (step rows in one transaction: [`super::EventRecorder::record_events`];
//! a batch that fails to write is lost as a whole and reported).
//! [`Reporter::finish`] waits until every event is written and returns the first error; a
//! failing journal never disturbs the run itself.
//!
//! `finish` blocks its thread until the writer is done: call it from a blocking thread (as
//! [`crate::report::spawn_reporters`] does), never from inside an async task.

use std::io;
use std::sync::mpsc as std_mpsc;

use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::{Journal, JournalError, RunMeta};
use crate::events::Event;
use crate::report::Reporter;

/// The most events written in one transaction.
const MAX_BATCH: usize = 1024;

/// Records run events in the journal (see the module docs).
pub struct JournalReporter {
    events: Option<mpsc::UnboundedSender<Event>>,
    done: std_mpsc::Receiver<Result<(), JournalError>>,
}

impl JournalReporter {
    /// Start the writer task on `runtime`.
    pub fn spawn(journal: Journal, meta: RunMeta, runtime: &Handle) -> JournalReporter {
        let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
        let (done_tx, done) = std_mpsc::channel();
        runtime.spawn(async move {
            let mut recorder = journal.recorder(meta);
            let mut first_error = None;
            // Whatever has queued up is written together (see `record_events`).
            let mut batch = Vec::new();
            while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                if let Err(e) = recorder.record_events(&batch).await {
                    tracing::warn!("journal: {e}");
                    first_error.get_or_insert(e);
                }
                batch.clear();
            }
            // The receiver is gone only if the reporter was dropped without `finish`.
            let _ = done_tx.send(first_error.map_or(Ok(()), Err));
        });
        JournalReporter {
            events: Some(tx),
            done,
        }
    }
}

impl Reporter for JournalReporter {
    fn event(&mut self, event: &Event) {
        if let Some(tx) = &self.events {
            // The writer stops only after `finish`; a send error means it panicked, which
            // `finish` reports.
            let _ = tx.send(event.clone());
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.events.take().is_none() {
            return Ok(());
        }
        match self.done.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(io::Error::other(e)),
            Err(_) => Err(io::Error::other("the journal writer stopped unexpectedly")),
        }
    }
}
