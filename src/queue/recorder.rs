//! Writing one claimed item's run events to the queue as fenced `host_steps` rows, keyed by
//! the step identity the events carry. The first failed write stops the item by the rule of
//! [`ClaimedItem::give_up`].

use tokio::sync::mpsc;

use super::item::ClaimedItem;
use super::{QueueError, StepWrite};
use crate::events::Event;
use crate::journal::StepState;

/// Writes one item's events to the queue, fenced.
pub(super) struct Recorder(pub(super) ClaimedItem);

impl Recorder {
    /// Consume events until the run ends. The first failed write stops the item: stale →
    /// abort (someone else owns it), otherwise drain (the database is in trouble).
    pub(super) async fn record(self, mut rx: mpsc::UnboundedReceiver<Event>) {
        let mut failed = false;
        while let Some(event) = rx.recv().await {
            if failed {
                continue;
            }
            if let Err(e) = self.write(&event).await {
                self.0.give_up(&e);
                failed = true;
            }
        }
    }

    async fn write(&self, event: &Event) -> Result<(), QueueError> {
        match event {
            Event::TaskStarted {
                task,
                play_index,
                task_index,
                ..
            } => {
                let step = StepWrite {
                    play: *play_index as i32,
                    task_index: *task_index as i32,
                    task,
                    state: StepState::Started.as_str(),
                    outcome: None,
                    output: None,
                };
                self.0.queue.write_step(&self.0.claim, &step).await?;
            }
            Event::TaskFinished {
                task,
                play_index,
                task_index,
                status,
                msg,
                duration_ms,
                result,
                ..
            } => {
                let outcome =
                    crate::journal::step_outcome(*status, msg.as_deref(), *duration_ms, result);
                let step = StepWrite {
                    play: *play_index as i32,
                    task_index: *task_index as i32,
                    task,
                    state: StepState::finished(*status).as_str(),
                    outcome: Some(outcome),
                    output: None,
                };
                self.0.queue.write_step(&self.0.claim, &step).await?;
            }
            _ => {}
        }
        Ok(())
    }
}
