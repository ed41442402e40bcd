//! `salve runner`: the loop that claims work items for its tenants (and site), runs each with
//! the normal runner restricted to the claimed host, and writes what happens back to the queue.
//!
//! Per item: a heartbeat renews the lease (database clock) every third of the lease; the run's
//! events are turned into fenced `host_steps` rows, and before a module that changes the host
//! acts, the runner commits an intent row and completes it after ([`super::intents`]). If a
//! write is refused as stale, or the lease could not be renewed, the item's run is aborted at
//! once (another runner owns it now). If the database cannot be reached, the item drains (no
//! further step starts) and is aborted, its running step interrupted, before its lease can
//! expire; the loop claims nothing new until the database answers again.
//!
//! A takeover re-runs the host's plays from the start (with `needs_recheck` set when an intent
//! was left open), relying on salve's modules re-reading live facts before they act: a change
//! that completed is found done on the host, one that was cut short is found in progress.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::intents::QueueIntents;
use super::{Claim, Queue, QueueError, StepWrite};
use crate::error_chain::one_line;
use crate::events::{Event, HostOutcome};
use crate::journal::StepState;
use crate::model::Inventory;
use crate::runner::{self, Interrupt, PlanGate, RunInput, RunOptions};
use crate::transport::Connector;

/// How a runner works.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// This runner's id (the `owner` of its claims).
    pub id: String,
    /// The tenants whose work this runner takes, claimed in turn so none starves the others.
    pub tenants: Vec<String>,
    /// Claim only items of this site; `None`: only items without a site.
    pub site: Option<String>,
    /// Items worked on at once.
    pub concurrency: usize,
    /// How long a claim holds without renewal.
    pub lease: Duration,
    /// How often to look for work when there is none.
    pub poll: Duration,
    /// Claims of one item before an expired lease makes it `abandoned`.
    pub max_attempts: i32,
    /// Stop once the tenant has nothing queued, claimed or running.
    pub exit_when_idle: bool,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            id: String::new(),
            tenants: Vec::new(),
            site: None,
            concurrency: 4,
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(2),
            max_attempts: 3,
            exit_when_idle: false,
        }
    }
}

/// What a runner did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerReport {
    pub done: usize,
    pub failed: usize,
    /// Given back to the queue because this runner was stopping.
    pub released: usize,
    /// Taken over by another runner (or the lease could not be kept).
    pub lost: usize,
}

/// How one item ended for this runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemEnd {
    Done,
    Failed,
    Released,
    Lost,
}

/// A runner: claims and runs work items.
pub struct Worker {
    queue: Queue,
    options: WorkerOptions,
    inventory: Arc<Inventory>,
    connector: Arc<dyn Connector>,
}

impl Worker {
    pub fn new(
        queue: Queue,
        options: WorkerOptions,
        inventory: Inventory,
        connector: Arc<dyn Connector>,
    ) -> Worker {
        Worker {
            queue,
            options,
            inventory: Arc::new(inventory),
            connector,
        }
    }

    /// Claim and run work until `interrupt` drains (then in-flight items finish their current
    /// step and are given back; a second stage aborts them) or, with `exit_when_idle`, until the
    /// tenant has no work left.
    pub async fn run(self, interrupt: Interrupt) -> WorkerReport {
        let me = Arc::new(self);
        let mut report = WorkerReport::default();
        let mut items: JoinSet<ItemEnd> = JoinSet::new();
        let mut db_down = false;
        let mut turn = 0usize;
        let mut wake = me.queue.listen_for_work(&me.options.tenants).await;
        if let Err(e) = &wake {
            tracing::warn!("{}; looking for work every poll instead", one_line(e));
        }
        loop {
            while let Some(joined) = items.try_join_next() {
                count(&mut report, joined);
            }
            if interrupt.drain.is_cancelled() {
                break;
            }
            let mut claimed = false;
            if items.len() < me.options.concurrency.max(1) {
                match me.claim_next(&mut turn).await {
                    Ok(Some(claim)) => {
                        db_down = false;
                        claimed = true;
                        tracing::info!(
                            "claimed {} (run {}, item {}, fence {})",
                            claim.host,
                            claim.run_id,
                            claim.work_id,
                            claim.fence
                        );
                        let item = Interrupt {
                            drain: interrupt.drain.child_token(),
                            abort: interrupt.abort.child_token(),
                        };
                        items.spawn(Arc::clone(&me).execute(claim, item));
                    }
                    Ok(None) => {
                        db_down = false;
                        if me.options.exit_when_idle && items.is_empty() && me.idle().await {
                            break;
                        }
                    }
                    Err(e) => {
                        if !db_down {
                            tracing::warn!(
                                "{}; starting no new work until the database answers",
                                one_line(&e)
                            );
                        }
                        db_down = true;
                    }
                }
            }
            if claimed {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(me.options.poll) => {}
                _ = interrupt.drain.cancelled() => {}
                Some(joined) = items.join_next(), if !items.is_empty() => count(&mut report, joined),
                () = notified(wake.as_mut().ok(), me.options.poll) => {}
            }
        }
        while let Some(joined) = items.join_next().await {
            count(&mut report, joined);
        }
        report
    }

