//! `salve apply plan.json`: its arguments, handed to [`crate::app::apply`]; exits with the
//! run's code.

use std::path::PathBuf;

use super::Output;
use super::console::Terminal;
use crate::app::apply::ApplyRequest;

/// Arguments of `salve apply`.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The approved plan.
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// How many distinct trusted approvals the plan needs (0 applies an unapproved plan).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub require_approvals: usize,
    /// Folder of approvers' `.pub` keys to trust.
    #[arg(long, value_name = "DIR")]
    pub trusted_keys: Option<PathBuf>,
    /// Start work regardless of maintenance windows.
    #[arg(long)]
    pub ignore_windows: bool,
    /// Judge maintenance windows as if it were this time (RFC 3339), for rehearsals.
    #[arg(long, value_name = "TIME")]
    pub at: Option<jiff::Timestamp>,
    /// Hosts worked on at once.
    #[arg(short = 'f', long, default_value_t = 50, value_name = "N")]
    pub forks: usize,
    #[command(flatten)]
    pub output: Output,
    /// Enqueue the approved work in this queue database for `salve runner`s and follow it
    /// (`postgres://role@host/db`). Each host waits in the queue for a maintenance-window
    /// opening with room for its planned work, judged by the database's clock.
    #[arg(long, value_name = "URL", conflicts_with = "at")]
    pub queue: Option<String>,
    /// With --queue: enqueue, print the run's id and return (`salve queue follow RUN` later):
    /// hosts may wait days for their windows.
    #[arg(long, requires = "queue")]
    pub detach: bool,
}

pub fn run(args: ApplyArgs) -> u8 {
    let request = ApplyRequest {
        plan: args.plan,
        require_approvals: args.require_approvals,
        trusted_keys: args.trusted_keys,
        ignore_windows: args.ignore_windows,
        at: args.at,
        forks: args.forks,
        report: args.output.into_options(),
        queue: args.queue,
        detach: args.detach,
    };
    super::exit_with(
        crate::app::apply::apply(request, &Terminal),
        super::run::print_end,
    )
}
