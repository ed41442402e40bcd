//! The runner: plays in order; within a play, hosts in `serial` batches; within a batch, hosts
//! concurrently up to `forks` (each host runs the play's tasks in order, then its notified
//! handlers). Host failures are data, not errors: a failed or unreachable host drops out and
//! the others go on. `max_fail_percentage` (or a batch in which every host failed) stops the
//! run after that batch. The first Ctrl-C drains (no new step starts), the second aborts
//! (running steps are cancelled on their hosts); either way every host's end is recorded.
//!
//! The runner never prints: everything it does is an [`Event`] sent to the reporters.

mod batches;
mod gate;
mod host;
mod intents;
mod interrupt;
mod link;
mod task;
mod vars;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::events::{
    Event, HostCounts, HostOutcome, HostSummary, InterruptStage, PlayStop, RunSummary,
};
use crate::exit;
use crate::model::{Host, Inventory, Play, Playbook, Rolling, Vars};
use crate::modules::exclusive::{Exclusive, InProcess};
use crate::transport::{ConnectionKind, ConnectionSpec, Connector};

pub use batches::batch_lengths;
pub use gate::PlanGate;
pub use intents::{IntentLog, Refused};
pub use interrupt::Interrupt;
pub use link::Link;
pub use vars::FactStore;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Hosts worked on at once (a play's `forks` overrides it).
    pub forks: usize,
    /// Ask modules what they would change; change nothing.
    pub check_mode: bool,
    /// Run only tasks with one of these tags (plus `always`); empty means all.
    pub tags: Vec<String>,
    /// Never run tasks with one of these tags.
    pub skip_tags: Vec<String>,
    /// `-e` variables, highest precedence.
    pub extra_vars: Vars,
    /// Warn when a step runs longer than this (and again each time as long again).
    pub slow_step: Duration,
    /// Timeout of a task that sets none.
    pub default_timeout: Duration,
    pub run_id: String,
    /// Set by `apply`: only the approved plan's steps run, and drifted hosts are left alone.
    pub gate: Option<Arc<PlanGate>>,
    /// Digest of the plan being applied, for the journal.
    pub plan_digest: Option<String>,
    /// Where durable intents go before host-changing steps (the run journal).
    pub intents: Option<Arc<dyn IntentLog>>,
    /// How long a read-only step keeps trying a host that does not answer before it is
    /// unreachable. Zero in a fresh run; set where a change may be in flight on the host (a
    /// resumed run, a queue item), since Exchange Setup stops WinRM for a while mid-install.
    pub reconnect_grace: Duration,
    /// Where steps that must run once at a time hold their keys: this process's own by
    /// default; a queue runner's are the queue database's, shared with every runner.
    pub exclusive: Arc<dyn Exclusive>,
    /// Facts hosts start with, by host: what a resumed run carries over from the stopped one
    /// (the maintenance record of a server it left in maintenance).
    pub seed_facts: BTreeMap<String, Vars>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            forks: 50,
            check_mode: false,
            tags: Vec::new(),
            skip_tags: Vec::new(),
            extra_vars: Vars::new(),
            slow_step: Duration::from_secs(300),
            default_timeout: Duration::from_secs(2 * 3600),
            run_id: String::new(),
            gate: None,
            plan_digest: None,
            intents: None,
            reconnect_grace: Duration::ZERO,
            exclusive: Arc::new(InProcess::default()),
            seed_facts: BTreeMap::new(),
        }
    }
}

impl RunOptions {
    /// Whether a task with these tags runs under `--tags` / `--skip-tags`.
    pub fn selects(&self, task_tags: &[String]) -> bool {
        let has = |set: &[String]| task_tags.iter().any(|t| set.contains(t));
        if has(&self.skip_tags) {
            return false;
        }
        if task_tags.iter().any(|t| t == "never") && !has(&self.tags) {
            return false;
        }
        self.tags.is_empty() || has(&self.tags) || task_tags.iter().any(|t| t == "always")
    }
}

/// What to run: the playbook, the inventory, and the hosts each play runs on (the play's
/// pattern intersected with the run's selection, computed by the caller).
pub struct RunInput {
    pub playbook: Arc<Playbook>,
    pub inventory: Arc<Inventory>,
    /// Host names per play, in play order.
    pub play_hosts: Vec<Vec<String>>,
}

