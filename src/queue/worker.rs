//! `salve runner`: the loop that claims work items for its tenants (and site), runs each with the
//! normal runner restricted to the claimed host, and writes what happens back to the queue.
//!
//! Per item: the lease is renewed (database clock) every third of the lease, together with the
//! runner's other items in one statement ([`super::lease`]); the run's events are turned into
//! fenced `host_steps` rows ([`super::recorder`]), and before a module that changes the host acts,
//! the runner commits an intent row and completes it after ([`super::intents`]), both committed
//! together with the runner's other items' writes ([`super::writer`]); all three act on the item
//! through one [`super::item::ClaimedItem`]. If a write is refused as stale, or the lease could not
//! be renewed, the item's run is aborted at once (another runner owns it now). If the database
//! cannot be reached, the item drains (no further step starts) and is aborted, its running step
//! interrupted, before its lease can expire; the loop claims nothing new until the database answers
//! again.
//!
//! A takeover re-runs the host's plays from the start (with `needs_recheck` set when an intent was
//! left open), relying on salve's modules re-reading live facts before they act: a change that
//! completed is found done on the host, one that was cut short is found in progress.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::intents::{PendingOutcomes, QueueIntents};
use super::item::ClaimedItem;
use super::lease::{self, AbortOnDrop, Held};
use super::locks::QueueLocks;
use super::recorder::Recorder;
use super::run_cache::RunCache;
use super::turns::Turns;
use super::work::notified;
use super::{Claim, Queue, QueueError, RunProblem};
use crate::error_chain::one_line;
use crate::events::HostOutcome;
use crate::launch::RunBuilder;
use crate::model::Inventory;
use crate::modules::exclusive::Exclusive;
use crate::runner::{Interrupt, PlanGate, RunInput};
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
    /// Keys shared with every runner of the queue (see [`super::locks`]).
    locks: Arc<dyn Exclusive>,
    /// The runs whose items this runner has started, loaded once each.
    runs: RunCache,
    /// The items whose leases the runner keeps.
    held: Arc<Held>,
}

impl Worker {
    pub fn new(
        queue: Queue,
        options: WorkerOptions,
        inventory: Inventory,
        connector: Arc<dyn Connector>,
    ) -> Worker {
        Worker {
            locks: Arc::new(QueueLocks::new(&queue)),
            queue,
            options,
            inventory: Arc::new(inventory),
            connector,
            runs: RunCache::default(),
            held: Arc::default(),
        }
    }

    /// Claim and run work until `interrupt` drains (then in-flight items finish their current
    /// step and are given back; a second stage aborts them) or, with `exit_when_idle`, until the
    /// tenant has no work left.
    pub async fn run(self, interrupt: Interrupt) -> WorkerReport {
        // Every item's intents and step rows share the runner's group commit.
        let me = Arc::new(Worker {
            queue: self.queue.grouped(),
            ..self
        });
        let keeper = lease::keep(me.queue.clone(), Arc::clone(&me.held), me.options.lease);
        let _keeper = AbortOnDrop(tokio::spawn(keeper));
        let mut report = WorkerReport::default();
        let mut items: JoinSet<ItemEnd> = JoinSet::new();
        let mut db_down = false;
        let tenants = &me.options.tenants;
        let mut wake = me.queue.listen_for_work(tenants).await;
        if let Err(e) = &wake {
            tracing::warn!("{}; looking for work every poll instead", one_line(e));
        }
        let channels = match &wake {
            Ok(_) => me.queue.work_channels(tenants).await.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let mut turns = Turns::new(tenants.len(), channels, me.options.poll);
        loop {
            while let Some(joined) = items.try_join_next() {
                count(&mut report, joined);
            }
            if interrupt.drain.is_cancelled() {
                break;
            }
            let mut claimed = false;
            if items.len() < me.options.concurrency.max(1) {
                match me.claim_next(&mut turns).await {
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
                woken = notified(wake.as_mut().ok(), me.options.poll) => {
                    if let Some(channel) = woken {
                        turns.notified(&channel);
                    }
                }
            }
        }
        while let Some(joined) = items.join_next().await {
            count(&mut report, joined);
        }
        report
    }

    /// The next claim of any of the runner's tenants worth trying, in turn (see [`Turns`]).
    async fn claim_next(&self, turns: &mut Turns) -> Result<Option<Claim>, QueueError> {
        let o = &self.options;
        let site = o.site.as_deref();
        for i in turns.order() {
            match (self.queue)
                .claim(&o.tenants[i], site, &o.id, o.lease, o.max_attempts)
                .await?
            {
                Some(claim) => {
                    turns.served(i);
                    return Ok(Some(claim));
                }
                None => turns.found_dry(i),
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
        let held = ClaimedItem {
            queue: self.queue.clone(),
            claim: claim.clone(),
            item: item.clone(),
            lost: tokio_util::sync::CancellationToken::new(),
        };
        let _lease = self.held.hold(held.clone());
        // The item is marked running with its first step rows (see `super::recorder`).
        let mut run = match self.prepare(&claim).await {
            Ok(p) => p,
            Err(e) => {
                let message = one_line(&e);
                tracing::warn!("{}: {message}", claim.host);
                return self.end(&claim, "failed", "failed", Some(&message)).await;
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let outcomes = PendingOutcomes::default();
        if !run.options().check_mode {
            run = run
                .intents(Arc::new(QueueIntents(held.clone(), outcomes.clone())))
                .exclusive(Arc::clone(&self.locks));
        }
        let (summary, ()) = tokio::join!(
            run.execute_into(Arc::clone(&self.connector), tx, item.clone()),
            Recorder(held.clone(), outcomes).record(rx),
        );
        if held.lost.is_cancelled() {
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

    /// The run for one claim: the enqueued playbook (digest checked, loaded once per run) against
    /// this runner's inventory, restricted to the claimed host and its plays.
    async fn prepare(&self, claim: &Claim) -> Result<RunBuilder, QueueError> {
        let run = claim.run_id.as_str();
        let loaded = self.runs.get(&self.queue, &self.inventory, run).await?;
        let gate = match &claim.plan {
            Some(plan) => {
                let plan = <super::enqueue::StoredPlan as serde::Deserialize>::deserialize(plan)
                    .map_err(|e| RunProblem::Plan(e).of(run))?;
                let host = claim.host.clone();
                Some(PlanGate::new(
                    [(host.clone(), plan.steps)].into(),
                    [(host, plan.facts)].into(),
                ))
            }
            None => None,
        };
        if self.inventory.host(&claim.host).is_none() {
            return Err(RunProblem::HostNotHere(claim.host.clone()).of(run));
        }
        let play_hosts = (0..loaded.playbook.plays.len())
            .map(|i| {
                if claim.plays.contains(&(i as i32)) {
                    vec![claim.host.clone()]
                } else {
                    Vec::new()
                }
            })
            .collect();
        let input = RunInput {
            playbook: Arc::clone(&loaded.playbook),
            inventory: Arc::clone(&self.inventory),
            play_hosts,
        };
        let options = &loaded.options;
        let mut run = RunBuilder::new(input, options.extra_vars.clone())
            .run_id(claim.run_id.clone())
            .forks(1)
            .reconnect_grace(crate::launch::IN_FLIGHT_GRACE)
            .check_mode(options.check_mode)
            .tags(options.tags.clone(), options.skip_tags.clone());
        if let Some(gate) = gate {
            run = run.approved(gate, loaded.plan_digest.clone());
        }
        Ok(run)
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
