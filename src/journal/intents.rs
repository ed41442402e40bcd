//! The journal as the runner's [`IntentLog`]: intents are committed (WAL, synchronous=FULL)
//! before the runner lets the change go ahead.

use async_trait::async_trait;
use serde_json::Value;

use super::{IntentId, Journal, StepKey};
use crate::runner::{IntentLog, Refused};

/// Intents of one run, in the journal.
#[derive(Debug)]
pub struct JournalIntents {
    journal: Journal,
    run_id: String,
}

impl JournalIntents {
    pub fn new(journal: Journal, run_id: String) -> Self {
        JournalIntents { journal, run_id }
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
        match self
            .journal
            .begin_intent(&self.run_id, host, StepKey { play, task_index }, action)
            .await
        {
            Ok(IntentId(id)) => Ok(Some(id)),
            Err(e) => {
                tracing::warn!("journal: cannot record the intent to `{action}` on {host}: {e}");
                Ok(None)
            }
        }
    }

    async fn complete(&self, id: &str, outcome: &Value) {
        if let Err(e) = self
            .journal
            .complete_intent(&IntentId(id.to_string()), outcome)
            .await
        {
            tracing::warn!("journal: cannot record the outcome of intent {id}: {e}");
        }
    }
}
