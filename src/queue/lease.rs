//! Keeping a runner's leases: every third of the lease, one statement renews every item the
//! runner holds, on the database's clock. An item the renewal no longer finds as this claim's
//! (taken over): aborted at once. The database unreachable: every item drains, and each is
//! aborted before its lease can run out.
//!
//! An item is held from its claim, so its first renewal comes at most a third of the lease
//! later, as with a keeper of its own; a renewal that has not answered within a third of the
//! lease counts as failed. Rows are locked in work-item order, as the runner's group commit
//! ([`super::writer`]) takes them, so the two cannot deadlock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::item::ClaimedItem;
use super::{Queue, QueueError};

/// The items a runner holds, each with when its lease was last renewed.
#[derive(Debug, Default)]
pub(super) struct Held(Mutex<HashMap<Key, (ClaimedItem, Instant)>>);

/// A claim: work item and fence (a runner may claim an item again while its old claim ends).
type Key = (i64, i64);

impl Held {
    /// Hold `item` from now until the returned guard is dropped.
    pub(super) fn hold(self: &Arc<Self>, item: ClaimedItem) -> Holding {
        let key = (item.claim.work_id, item.claim.fence);
        self.lock().insert(key, (item, Instant::now()));
        Holding(Arc::clone(self), key)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (ClaimedItem, Instant)>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Releases an item from the lease keeper when dropped.
pub(super) struct Holding(Arc<Held>, Key);

impl Drop for Holding {
    fn drop(&mut self) {
        self.0.lock().remove(&self.1);
    }
}

/// Renew the leases of every item in `held`, every third of `lease`, until aborted.
pub(super) async fn keep(queue: Queue, held: Arc<Held>, lease: Duration) {
    loop {
        tokio::time::sleep(lease / 3).await;
        renew(&queue, &held, lease).await;
    }
}

/// One renewal of every held item; stops the items it must.
async fn renew(queue: &Queue, held: &Held, lease: Duration) {
    let keys: Vec<Key> = held.lock().keys().copied().collect();
    let (ids, fences): (Vec<i64>, Vec<i64>) = keys.iter().copied().unzip();
    if ids.is_empty() {
        return;
    }
    let renewal = tokio::time::timeout(lease / 3, queue.renew_all(&ids, &fences, lease))
        .await
        .unwrap_or_else(|_| {
            Err(QueueError::Unanswered {
                doing: "renewing leases",
                after: lease / 3,
            })
        });
    let mut held = held.lock();
    match renewal {
        Ok(renewed) => {
            let now = Instant::now();
            for key in keys {
                let Some((item, at)) = held.get_mut(&key) else {
                    continue;
                };
                if renewed.contains(&key) {
                    *at = now;
                } else {
                    tracing::warn!("{}: the lease was taken over; stopping", item.claim.host);
                    item.stop();
                    held.remove(&key);
                }
            }
        }
        Err(e) => {
            for key in keys {
                let Some((item, at)) = held.get(&key) else {
                    continue;
                };
                item.item.drain.cancel();
                if at.elapsed() >= lease * 2 / 3 {
                    tracing::warn!(
                        "{}: {}; the lease runs out soon, stopping the host",
                        item.claim.host,
                        crate::error_chain::one_line(&e)
                    );
                    item.stop();
                    held.remove(&key);
                }
            }
        }
    }
}

/// Aborts a spawned task when dropped, so a runner's lease keeper never outlives its loop.
pub(super) struct AbortOnDrop(pub(super) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{Claim, Queue};
    use crate::runner::Interrupt;

    /// The database is down (nothing listens on its port): the pool retries connecting far
    /// longer than the lease, yet the keeper stops the item before the lease runs out.
    #[tokio::test(start_paused = true)]
    async fn an_unanswered_renewal_stops_the_item_before_its_lease_runs_out() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let options = sqlx::postgres::PgConnectOptions::new()
            .host("127.0.0.1")
            .port(port)
            .username("salve");
        let pool = sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(Duration::from_secs(60))
            .connect_lazy_with(options);
        let claim = Claim {
            work_id: 1,
            fence: 1,
            run_id: "run".into(),
            host: "ex01".into(),
            tenant: "acme".into(),
            dag: None,
            plays: vec![0],
            needs_recheck: false,
            attempts: 1,
            plan: None,
        };
        let lease = Duration::from_secs(3);
        let queue = Queue { pool, group: None };
        let item = ClaimedItem {
            queue: queue.clone(),
            claim,
            item: Interrupt::default(),
            lost: tokio_util::sync::CancellationToken::new(),
        };
        let held = Arc::new(Held::default());
        let _holding = held.hold(item.clone());
        let started = Instant::now();
        let _keeper = AbortOnDrop(tokio::spawn(keep(queue, Arc::clone(&held), lease)));
        item.lost.cancelled().await;
        assert!(started.elapsed() < lease, "{:?}", started.elapsed());
        assert!(item.item.drain.is_cancelled() && item.item.abort.is_cancelled());
        assert!(held.lock().is_empty());
    }
}
