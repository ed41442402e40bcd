//! Durable intents: before a module that changes a host acts, the runner records what it is
//! about to do, and waits until that record is safe; afterwards it records the outcome. An
//! intent without an outcome tells `salve resume` (and a person) that a change may have
//! half-happened, so the host is re-checked before anything is retried.

use async_trait::async_trait;
use serde_json::Value;

pub use crate::modules::Refused;

/// Where intents are kept (the local run journal, or the queue database).
#[async_trait]
pub trait IntentLog: Send + Sync + std::fmt::Debug {
    /// Record durably that `action` is about to happen. `Ok(None)`: it could not be recorded
    /// and the change goes ahead anyway (the local journal: an emergency is no time to stop
    /// on bookkeeping; it is warned). `Err`: the change must not start.
    async fn begin(
        &self,
        host: &str,
        play: usize,
        task_index: usize,
        action: &str,
    ) -> Result<Option<String>, Refused>;
    /// Record the outcome of an intent.
    async fn complete(&self, id: &str, outcome: &Value);
}