    /// The next claim of any of the runner's tenants, trying them in turn from `turn` (which
    /// moves past the tenant served, so a busy tenant cannot starve the others).
    async fn claim_next(&self, turn: &mut usize) -> Result<Option<Claim>, QueueError> {
        let o = &self.options;
        for k in 0..o.tenants.len() {
            let i = (*turn + k) % o.tenants.len();
            let site = o.site.as_deref();
            if let Some(claim) = (self.queue)
                .claim(&o.tenants[i], site, &o.id, o.lease, o.max_attempts)
                .await?
            {
                *turn = i + 1;
                return Ok(Some(claim));
            }
        }
        Ok(None)
    }

    /// Whether the runner's tenants have nothing left that it could claim or wait for.
    async fn idle(&self) -> bool {
        let left: Result<i64, _> = sqlx::query_scalar(
            "SELECT count(*) FROM salve.work
             WHERE tenant = ANY($1) AND site IS NOT DISTINCT FROM $2
               AND state IN ('queued', 'claimed', 'running')",
        )
        .bind(&self.options.tenants)
        .bind(&self.options.site)
        .fetch_one(self.queue.pool())
        .await;
        left.is_ok_and(|n| n == 0)
    }

    /// Run one claimed item to its end.
    async fn execute(self: Arc<Self>, claim: Claim, item: Interrupt) -> ItemEnd {
        let lost = tokio_util::sync::CancellationToken::new();
        let _heartbeat = AbortOnDrop(tokio::spawn(heartbeat(
            self.queue.clone(),
            claim.clone(),
            self.options.lease,
            item.clone(),
            lost.clone(),
        )));
        if let Err(e) = self.queue.start(&claim).await {
            tracing::warn!("{}: {}", claim.host, one_line(&e));
            return ItemEnd::Lost;
        }
        let prepared = match self.prepare(&claim).await {
            Ok(p) => p,
            Err(e) => {
                let message = one_line(&e);
                tracing::warn!("{}: {message}", claim.host);
                return self.end(&claim, "failed", "failed", Some(&message)).await;
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let mut options = prepared.options;
        if !options.check_mode {
            options.intents = Some(Arc::new(QueueIntents {
                queue: self.queue.clone(),
                claim: claim.clone(),
                item: item.clone(),
                lost: lost.clone(),
            }));
        }
        let recorder = Recorder {
            queue: self.queue.clone(),
            claim: claim.clone(),
            item: item.clone(),
            lost: lost.clone(),
        };
        let (summary, ()) = tokio::join!(
            runner::run(
                prepared.input,
                options,
                Arc::clone(&self.connector),
                tx,
                item.clone(),
            ),
            recorder.record(rx),
        );
        if lost.is_cancelled() {
            return ItemEnd::Lost;
        }
        let host = summary.hosts.first();
        let outcome = host.map_or(HostOutcome::NotRun, |h| h.outcome);
        match outcome {
            HostOutcome::Ok => self.end(&claim, "done", "ok", None).await,
            HostOutcome::Interrupted => match self.queue.release(&claim, "runner stopped").await {
                Ok(()) => ItemEnd::Released,
                Err(e) => {
                    tracing::warn!("{}: {}", claim.host, one_line(&e));
                    ItemEnd::Lost
                }
            },
            other => {
                let name = match other {
                    HostOutcome::Unreachable => "unreachable",
                    HostOutcome::NotRun => "not_run",
                    HostOutcome::Drifted => "drifted",
                    _ => "failed",
                };
                let left_in = host
                    .and_then(|h| h.left_in.clone())
                    .map(|t| format!("stopped in `{t}`"));
                self.end(&claim, "failed", name, left_in.as_deref()).await
            }
        }
    }

    async fn end(&self, claim: &Claim, state: &str, outcome: &str, msg: Option<&str>) -> ItemEnd {
        match self.queue.finish(claim, state, outcome, msg).await {
            Ok(()) if state == "done" => ItemEnd::Done,
            Ok(()) => ItemEnd::Failed,
            Err(e) => {
                tracing::warn!("{}: {}", claim.host, one_line(&e));
                ItemEnd::Lost
            }
        }
    }

    /// The run for one claim: the enqueued playbook (digest checked) against this runner's
    /// inventory, restricted to the claimed host and its plays.
    async fn prepare(&self, claim: &Claim) -> Result<Prepared, QueueError> {
        let run_err = |message: String| QueueError::Run {
            run: claim.run_id.clone(),
            message,
        };
        let row: RunRow = sqlx::query_as(
            "SELECT r.playbook, r.playbook_digest, r.options, r.plan_digest, w.plan
             FROM salve.runs r JOIN salve.work w ON w.run_id = r.id WHERE w.id = $1",
        )
        .bind(claim.work_id)
        .fetch_one(self.queue.pool())
        .await
        .map_err(QueueError::db("reading the run", None))?;
        let (text, digest, options, plan_digest, plan) = row;
        let stored: super::enqueue::StoredOptions = serde_json::from_value(options)
            .map_err(|e| run_err(format!("unreadable run options: {e}")))?;
        let gate = match plan {
            Some(plan) => {
                let plan: super::enqueue::StoredPlan = serde_json::from_value(plan)
                    .map_err(|e| run_err(format!("unreadable approved plan: {e}")))?;
                let host = claim.host.clone();
                Some(Arc::new(PlanGate::new(
                    [(host.clone(), plan.steps)].into(),
                    [(host, plan.facts)].into(),
                )))
            }
            None => None,
        };
        if self.inventory.host(&claim.host).is_none() {
            return Err(run_err(format!(
                "host `{}` is not in this runner's inventory",
                claim.host
            )));
        }
        let dir = tempfile::tempdir().map_err(|e| run_err(format!("temporary directory: {e}")))?;
        let path = dir.path().join("playbook.yml");
        std::fs::write(&path, &text).map_err(|e| run_err(format!("{}: {e}", path.display())))?;
        let playbook = crate::config::playbook::load(&path, &self.inventory, &stored.extra_vars)
            .map_err(|d| run_err(format!("playbook does not load here:\n{}", d.render())))?;
        if playbook.digest != digest {
            return Err(run_err(format!(
                "playbook digest {} differs from the enqueued {digest}",
                playbook.digest
            )));
        }
        let play_hosts = (0..playbook.plays.len())
            .map(|i| {
                if claim.plays.contains(&(i as i32)) {
                    vec![claim.host.clone()]
                } else {
                    Vec::new()
                }
            })
            .collect();
        let options = RunOptions {
            forks: 1,
            check_mode: stored.check_mode,
            tags: stored.tags,
            skip_tags: stored.skip_tags,
            extra_vars: stored.extra_vars,
            run_id: claim.run_id.clone(),
            gate,
            plan_digest,
            ..RunOptions::default()
        };
        Ok(Prepared {
            input: RunInput {
                playbook: Arc::new(playbook),
                inventory: Arc::clone(&self.inventory),
                play_hosts,
            },
            options,
            _dir: dir,
        })
    }
}

/// The run's playbook, digest, options and plan digest, and the item's approved plan.
type RunRow = (
    String,
    String,
    serde_json::Value,
    Option<String>,
    Option<serde_json::Value>,
);

struct Prepared {
    input: RunInput,
    options: RunOptions,
    /// Holds the playbook file for the run's lifetime.
    _dir: tempfile::TempDir,
}

/// Until a notification arrives on `wake` (never, without a listener). A listener whose
/// connection fails reconnects on the next call; meanwhile wait a poll, not a busy loop.
async fn notified(wake: Option<&mut sqlx::postgres::PgListener>, poll: Duration) {
    match wake {
        Some(listener) => {
            if listener.recv().await.is_err() {
                tokio::time::sleep(poll).await;
            }
        }
        None => std::future::pending().await,
    }
}

fn count(report: &mut WorkerReport, joined: Result<ItemEnd, tokio::task::JoinError>) {
    match joined {
        Ok(ItemEnd::Done) => report.done += 1,
        Ok(ItemEnd::Failed) => report.failed += 1,
        Ok(ItemEnd::Released) => report.released += 1,
        Ok(ItemEnd::Lost) | Err(_) => report.lost += 1,
    }
}

/// Renew the claim's lease every third of the lease. Lost (taken over): abort the item. The
/// database unreachable: drain the item, and abort it before the lease can run out.
///
/// A renewal that has not answered within a third of the lease counts as failed: the pool
/// keeps trying to reconnect to a database that is down for far longer than a short lease, and
/// the item must not go on starting steps (nor outlive its lease) while it waits.
async fn heartbeat(
    queue: Queue,
    claim: Claim,
    lease: Duration,
    item: Interrupt,
    lost: tokio_util::sync::CancellationToken,
) {
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(lease / 3).await;
        let renewal = tokio::time::timeout(lease / 3, queue.renew(&claim, lease))
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
                stop(&item, &lost);
                return;
            }
            Err(e) => {
                item.drain.cancel();
                if renewed.elapsed() >= lease * 2 / 3 {
                    tracing::warn!(
                        "{}: {}; the lease runs out soon, stopping the host",
                        claim.host,
                        one_line(&e)
                    );
                    stop(&item, &lost);
                    return;
                }
            }
        }
    }
}

