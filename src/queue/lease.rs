//! Keeping a claimed item's lease: renewed every third of the lease, on the database's clock.
//! Lost (taken over by another runner): the item is aborted at once. The database unreachable:
//! the item drains, and is aborted before its lease can run out.

use std::time::Duration;

use tokio::time::Instant;

use super::QueueError;
use super::item::ClaimedItem;

/// Renew the claim's lease every third of the lease. Lost (taken over): abort the item. The
/// database unreachable: drain the item, and abort it before the lease can run out.
///
/// A renewal that has not answered within a third of the lease counts as failed: the pool
/// keeps trying to reconnect to a database that is down for far longer than a short lease, and
/// the item must not go on starting steps (nor outlive its lease) while it waits.
pub(super) async fn keep(held: ClaimedItem, lease: Duration) {
    let ClaimedItem {
        queue, claim, item, ..
    } = &held;
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(lease / 3).await;
        let renewal = tokio::time::timeout(lease / 3, queue.renew(claim, lease))
            .await
            .unwrap_or_else(|_| {
                Err(QueueError::Unanswered {
                    doing: "renewing a lease",
                    after: lease / 3,
                })
            });
        match renewal {
            Ok(true) => renewed = Instant::now(),
            Ok(false) => {
                tracing::warn!("{}: the lease was taken over; stopping", claim.host);
                held.stop();
                return;
            }
            Err(e) => {
                item.drain.cancel();
                if renewed.elapsed() >= lease * 2 / 3 {
                    tracing::warn!(
                        "{}: {}; the lease runs out soon, stopping the host",
                        claim.host,
                        crate::error_chain::one_line(&e)
                    );
                    held.stop();
                    return;
                }
            }
        }
    }
}

/// Aborts a spawned task when dropped, so an item's heartbeat never outlives the item.
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
    /// longer than the lease, yet the heartbeat stops the item before the lease runs out.
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
        let held = ClaimedItem {
            queue: Queue { pool, group: None },
            claim,
            item: Interrupt::default(),
            lost: tokio_util::sync::CancellationToken::new(),
        };
        let started = Instant::now();
        keep(held.clone(), lease).await;
        assert!(started.elapsed() < lease, "{:?}", started.elapsed());
        let item = &held.item;
        assert!(item.drain.is_cancelled() && item.abort.is_cancelled() && held.lost.is_cancelled());
    }
}
