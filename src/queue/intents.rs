//! The queue database as a runner's [`IntentLog`]: before a module changes a claimed host, the
//! intent is committed to `salve.intents` under the claim's fencing token; the outcome is
//! written after. Unlike the local journal, a queued change does **not** go ahead unrecorded:
//! if the database refuses the intent (the claim was taken over: stale token) the item is
//! stopped at once, and if the database cannot be reached the item drains (no further step
//! starts). Either way the change is refused before anything touches the host, so a runner
//! that takes the item over finds every change either announced or not begun. An item stopped
//! while its intent waited to be committed refuses the change too.
//!
//! An outcome is not written on its own: it waits in [`PendingOutcomes`] for the item's
//! recorder, which writes it in the same transaction as the step's end (the runner sends
//! that event right after). A runner lost in between leaves the intent open, which makes the
//! next claimant re-check the host: the safe side.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use serde_json::Value;

use super::QueueError;
use super::item::ClaimedItem;
use crate::runner::{IntentLog, Refused};

/// Intents of one claimed work item, and the outcomes its recorder has yet to write.
#[derive(Debug)]
pub struct QueueIntents(pub ClaimedItem, pub PendingOutcomes);

/// Outcomes of intents (intent id, outcome) waiting to be written with the item's next step
/// rows; shared by the item's intent log and its recorder.
#[derive(Debug, Clone, Default)]
pub struct PendingOutcomes(Arc<Mutex<Vec<(i64, Value)>>>);

impl PendingOutcomes {
    fn push(&self, intent: i64, outcome: Value) {
        // A panic while holding this lock cannot leave the vector inconsistent.
        (self.0.lock().unwrap_or_else(PoisonError::into_inner)).push((intent, outcome));
    }

    /// Everything waiting, oldest first.
    pub(super) fn take(&self) -> Vec<(i64, Value)> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl QueueIntents {
    /// Stop the item as `error` requires; returns why the change is refused.
    fn refuse(&self, error: &QueueError) -> Refused {
        Refused(self.0.give_up(error))
    }
}

#[async_trait]
impl IntentLog for QueueIntents {
    async fn begin(
        &self,
        _host: &str,
        play: usize,
        task_index: usize,
        action: &str,
    ) -> Result<Option<String>, Refused> {
        let (play, task_index) = (to_i32(play), to_i32(task_index));
        let ClaimedItem { queue, claim, .. } = &self.0;
        match queue.begin_intent(claim, play, task_index, action).await {
            // Stopped while the intent waited for its commit (the group commit may have held
            // it through a database outage): the change no longer starts. The open intent
            // makes whoever claims the item next re-check the host.
            Ok(_) if self.0.item.drain.is_cancelled() => Err(Refused(
                "the work item was stopped while its intent was being written".into(),
            )),
            Ok(id) => Ok(Some(id.to_string())),
            Err(e) => Err(self.refuse(&e)),
        }
    }

    async fn complete(&self, id: &str, outcome: &Value) {
        let Ok(id) = id.parse::<i64>() else { return };
        self.1.push(id, outcome.clone());
    }
}

/// Play and task indices are small; saturate rather than wrap if one is not.
fn to_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
