//! Assembling a run: the one place that turns a validated [`RunInput`] into a started run —
//! its [`RunOptions`] (forks, check mode, tags, extra variables, the approved plan's gate), its
//! run id, the journal that records it and the reporters that show it. `salve run`, `check`
//! (`run --check`), `plan`, `apply`, `resume` and `demo` (through [`crate::app`]) and the queue
//! worker build their runs here, so an option cannot be honoured by one command and dropped by
//! another.
//!
//! Layering: above [`crate::runner`], [`crate::journal`] and [`crate::report`]; below
//! [`crate::app`] and [`crate::queue`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::events::RunSummary;
use crate::model::Vars;
use crate::report::Reporter;
use crate::runner::{self, IntentLog, Interrupt, PlanGate, RunInput, RunOptions};
use crate::transport::Connector;
use crate::transport::dispatch::Dispatch;
use crate::transport::ssh::SshConnector;
use crate::transport::winrm::WinrmConnector;

/// A run being assembled. Start from [`RunBuilder::new`], set what the command asks for, then
/// [`RunBuilder::execute`] it here or hand its parts to the queue ([`RunBuilder::into_parts`]).
/// How long a read-only step keeps trying a host that does not answer when a change may be in
/// flight on it (a resumed run, a queue item): Exchange Setup stops WinRM for minutes
/// mid-install, and a restart takes as long.
pub const IN_FLIGHT_GRACE: Duration = Duration::from_secs(600);

pub struct RunBuilder {
    input: RunInput,
    options: RunOptions,
    reporters: Vec<Box<dyn Reporter + Send>>,
}

impl RunBuilder {
    /// A run of `input` with `extra_vars` (`-e`) and a fresh run id; everything else default.
    pub fn new(input: RunInput, extra_vars: Vars) -> Self {
        RunBuilder {
            input,
            options: RunOptions {
                extra_vars,
                run_id: new_run_id(),
                ..RunOptions::default()
            },
            reporters: Vec::new(),
        }
    }

    /// Keep an existing run id (a queued item runs under its run's id).
    pub fn run_id(mut self, id: impl Into<String>) -> Self {
        self.options.run_id = id.into();
        self
    }

    /// Keep trying a host that does not answer for up to `grace` in read-only steps (see
    /// [`RunOptions::reconnect_grace`]); [`IN_FLIGHT_GRACE`] where a change may be in flight.
    pub fn reconnect_grace(mut self, grace: Duration) -> Self {
        self.options.reconnect_grace = grace;
        self
    }

    /// Hosts worked on at once (at least one).
    pub fn forks(mut self, forks: usize) -> Self {
        self.options.forks = forks.max(1);
        self
    }

    /// Ask every module what it would change; change nothing.
    pub fn check_mode(mut self, check: bool) -> Self {
        self.options.check_mode = check;
        self
    }

    /// `--tags` and `--skip-tags`.
    pub fn tags(mut self, tags: Vec<String>, skip_tags: Vec<String>) -> Self {
        self.options.tags = tags;
        self.options.skip_tags = skip_tags;
        self
    }

    /// Warn about a step running longer than this (at least a second).
    pub fn slow_step(mut self, after: Duration) -> Self {
        self.options.slow_step = after.max(Duration::from_secs(1));
        self
    }

    /// Run only an approved plan's steps (`gate`), recording the plan's digest.
    pub fn approved(mut self, gate: PlanGate, plan_digest: Option<String>) -> Self {
        self.options.gate = Some(Arc::new(gate));
        self.options.plan_digest = plan_digest;
        self
    }

    /// Where durable intents go before host-changing steps, instead of the local journal.
    pub fn intents(mut self, log: Arc<dyn IntentLog>) -> Self {
        self.options.intents = Some(log);
        self
    }

    /// Facts hosts start with (see [`crate::runner::RunOptions::seed_facts`]).
    pub fn seed_facts(mut self, facts: std::collections::BTreeMap<String, Vars>) -> Self {
        self.options.seed_facts = facts;
        self
    }

    /// Where steps that must run once at a time hold their keys, instead of this process.
    pub fn exclusive(mut self, store: Arc<dyn crate::modules::exclusive::Exclusive>) -> Self {
        self.options.exclusive = store;
        self
    }

    /// One more reporter beside the ones the report options ask for (e.g. plan collection).
    pub fn reporter(mut self, reporter: Box<dyn Reporter + Send>) -> Self {
        self.reporters.push(reporter);
        self
    }

    pub fn options(&self) -> &RunOptions {
        &self.options
    }

    pub fn input(&self) -> &RunInput {
        &self.input
    }

    /// The run's input and options, for callers that execute elsewhere (the queue).
    pub fn into_parts(self) -> (RunInput, RunOptions) {
        (self.input, self.options)
    }

