//! `salve run`: load and validate the inventory and playbook, pick each play's hosts, then run
//! with the real transports while reporters show progress, and exit with the run's code.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Selection;
use super::invocation::Invocation;
use crate::diag::Diagnostics;
use crate::exit;
use crate::model::{Inventory, Playbook};
use crate::runner::{self, Interrupt, RunInput, RunOptions};
use crate::secret::SecretRef;
use crate::transport::Connector;
use crate::transport::dispatch::Dispatch;
use crate::transport::ssh::SshConnector;
use crate::transport::winrm::WinrmConnector;

/// Arguments of `salve run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The playbook to run.
    #[arg(value_name = "PLAYBOOK")]
    pub playbook: PathBuf,
    #[command(flatten)]
    pub selection: Selection,
    /// Hosts worked on at once (a play's `forks` overrides it).
    #[arg(short = 'f', long, default_value_t = 50, value_name = "N")]
    pub forks: usize,
    /// Ask every module what it would change; change nothing.
    #[arg(long)]
    pub check: bool,
    /// Run only tasks with one of these tags (and `always`); comma-separated or repeated.
    #[arg(short = 't', long, value_delimiter = ',', value_name = "TAG")]
    pub tags: Vec<String>,
    /// Never run tasks with one of these tags.
    #[arg(long, value_delimiter = ',', value_name = "TAG")]
    pub skip_tags: Vec<String>,
    /// One JSON event per line on stdout instead of human output.
    #[arg(long)]
    pub json: bool,
    /// Write report.json and junit.xml into DIR at the end of the run.
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
    /// Plain lines instead of progress bars, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// Warn about a step running longer than this many seconds (and again each time as long).
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub slow_step: u64,
    /// Enqueue the run in this queue database for `salve runner`s, and follow it there, instead
    /// of running it from here (`postgres://role@host/db`). Never taken from the environment, so
    /// a plain `salve run` always runs locally.
    #[arg(long, value_name = "URL")]
    pub queue: Option<String>,
    /// With --queue: enqueue, print the run's id and return (`salve queue follow RUN` later).
    #[arg(long, requires = "queue")]
    pub detach: bool,
}

pub fn run(args: RunArgs) -> u8 {
    let prepared = match prepare(&args.playbook, &args.selection) {
        Ok(p) => p,
        Err(diags) => {
            eprint!("{}", diags.render());
            return exit::INVALID_INPUT;
        }
    };
    // Queued runs are executed by runners, which resolve credentials from their own inventories.
    if args.queue.is_none()
        && let Err(code) = ask_for_prompted_secrets(&prepared)
    {
        return code;
    }
    let runtime = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let options = RunOptions {
        forks: args.forks.max(1),
        check_mode: args.check,
        tags: args.tags.clone(),
        skip_tags: args.skip_tags.clone(),
        extra_vars: prepared.extra_vars.clone(),
        slow_step: Duration::from_secs(args.slow_step.max(1)),
        run_id: run_id(),
        ..RunOptions::default()
    };
    let invocation = Invocation {
        playbook: args.playbook.clone(),
        inventories: args.selection.inventories.clone(),
        limit: args.selection.limit.clone(),
        tenant: args.selection.tenant.clone(),
        all_tenants: args.selection.all_tenants,
        extra_vars: args.selection.extra_vars.clone(),
        tags: args.tags.clone(),
        skip_tags: args.skip_tags.clone(),
    };
    if let Err(e) = invocation.save(&options.run_id) {
        eprintln!(
            "warning: cannot record this run's inputs ({e}); `salve resume` will not know it"
        );
    }
    let report_options = crate::report::Options {
        json: args.json,
        no_progress: args.no_progress,
        report_dir: args.report_dir.clone(),
    };
    if let Some(url) = &args.queue {
        return runtime.block_on(super::queue::run_queued(
            url,
            prepared.input,
            options,
            &report_options,
            None,
            args.detach,
        ));
    }
    if args.check && !args.json {
        // The same plan `salve plan` writes, printed instead of saved.
        let selection = crate::plan::PlanSelection {
            limit: args.selection.limit.clone(),
            tenant: args.selection.tenant.clone(),
            all_tenants: args.selection.all_tenants,
        };
        return runtime.block_on(async move {
            match super::plan::make_plan(prepared, selection, args.forks, &report_options).await {
                Ok((plan, code)) => {
                    println!(
                        "\n{}",
                        crate::plan::render::markdown(&plan, crate::plan::render::Scope::Whole)
                    );
                    code
                }
                Err(code) => code,
            }
        });
    }
    runtime.block_on(async move {
        let connector: Arc<dyn Connector> = Arc::new(standard_connector());
        execute(prepared.input, options, connector, &report_options).await
    })
}

