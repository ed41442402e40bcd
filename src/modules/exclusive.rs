//! Steps that must run once at a time across everything that could start them: AD preparation
//! of a forest (Setup `/PrepareSchema` and `/PrepareAD` from two servers at once would race on
//! the schema master and repeat an hour of work). A step holds its key (`adprep:<forest>`)
//! while it decides from fresh facts and runs; a second holder waits, then re-reads and finds
//! the work done.
//!
//! Which processes share a key depends on the run: one controller's hosts share an
//! [`InProcess`] lock; queue runners, in separate processes and machines, share the queue
//! database's advisory lock (`crate::queue::locks`), which the database also releases when a
//! runner dies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

/// A key held until this guard is dropped.
pub struct ExclusiveGuard {
    _held: Box<dyn Send + Sync>,
}

impl ExclusiveGuard {
    pub fn new(held: impl Send + Sync + 'static) -> Self {
        Self {
            _held: Box::new(held),
        }
    }
}

/// The key could not be taken (the lock's store is unreachable).
#[derive(Debug, thiserror::Error)]
#[error("cannot take the lock `{key}` shared with the other runners")]
pub struct ExclusiveError {
    pub key: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Where exclusive keys are held.
#[async_trait]
pub trait Exclusive: Send + Sync + std::fmt::Debug {
    /// Wait until `key` is free and hold it. Dropping the future while it waits gives up.
    async fn hold(&self, key: &str) -> Result<ExclusiveGuard, ExclusiveError>;
}

/// Keys held within this process: the hosts of one run (or one runner's items).
#[derive(Debug, Default)]
pub struct InProcess {
    keys: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

#[async_trait]
impl Exclusive for InProcess {
    async fn hold(&self, key: &str) -> Result<ExclusiveGuard, ExclusiveError> {
        let lock = {
            let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(keys.entry(key.to_string()).or_default())
        };
        Ok(ExclusiveGuard::new(lock.lock_owned().await))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_held_key_makes_the_second_holder_wait_and_other_keys_do_not() {
        let locks = InProcess::default();
        let first = locks.hold("adprep:DC=contoso").await.unwrap();
        let other = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            locks.hold("adprep:DC=fabrikam"),
        )
        .await;
        assert!(other.is_ok(), "another forest is not held");
        let second = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            locks.hold("adprep:DC=contoso"),
        )
        .await;
        assert!(second.is_err(), "the same forest waits");
        drop(first);
        let third = tokio::time::timeout(
            std::time::Duration::from_millis(500),
            locks.hold("adprep:DC=contoso"),
        )
        .await;
        assert!(third.is_ok(), "free again once dropped");
    }
}