    /// Run here against `connector`, with the reporters `report` asks for plus any added, and
    /// record it in the run journal; returns the run's summary once every reporter has
    /// finished. A journal that cannot be opened is reported as a warning event, never a
    /// reason to stop an emergency change.
    pub async fn execute(
        mut self,
        connector: Arc<dyn Connector>,
        report: &crate::report::Options,
    ) -> Result<RunSummary, LaunchError> {
        let mut all = crate::report::build(report);
        all.append(&mut self.reporters);
        let (tx, rx) = mpsc::unbounded_channel();
        match crate::journal::Journal::open_default().await {
            Ok(journal) => {
                let meta = crate::journal::RunMeta {
                    playbook_digest: Some(self.input.playbook.digest.clone()),
                    inventory_digest: Some(self.input.inventory.digest.clone()),
                    plan_digest: self.options.plan_digest.clone(),
                    hosts: host_context(&self.input),
                    tasks: task_context(&self.input),
                };
                if !self.options.check_mode && self.options.intents.is_none() {
                    let intents = crate::journal::JournalIntents::new(
                        journal.clone(),
                        self.options.run_id.clone(),
                    );
                    self.options.intents = Some(Arc::new(intents));
                }
                let recorder = crate::journal::JournalReporter::spawn(
                    journal.clone(),
                    meta,
                    &tokio::runtime::Handle::current(),
                );
                all.push(Box::new(crate::report::BestEffort::new(
                    "run journal",
                    recorder,
                )));
                // After the journal's reporter: the pages are read from what it wrote.
                if let Some(dir) = &report.report_dir {
                    all.push(Box::new(crate::run_report::HtmlReporter::new(
                        dir.clone(),
                        journal,
                        tokio::runtime::Handle::current(),
                    )));
                }
            }
            Err(e) => {
                let message = format!(
                    "the run journal is unavailable ({}); this run is not recorded{}",
                    crate::error_chain::one_line(&e),
                    if report.report_dir.is_some() {
                        " and its HTML report (read from the journal) is not written"
                    } else {
                        ""
                    }
                );
                // The receiver is alive: the reporters hold it until the sender is dropped.
                let _ = tx.send(crate::events::Event::Warning { message });
            }
        }
        let reporters = crate::report::spawn_reporters(rx, all);
        let interrupt = Interrupt::default();
        let ctrl_c = interrupt.watch_ctrl_c();
        let summary = runner::run(self.input, self.options, connector, tx, interrupt).await;
        ctrl_c.abort();
        reporters
            .await
            .map_err(LaunchError::Reporters)?
            .map_err(LaunchError::Output)?;
        Ok(summary)
    }

    /// Run here with the events going to `events` only (no journal, no reporters): what a
    /// queue runner does, recording the events itself. `interrupt` stops the run.
    pub async fn execute_into(
        self,
        connector: Arc<dyn Connector>,
        events: mpsc::UnboundedSender<crate::events::Event>,
        interrupt: Interrupt,
    ) -> RunSummary {
        runner::run(self.input, self.options, connector, events, interrupt).await
    }
}

/// Each host of the run with its tenant, DAG and window time zone, for the journal's reports.
fn host_context(input: &RunInput) -> Vec<crate::journal::HostContext> {
    let names: std::collections::BTreeSet<&String> = input.play_hosts.iter().flatten().collect();
    names
        .into_iter()
        .map(|name| {
            let host = input.inventory.host(name);
            crate::journal::HostContext {
                host: name.clone(),
                tenant: host.and_then(|h| h.tenant.clone()),
                dag: host.and_then(|h| h.settings.dag.clone()),
                time_zone: host
                    .and_then(|h| h.settings.schedule.as_ref())
                    .and_then(|s| s.time_zone())
                    .map(str::to_string),
                ..Default::default()
            }
        })
        .collect()
}

/// The module each step of the playbook calls, keyed as events key steps.
fn task_context(input: &RunInput) -> Vec<crate::journal::TaskContext> {
    input
        .playbook
        .plays
        .iter()
        .enumerate()
        .flat_map(|(play, p)| {
            p.indexed_tasks()
                .map(move |(task_index, _, task)| crate::journal::TaskContext {
                    play,
                    task_index,
                    module: task.call.module.clone(),
                })
        })
        .collect()
}

/// Why a run's output could not be completed (the run itself ran).
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot write the run's output")]
    Output(#[source] std::io::Error),
    #[error("the reporters stopped unexpectedly")]
    Reporters(#[source] tokio::task::JoinError),
}

/// The transports a real run uses.
pub fn standard_connector() -> Dispatch {
    Dispatch::new(Arc::new(WinrmConnector), Arc::new(SshConnector::new()))
}

/// A sortable, unique-enough run id: UTC time plus a random suffix.
pub fn new_run_id() -> String {
    let now = jiff::Timestamp::now();
    let suffix = fastrand::u16(..);
    format!("{}-{suffix:04x}", now.strftime("%Y%m%dT%H%M%SZ"))
}