/// A write for the item failed: a stale claim stops it (another runner owns it now), any
/// other failure drains it (the database is in trouble: no further step starts). Warns and
/// returns why.
pub(super) fn give_up(
    error: &QueueError,
    claim: &Claim,
    item: &Interrupt,
    lost: &tokio_util::sync::CancellationToken,
) -> String {
    let mut why = one_line(error);
    if matches!(error, QueueError::Stale { .. }) {
        stop(item, lost);
    } else {
        item.drain.cancel();
        why.push_str("; no further step starts");
    }
    tracing::warn!("{}: {why}", claim.host);
    why
}

/// The item's claim is lost: abort it and say so.
fn stop(item: &Interrupt, lost: &tokio_util::sync::CancellationToken) {
    lost.cancel();
    item.drain.cancel();
    item.abort.cancel();
}

/// Writes one item's events to the queue, fenced.
struct Recorder {
    queue: Queue,
    claim: Claim,
    item: Interrupt,
    lost: tokio_util::sync::CancellationToken,
}

impl Recorder {
    /// Consume events until the run ends. The first failed write stops the item: stale →
    /// abort (someone else owns it), otherwise drain (the database is in trouble).
    async fn record(self, mut rx: mpsc::UnboundedReceiver<Event>) {
        let mut play = 0usize;
        let mut failed = false;
        while let Some(event) = rx.recv().await {
            if failed {
                continue;
            }
            if let Err(e) = self.write(&event, &mut play).await {
                give_up(&e, &self.claim, &self.item, &self.lost);
                failed = true;
            }
        }
    }

