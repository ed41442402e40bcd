//! Which of a runner's tenants to try for a claim, and in what order. Tenants are tried in
//! turn from the one after the tenant last served, so a busy tenant cannot starve the others.
//! A tenant whose claim found nothing is *dry*: it is not tried again (each try is a database
//! transaction) until its channel is notified (work enqueued, given back, or ended, freeing a
//! DAG or concurrency slot: see the schema's `salve.work_channel`) or a poll interval has
//! passed (for what no notification announces: a maintenance window opening, a lease
//! expiring, or a listener that is down).

use std::time::Duration;

use tokio::time::Instant;

/// The turn and the dry tenants of one runner.
#[derive(Debug)]
pub(super) struct Turns {
    /// Each tenant's notification channel, by the tenant's index (empty: not listening).
    channels: Vec<String>,
    /// When each tenant was found dry, if it still is.
    dry: Vec<Option<Instant>>,
    next: usize,
    poll: Duration,
}

impl Turns {
    /// `tenants` tenants, with their notification `channels` in the same order (or none).
    pub(super) fn new(tenants: usize, channels: Vec<String>, poll: Duration) -> Turns {
        Turns {
            channels,
            dry: vec![None; tenants],
            next: 0,
            poll,
        }
    }

    /// The tenants worth a claim now, in the order to try them.
    pub(super) fn order(&self) -> Vec<usize> {
        let n = self.dry.len();
        (0..n)
            .map(|k| (self.next + k) % n)
            .filter(|&i| self.dry[i].is_none_or(|at| at.elapsed() >= self.poll))
            .collect()
    }

    /// Tenant `i` had nothing to claim.
    pub(super) fn found_dry(&mut self, i: usize) {
        self.dry[i] = Some(Instant::now());
    }

    /// Tenant `i` was served: the next turn starts after it.
    pub(super) fn served(&mut self, i: usize) {
        self.dry[i] = None;
        self.next = i + 1;
    }

    /// A notification arrived on `channel`: its tenant may have work again.
    pub(super) fn notified(&mut self, channel: &str) {
        if let Some(i) = self.channels.iter().position(|c| c == channel) {
            self.dry[i] = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_dry_tenant_waits_for_its_notification_or_a_poll() {
        let poll = Duration::from_secs(1);
        let mut turns = Turns::new(3, vec!["a".into(), "b".into(), "c".into()], poll);
        assert_eq!(turns.order(), [0, 1, 2]);
        turns.served(0);
        assert_eq!(turns.order(), [1, 2, 0]);
        turns.found_dry(1);
        turns.found_dry(2);
        assert_eq!(turns.order(), [0]);
        turns.notified("c");
        assert_eq!(turns.order(), [2, 0]);
        tokio::time::advance(poll).await;
        assert_eq!(turns.order(), [1, 2, 0]);
    }
}
