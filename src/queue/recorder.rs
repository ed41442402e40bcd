//! Writing one claimed item's run events to the queue as fenced `host_steps` rows, keyed by the
//! step identity the events carry; the first write also marks the item running. Whatever has queued
//! up is written in one transaction, with the intent outcomes waiting in [`PendingOutcomes`]: a
//! step's end, its intent's outcome and the next step's start usually share one commit. The first
//! failed write stops the item by the rule of [`ClaimedItem::give_up`].

use tokio::sync::mpsc;

use super::QueueError;
use super::intents::PendingOutcomes;
use super::item::ClaimedItem;
use super::work::StepRow;
use crate::events::Event;
use crate::journal::StepState;

/// The most events written in one transaction.
const MAX_BATCH: usize = 64;

/// Writes one item's events (and its intents' outcomes) to the queue, fenced.
pub(super) struct Recorder(pub(super) ClaimedItem, pub(super) PendingOutcomes);

impl Recorder {
    /// Consume events until the run ends, then write any outcome still waiting. The first
    /// failed write stops the item: stale → abort (someone else owns it), otherwise drain
    /// (the database is in trouble).
    pub(super) async fn record(self, mut rx: mpsc::UnboundedReceiver<Event>) {
        let mut failed = false;
        let mut started = false;
        let mut batch = Vec::new();
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            if !failed && let Err(e) = self.write(&batch, &mut started).await {
                self.0.give_up(&e);
                failed = true;
            }
            batch.clear();
        }
        if !failed && let Err(e) = self.write(&[], &mut started).await {
            self.0.give_up(&e);
        }
    }

    /// Write what has queued up; the first write also marks the item running.
    async fn write(&self, events: &[Event], started: &mut bool) -> Result<(), QueueError> {
        // Taken after the events: an outcome is pushed before its step's end is sent.
        let outcomes = self.1.take();
        let steps: Vec<StepRow> = events.iter().filter_map(step_row).collect();
        if outcomes.is_empty() && steps.is_empty() {
            return Ok(());
        }
        let start = !std::mem::replace(started, true);
        self.0
            .queue
            .write_item_steps(&self.0.claim, start, outcomes, steps)
            .await
    }
}

/// The row an event writes, if any.
fn step_row(event: &Event) -> Option<StepRow> {
    match event {
        Event::TaskStarted {
            task,
            play_index,
            task_index,
            ..
        } => Some(StepRow {
            play: *play_index as i32,
            task_index: *task_index as i32,
            task: task.clone(),
            state: StepState::Started.as_str().to_string(),
            outcome: None,
            output: None,
        }),
        Event::TaskFinished {
            task,
            play_index,
            task_index,
            status,
            msg,
            duration_ms,
            result,
            ..
        } => Some(StepRow {
            play: *play_index as i32,
            task_index: *task_index as i32,
            task: task.clone(),
            state: StepState::finished(*status).as_str().to_string(),
            outcome: Some(
                crate::journal::step_outcome(*status, msg.as_deref(), *duration_ms, result)
                    .to_value(),
            ),
            output: None,
        }),
        _ => None,
    }
}