    async fn write(&self, event: &Event, play: &mut usize) -> Result<(), QueueError> {
        match event {
            Event::PlayFinished { .. } => *play += 1,
            Event::TaskStarted {
                task, task_index, ..
            } => {
                let step = StepWrite {
                    play: *play as i32,
                    task_index: *task_index as i32,
                    task,
                    state: StepState::Started.as_str(),
                    outcome: None,
                    output: None,
                };
                self.queue.write_step(&self.claim, &step).await?;
            }
            Event::TaskFinished {
                task,
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
                    play: *play as i32,
                    task_index: *task_index as i32,
                    task,
                    state: StepState::finished(*status).as_str(),
                    outcome: Some(outcome),
                    output: None,
                };
                self.queue.write_step(&self.claim, &step).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Aborts a spawned task when dropped, so an item's heartbeat never outlives the item.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        };
        let lease = Duration::from_secs(3);
        let item = Interrupt::default();
        let lost = tokio_util::sync::CancellationToken::new();
        let started = Instant::now();
        heartbeat(Queue { pool }, claim, lease, item.clone(), lost.clone()).await;
        assert!(started.elapsed() < lease, "{:?}", started.elapsed());
        assert!(item.drain.is_cancelled() && item.abort.is_cancelled() && lost.is_cancelled());
    }
}
