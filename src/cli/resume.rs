//! `salve resume RUN`: continue a run that stopped (Ctrl-C, a crash, a lost controller) with
//! exactly the inputs it had. Refused when the playbook or inventory changed since.
//!
//! Nothing done is done again: every Exchange module re-reads the host's live facts before
//! acting (an update installs the next step of the path as the host stands now, and refuses
//! while a restart is pending; maintenance and mitigation are no-ops when already in place),
//! so steps the stopped run completed are recognised on the host itself. A step that was in
//! flight when the run stopped (an intent without an outcome in the journal) is listed, and
//! re-checked the same way before anything is retried.

use std::sync::Arc;
use std::time::Duration;

use super::invocation::Invocation;
use crate::exit;
use crate::runner::RunOptions;

/// Arguments of `salve resume`.
#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// The run to continue: its id or a unique prefix (see `salve runs list`).
    #[arg(value_name = "RUN")]
    pub run: String,
    #[arg(short = 'f', long, default_value_t = 50, value_name = "N")]
    pub forks: usize,
    #[arg(long)]
    pub json: bool,
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<std::path::PathBuf>,
    #[arg(long)]
    pub no_progress: bool,
}

pub fn run(args: ResumeArgs) -> u8 {
    let runtime = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(resume(args))
}

async fn resume(args: ResumeArgs) -> u8 {
    let journal = match crate::journal::Journal::open_default().await {
        Ok(j) => j,
        Err(e) => return super::print_error(&e, exit::INVALID_INPUT),
    };
    let detail = match journal.resolve_run(&args.run).await {
        Ok(id) => match journal.run(&id).await {
            Ok(d) => d,
            Err(e) => return super::print_error(&e, exit::INVALID_INPUT),
        },
        Err(e) => return super::print_error(&e, exit::INVALID_INPUT),
    };
    let run = &detail.run;
    let invocation = match Invocation::load(&run.id) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: run {} cannot be resumed: {e}", run.id);
            return exit::INVALID_INPUT;
        }
    };
    let prepared = match super::run::prepare(&invocation.playbook, &invocation.selection()) {
        Ok(p) => p,
        Err(diags) => {
            eprint!("{}", diags.render());
            return exit::INVALID_INPUT;
        }
    };
    if run.playbook_digest.as_deref() != Some(prepared.input.playbook.digest.as_str())
        || run.inventory_digest.as_deref() != Some(prepared.input.inventory.digest.as_str())
    {
        eprintln!(
            "error: the playbook or inventory changed since run {}; start a new run (or plan) instead",
            run.id
        );
        return exit::INVALID_INPUT;
    }
    let open: Vec<_> = detail
        .intents
        .iter()
        .filter(|i| i.outcome.is_none())
        .collect();
    for intent in &open {
        eprintln!(
            "in flight when run {} stopped: {}: {} (re-checked against the host before anything is retried)",
            run.id, intent.host, intent.action
        );
    }
    let options = RunOptions {
        forks: args.forks.max(1),
        tags: invocation.tags.clone(),
        skip_tags: invocation.skip_tags.clone(),
        extra_vars: prepared.extra_vars,
        slow_step: Duration::from_secs(300),
        run_id: super::run::run_id(),
        ..RunOptions::default()
    };
    if let Err(e) = invocation.save(&options.run_id) {
        eprintln!("warning: cannot record this run's inputs ({e})");
    }
    eprintln!("resuming run {} as run {}", run.id, options.run_id);
    let report = crate::report::Options {
        json: args.json,
        no_progress: args.no_progress,
        report_dir: args.report_dir,
    };
    let connector = Arc::new(super::run::standard_connector());
    super::run::execute(prepared.input, options, connector, &report).await
}
