//! Durable intents: before a module that changes a host acts, the runner records what it is
//! about to do, and waits until that record is safe; afterwards it records the outcome. An
//! intent without an outcome tells `salve resume` (and a person) that a change may have
//! half-happened, so the host is re-checked before anything is retried.

use async_trait::async_trait;
use serde_json::Value;

/// Where intents are kept (the run journal).
#[async_trait]
pub trait IntentLog: Send + Sync + std::fmt::Debug {
    /// Record durably that `action` is about to happen; `None` when it could not be recorded
    /// (the change goes ahead: an emergency is no time to stop on bookkeeping; it is warned).
    async fn begin(
        &self,
        host: &str,
        play: usize,
        task_index: usize,
        action: &str,
    ) -> Option<String>;
    /// Record the outcome of an intent.
    async fn complete(&self, id: &str, outcome: &Value);
}