/// Shared by every host task of a run.
pub struct RunEnv {
    pub events: mpsc::UnboundedSender<Event>,
    pub options: RunOptions,
    pub interrupt: Interrupt,
    pub base_dir: PathBuf,
    in_flight: Mutex<BTreeMap<String, String>>,
}

impl RunEnv {
    pub fn emit(&self, event: Event) {
        // Reporters gone means nobody listens any more; the run still completes.
        let _ = self.events.send(event);
    }

    fn set_in_flight(&self, host: &str, task: Option<&str>) {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        match task {
            Some(t) => map.insert(host.to_string(), t.to_string()),
            None => map.remove(host),
        };
    }

    fn in_flight(&self) -> Vec<(String, String)> {
        let map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(h, t)| (h.clone(), t.clone())).collect()
    }
}

/// One host's state across the run.
struct Slot {
    host: Arc<Host>,
    link: Arc<Link>,
    counts: HostCounts,
    outcome: Option<HostOutcome>,
    left_in: Option<String>,
    /// Plays still to run on this host.
    remaining: usize,
}

/// Run a playbook; returns the summary (also sent as the last event).
pub async fn run(
    input: RunInput,
    options: RunOptions,
    connector: Arc<dyn Connector>,
    events: mpsc::UnboundedSender<Event>,
    interrupt: Interrupt,
) -> RunSummary {
    let started = tokio::time::Instant::now();
    let base_dir = input
        .playbook
        .path
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let env = Arc::new(RunEnv {
        events,
        options,
        interrupt,
        base_dir,
        in_flight: Mutex::default(),
    });
    // Each host once, in order of first appearance, with the number of plays it is in.
    let mut order: Vec<String> = Vec::new();
    let mut plays_of: HashMap<&str, usize> = HashMap::new();
    for play in &input.play_hosts {
        let mut in_play: HashSet<&str> = HashSet::new();
        for name in play.iter().filter(|n| in_play.insert(n.as_str())) {
            *plays_of.entry(name).or_insert_with(|| {
                order.push(name.clone());
                0
            }) += 1;
        }
    }
    let mut slots: BTreeMap<String, Slot> = BTreeMap::new();
    for name in &order {
        let Some(host) = input.inventory.host(name) else {
            continue;
        };
        let remaining = plays_of.get(name.as_str()).copied().unwrap_or_default();
        slots.insert(
            name.clone(),
            Slot {
                host: Arc::new(host.clone()),
                link: Arc::new(Link::new(
                    host.settings.connection.clone(),
                    Arc::clone(&connector),
                )),
                counts: HostCounts::default(),
                outcome: None,
                left_in: None,
                remaining,
            },
        );
    }
    order.retain(|n| slots.contains_key(n));
    env.emit(Event::RunStarted {
        run_id: env.options.run_id.clone(),
        playbook: input.playbook.path.display().to_string(),
        hosts: order.clone(),
        tenants: tenants(slots.values().map(|s| &*s.host)),
        check_mode: env.options.check_mode,
        started_at: jiff::Timestamp::now().to_string(),
    });
    let watcher = tokio::spawn(announce_interrupts(Arc::clone(&env)));
    // A template that reads `hostvars` may read any host's facts at any time; without one, a
    // host's facts are let go once it is done (see `FactStore`).
    let facts = FactStore::new(
        input.playbook.mentions_hostvars
            || input.inventory.mentions_hostvars()
            || crate::model::vars_mention(&env.options.extra_vars, "hostvars"),
    );
    for (host, seeded) in &env.options.seed_facts {
        facts.merge(host, seeded.clone());
    }
    if input.playbook.plays.iter().any(|p| p.gather_facts) {
        env.emit(Event::Warning {
            message: "gather_facts: salve gathers no facts by itself; the `exchange_facts` task reads what salve needs".into(),
        });
    }
    let controller = Arc::new(Link::new(
        controller_spec(slots.values().next().map(|s| &*s.host)),
        Arc::clone(&connector),
    ));

    for (index, hosts) in input.play_hosts.iter().enumerate() {
        if env.interrupt.drain.is_cancelled() {
            break;
        }
        let names: Vec<String> = hosts
            .iter()
            .filter(|h| slots.get(*h).is_some_and(|s| s.outcome.is_none()))
            .cloned()
            .collect();
        let stop = run_play(&env, &input, index, &names, &mut slots, &facts, &controller).await;
        let stopped = stop.is_some();
        env.emit(Event::PlayFinished {
            play: input.playbook.plays[index].name.clone(),
            play_index: index,
            stopped: stop,
        });
        if stopped {
            break;
        }
    }

    let mut closing: Vec<_> = slots.values().map(|s| Arc::clone(&s.link)).collect();
    closing.push(controller);
    futures_join_all(closing).await;
    watcher.abort();

    let interrupted = env.interrupt.drain.is_cancelled();
    let hosts: Vec<HostSummary> = order
        .iter()
        .filter_map(|n| slots.remove(n))
        .map(|s| {
            let outcome = match s.outcome {
                Some(o) => o,
                None if s.remaining == 0 => HostOutcome::Ok,
                None if interrupted => HostOutcome::Interrupted,
                None => HostOutcome::NotRun,
            };
            HostSummary {
                host: s.host.name.clone(),
                tenant: s.host.tenant.clone(),
                counts: s.counts,
                outcome,
                left_in: s.left_in,
            }
        })
        .collect();
    let summary = summarize(hosts, interrupted, started.elapsed());
    env.emit(Event::RunFinished {
        summary: summary.clone(),
    });
    summary
}