/// Run with reporters attached; returns the exit code.
pub async fn execute(
    input: RunInput,
    options: RunOptions,
    connector: Arc<dyn Connector>,
    report: &crate::report::Options,
) -> u8 {
    execute_with(input, options, connector, report, Vec::new()).await
}

/// [`execute`] with more reporters (plan collection) beside the usual ones. Every run is
/// recorded in the journal; a journal that cannot be opened or written is warned about, never
/// a reason to stop an emergency change.
pub async fn execute_with(
    input: RunInput,
    mut options: RunOptions,
    connector: Arc<dyn Connector>,
    report: &crate::report::Options,
    extra: Vec<Box<dyn crate::report::Reporter + Send>>,
) -> u8 {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut all = crate::report::build(report);
    all.extend(extra);
    match crate::journal::Journal::open_default().await {
        Ok(journal) => {
            let meta = crate::journal::RunMeta {
                playbook_digest: Some(input.playbook.digest.clone()),
                inventory_digest: Some(input.inventory.digest.clone()),
                plan_digest: options.plan_digest.clone(),
            };
            if !options.check_mode {
                let intents =
                    crate::journal::JournalIntents::new(journal.clone(), options.run_id.clone());
                options.intents = Some(Arc::new(intents));
            }
            let recorder = crate::journal::JournalReporter::spawn(
                journal,
                meta,
                &tokio::runtime::Handle::current(),
            );
            all.push(Box::new(crate::report::BestEffort::new(
                "run journal",
                recorder,
            )));
        }
        Err(e) => {
            eprintln!("warning: the run journal is unavailable ({e}); this run is not recorded")
        }
    }
    let reporters = crate::report::spawn_reporters(rx, all);
    let interrupt = Interrupt::default();
    let ctrl_c = interrupt.watch_ctrl_c();
    let summary = runner::run(input, options, connector, tx, interrupt).await;
    ctrl_c.abort();
    match reporters.await {
        Ok(Ok(())) => summary.exit_code,
        Ok(Err(e)) => {
            eprintln!("error: cannot write the run's output: {e}");
            exit::INTERNAL
        }
        Err(e) => {
            eprintln!("error: the reporters stopped unexpectedly: {e}");
            exit::INTERNAL
        }
    }
}

/// The transports a real run uses.
pub fn standard_connector() -> Dispatch {
    Dispatch::new(Arc::new(WinrmConnector), Arc::new(SshConnector::new()))
}

/// A validated run, ready to start.
pub(super) struct Prepared {
    pub input: RunInput,
    pub extra_vars: crate::model::Vars,
}

/// Load and validate everything; nothing connects yet.
pub(super) fn prepare(
    playbook: &std::path::Path,
    selection: &Selection,
) -> Result<Prepared, Diagnostics> {
    let (inventory, extra_vars) = super::selection::load(selection)?;
    let playbook = crate::config::playbook::load(playbook, &inventory, &extra_vars)?;
    let play_hosts = super::selection::play_hosts(&inventory, &playbook, selection)?;
    if play_hosts.iter().all(Vec::is_empty) {
        eprintln!("warning: no hosts matched; nothing to do");
    }
    Ok(Prepared {
        input: input(inventory, playbook, play_hosts),
        extra_vars,
    })
}

fn input(inventory: Inventory, playbook: Playbook, play_hosts: Vec<Vec<String>>) -> RunInput {
    RunInput {
        playbook: Arc::new(playbook),
        inventory: Arc::new(inventory),
        play_hosts,
    }
}

/// If any selected host's password is `prompt`, ask once now, before any bar is drawn.
fn ask_for_prompted_secrets(prepared: &Prepared) -> Result<(), u8> {
    let needs_prompt = prepared.input.play_hosts.iter().flatten().any(|name| {
        prepared
            .input
            .inventory
            .host(name)
            .is_some_and(|h| h.settings.connection.password == Some(SecretRef::Prompt))
    });
    if !needs_prompt {
        return Ok(());
    }
    crate::secret::ask_prompt_once("Password for hosts whose password is `prompt`: ").map_err(|e| {
        eprintln!("error: {e}");
        exit::INVALID_INPUT
    })
}

/// A sortable, unique-enough run id: UTC time plus a random suffix.
pub(super) fn run_id() -> String {
    let now = jiff::Timestamp::now();
    let suffix = fastrand::u16(..);
    format!("{}-{suffix:04x}", now.strftime("%Y%m%dT%H%M%SZ"))
}
