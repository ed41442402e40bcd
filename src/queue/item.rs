//! One claimed work item as the runner holds it: the queue, the claim (with its fencing token),
//! the item's interrupt and the token cancelled when the claim is lost. The lease keeper
//! ([`super::lease`]), the event recorder ([`super::recorder`]) and the intent log
//! ([`super::intents`]) all act on a claimed item through this one handle, and stop it by the
//! same rule when a write fails.

use tokio_util::sync::CancellationToken;

use super::{Claim, Queue, QueueError};
use crate::runner::Interrupt;

/// A claimed item and the means to stop it.
#[derive(Debug, Clone)]
pub struct ClaimedItem {
    pub queue: Queue,
    pub claim: Claim,
    /// The item's interrupt: drained when the database fails, aborted when the claim is lost.
    pub item: Interrupt,
    /// Cancelled when the claim is lost to another runner.
    pub lost: CancellationToken,
}

impl ClaimedItem {
    /// A write for the item failed: a stale claim stops it (another runner owns it now), any
    /// other failure drains it (the database is in trouble: no further step starts). Warns and
    /// returns why.
    pub fn give_up(&self, error: &QueueError) -> String {
        let mut why = crate::error_chain::one_line(error);
        if matches!(error, QueueError::Stale { .. }) {
            self.stop();
        } else {
            self.item.drain.cancel();
            why.push_str("; no further step starts");
        }
        tracing::warn!("{}: {why}", self.claim.host);
        why
    }

    /// The item's claim is lost: abort it.
    pub fn stop(&self) {
        self.lost.cancel();
        self.item.drain.cancel();
        self.item.abort.cancel();
    }
}