/// Run one play; returns why it stopped the run, if it did.
///
/// The play's hosts are split into lanes (see [`lanes`]): lanes run side by side, each lane's
/// batches one after another, and all hosts share the play's `forks` permits.
async fn run_play(
    env: &Arc<RunEnv>,
    input: &RunInput,
    index: usize,
    names: &[String],
    slots: &mut BTreeMap<String, Slot>,
    facts: &FactStore,
    controller: &Arc<Link>,
) -> Option<PlayStop> {
    let play = &input.playbook.plays[index];
    let hosts: Vec<&Host> = names
        .iter()
        .filter_map(|n| slots.get(n).map(|s| &*s.host))
        .collect();
    let lanes = lanes(play, &hosts);
    env.emit(Event::PlayStarted {
        play: play.name.clone(),
        play_index: index,
        hosts: names.to_vec(),
        tasks: play.tasks.len(),
        batches: lanes
            .iter()
            .flat_map(|l| l.batches.iter().cloned())
            .collect(),
    });
    let shared = Arc::new(PlayRun {
        env: Arc::clone(env),
        playbook: Arc::clone(&input.playbook),
        index,
        values: vars::PlayValues::new(
            Arc::clone(&input.inventory),
            &play.vars,
            &env.options.extra_vars,
            names,
        ),
        facts: facts.clone(),
        permits: Arc::new(Semaphore::new(
            play.forks.unwrap_or(env.options.forks).max(1),
        )),
        stop: Mutex::new(None),
        stopping: CancellationToken::new(),
        fatal: CancellationToken::new(),
        once: host::RunOnce::default(),
        controller: Arc::clone(controller),
        batch_number: AtomicUsize::new(0),
        hosts: slots
            .iter()
            .map(|(n, s)| {
                let last = s.remaining <= 1;
                (n.clone(), (Arc::clone(&s.host), Arc::clone(&s.link), last))
            })
            .collect(),
    });
    let mut set = JoinSet::new();
    for lane in lanes {
        set.spawn(Arc::clone(&shared).run_lane(lane));
    }
    while let Some(joined) = set.join_next().await {
        let Ok(ends) = joined else { continue };
        for (name, end) in ends {
            let Some(slot) = slots.get_mut(&name) else {
                continue;
            };
            add_counts(&mut slot.counts, &end.counts);
            if end.outcome.is_none() {
                slot.remaining = slot.remaining.saturating_sub(1);
            }
            slot.outcome = end.outcome;
            slot.left_in = end.left_in;
        }
    }
    if env.interrupt.drain.is_cancelled() {
        return Some(PlayStop::Interrupted);
    }
    shared.stop.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// A run of batches, one after another.
struct Lane {
    /// The DAG whose members these are (one per batch), or `None` for standalone hosts.
    dag: Option<String>,
    batches: Vec<Vec<String>>,
}

/// Split a play's hosts into lanes: with `rolling: dag`, one lane per DAG (its members one at
/// a time, in inventory order) and one for the hosts outside any DAG (in `serial` batches);
/// otherwise a single lane of `serial` batches.
fn lanes(play: &Play, hosts: &[&Host]) -> Vec<Lane> {
    let batches = |names: Vec<String>| {
        let mut rest = names.as_slice();
        let mut out = Vec::new();
        for len in batch_lengths(&play.serial, names.len()) {
            let (batch, tail) = rest.split_at(len);
            out.push(batch.to_vec());
            rest = tail;
        }
        out
    };
    let names = |hs: &[&Host]| hs.iter().map(|h| h.name.clone()).collect::<Vec<_>>();
    if play.rolling != Rolling::Dag {
        return vec![Lane {
            dag: None,
            batches: batches(names(hosts)),
        }];
    }
    let mut dags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut standalone = Vec::new();
    for h in hosts {
        match &h.settings.dag {
            Some(dag) => dags.entry(dag.clone()).or_default().push(h.name.clone()),
            None => standalone.push(*h),
        }
    }
    let mut lanes: Vec<Lane> = dags
        .into_iter()
        .map(|(dag, members)| Lane {
            dag: Some(dag),
            batches: members.into_iter().map(|m| vec![m]).collect(),
        })
        .collect();
    if !standalone.is_empty() {
        lanes.push(Lane {
            dag: None,
            batches: batches(names(&standalone)),
        });
    }
    lanes
}

/// What every lane of one play shares.
struct PlayRun {
    env: Arc<RunEnv>,
    playbook: Arc<Playbook>,
    index: usize,
    /// The variables every host of the play shares.
    values: vars::PlayValues,
    facts: FactStore,
    permits: Arc<Semaphore>,
    /// Why the play stopped, set by the first lane that stops it.
    stop: Mutex<Option<PlayStop>>,
    /// Cancelled when the play stops: no lane starts another batch.
    stopping: CancellationToken,
    /// Cancelled when a host of an `any_errors_fatal` play failed: every host stops.
    fatal: CancellationToken,
    /// Results of the play's `run_once` tasks.
    once: host::RunOnce,
    /// The controller, for tasks with `delegate_to: localhost`.
    controller: Arc<Link>,
    batch_number: AtomicUsize,
    /// Every host of the run: its connection, and whether this is its last play.
    hosts: BTreeMap<String, (Arc<Host>, Arc<Link>, bool)>,
}

impl PlayRun {
    async fn run_lane(self: Arc<Self>, lane: Lane) -> Vec<(String, host::HostPlayEnd)> {
        let play = &self.playbook.plays[self.index];
        let mut ends = Vec::new();
        for batch in &lane.batches {
            if self.env.interrupt.drain.is_cancelled() || self.stopping.is_cancelled() {
                break;
            }
            let number = self.batch_number.fetch_add(1, Ordering::SeqCst) + 1;
            self.env.emit(Event::BatchStarted {
                play: play.name.clone(),
                batch: number,
                hosts: batch.clone(),
            });
            let mut set = JoinSet::new();
            for name in batch {
                let Some((host, link, last)) = self.hosts.get(name).cloned() else {
                    continue;
                };
                set.spawn(Arc::clone(&self).run_host(host, link, last));
            }
            let mut failed = 0;
            while let Some(joined) = set.join_next().await {
                let Ok((name, end)) = joined else { continue };
                if matches!(
                    end.outcome,
                    Some(HostOutcome::Failed | HostOutcome::Unreachable)
                ) {
                    failed += 1;
                }
                ends.push((name, end));
            }
            if self.fatal.is_cancelled() {
                self.stop
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(PlayStop::AllHostsFailed);
                self.stopping.cancel();
                break;
            }
            if failed == 0 {
                continue;
            }
            if let Some(dag) = &lane.dag {
                self.env.emit(Event::Warning {
                    message: format!(
                        "DAG {dag}: {} failed; its other members are not started so the DAG keeps its healthy copies",
                        batch.join(", ")
                    ),
                });
                break;
            }
            // A play that sets max_fail_percentage decides its own tolerance; without it, a
            // batch in which every host failed stops the play (Ansible's rule).
            let stop = match play.max_fail_percentage {
                Some(limit) if (failed as f64) * 100.0 / (batch.len() as f64) > limit => {
                    Some(PlayStop::MaxFailPercentage {
                        batch: number,
                        failed,
                        hosts: batch.len(),
                        limit,
                    })
                }
                Some(_) => None,
                None if failed == batch.len() => Some(PlayStop::AllHostsFailed),
                None => None,
            };
            if let Some(stop) = stop {
                self.stop
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(stop);
                self.stopping.cancel();
                break;
            }
        }
        ends
    }

    /// Run the play on `host`; `last`: this is the host's last play, so its connection is
    /// closed as soon as the host is done (connections stay bounded by the hosts in flight,
    /// not the hosts of the run; a later `delegate_to` the host would connect again).
    async fn run_host(
        self: Arc<Self>,
        host: Arc<Host>,
        link: Arc<Link>,
        last: bool,
    ) -> (String, host::HostPlayEnd) {
        // The semaphore is never closed, so acquiring cannot fail.
        let _permit = Arc::clone(&self.permits).acquire_owned().await.ok();
        let play = &self.playbook.plays[self.index];
        let scope = vars::PlayScope {
            play_index: self.index,
            values: &self.values,
            check_mode: self.env.options.check_mode,
            facts: &self.facts,
            locals: Arc::default(),
        };
        let links = host::Links {
            host: link.as_ref(),
            controller: self.controller.as_ref(),
        };
        let end = host::run_host_play(
            &self.env,
            &scope,
            play,
            &host,
            links,
            &self.fatal,
            &self.once,
        )
        .await;
        // A host that failed or was unreachable takes no part in later plays either.
        if last || end.outcome.is_some() {
            link.close().await;
            self.facts.host_done(&host.name);
        }
        (host.name.clone(), end)
    }
}

/// The controller as a host to connect to (`delegate_to: localhost`): the `local` transport,
/// with the shell the inventory's hosts name (`salve_local_shell`, default `pwsh`).
fn controller_spec(any_host: Option<&Host>) -> ConnectionSpec {
    let mut spec = match any_host {
        Some(h) => h.settings.connection.clone(),
        None => {
            crate::model::HostSettings::read_with_defaults("localhost", &Vars::new())
                .0
                .connection
        }
    };
    spec.kind = ConnectionKind::Local;
    spec.name = "localhost".into();
    spec.address = "localhost".into();
    spec.port = None;
    spec
}

fn add_counts(total: &mut HostCounts, more: &HostCounts) {
    total.ok += more.ok;
    total.changed += more.changed;
    total.failed += more.failed;
    total.unreachable += more.unreachable;
    total.skipped += more.skipped;
    total.ignored += more.ignored;
    total.interrupted += more.interrupted;
}

async fn futures_join_all(links: Vec<Arc<Link>>) {
    let mut set = JoinSet::new();
    for link in links {
        set.spawn(async move { link.close().await });
    }
    while set.join_next().await.is_some() {}
}

async fn announce_interrupts(env: Arc<RunEnv>) {
    env.interrupt.drain.cancelled().await;
    env.emit(Event::Interrupt {
        stage: InterruptStage::Draining,
        in_flight: env.in_flight(),
    });
    env.interrupt.abort.cancelled().await;
    env.emit(Event::Interrupt {
        stage: InterruptStage::Aborting,
        in_flight: env.in_flight(),
    });
}

fn tenants<'a>(hosts: impl Iterator<Item = &'a Host>) -> Vec<String> {
    hosts
        .filter_map(|h| h.tenant.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Per-tenant outcome counts and the exit code.
pub fn summarize(hosts: Vec<HostSummary>, interrupted: bool, elapsed: Duration) -> RunSummary {
    let mut per_tenant: BTreeMap<String, BTreeMap<HostOutcome, usize>> = BTreeMap::new();
    for h in &hosts {
        *per_tenant
            .entry(h.tenant.clone().unwrap_or_default())
            .or_default()
            .entry(h.outcome)
            .or_default() += 1;
    }
    let any_failed = hosts.iter().any(|h| {
        matches!(
            h.outcome,
            HostOutcome::Failed
                | HostOutcome::Unreachable
                | HostOutcome::NotRun
                | HostOutcome::Drifted
        )
    });
    let exit_code = if interrupted {
        exit::INTERRUPTED
    } else if any_failed {
        exit::HOSTS_FAILED
    } else {
        exit::OK
    };
    RunSummary {
        hosts,
        tenants: per_tenant,
        interrupted,
        duration_ms: elapsed.as_millis() as u64,
        exit_code,
    }
}

#[cfg(test)]
mod tests;
