//! `salve run`: its arguments, handed to [`crate::app::run`]; exits with the run's code.

use std::path::PathBuf;
use std::time::Duration;

use super::console::Terminal;
use super::{Output, Selection};
use crate::app::run::{RunEnd, RunRequest};
use crate::exit;

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
    #[command(flatten)]
    pub output: Output,
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
    let request = RunRequest {
        playbook: args.playbook,
        selection: args.selection.to_app(),
        forks: args.forks,
        check: args.check,
        tags: args.tags,
        skip_tags: args.skip_tags,
        slow_step: Duration::from_secs(args.slow_step),
        report: args.output.into_options(),
        queue: args.queue,
        detach: args.detach,
    };
    super::exit_with(crate::app::run::run(request, &Terminal), print_end)
}

/// Print what a run's end leaves to say; its exit code.
pub(super) fn print_end(end: RunEnd) -> u8 {
    match end {
        RunEnd::Ran(code) => code,
        RunEnd::Checked {
            plan_markdown,
            code,
        } => {
            println!("\n{plan_markdown}");
            code
        }
        RunEnd::Detached { run_id } => {
            println!("{run_id}");
            exit::OK
        }
    }
}
