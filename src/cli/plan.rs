//! `salve plan`: its arguments, handed to [`crate::app::plan`]; says what was written.

use std::path::PathBuf;

use super::Selection;
use super::console::Terminal;
use crate::app::plan::PlanRequest;
use crate::exit;
use crate::plan::render;

/// Arguments of `salve plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The playbook to plan.
    #[arg(value_name = "PLAYBOOK")]
    pub playbook: PathBuf,
    #[command(flatten)]
    pub selection: Selection,
    /// Where to write the plan; `.md` and `.html` renderings go beside it.
    #[arg(
        short = 'o',
        long = "out",
        value_name = "FILE",
        default_value = "plan.json"
    )]
    pub out: PathBuf,
    /// Hosts inspected at once.
    #[arg(short = 'f', long, default_value_t = 50, value_name = "N")]
    pub forks: usize,
    /// One JSON event per line on stdout instead of human output.
    #[arg(long)]
    pub json: bool,
    /// Plain lines instead of progress bars, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
}

pub fn run(args: PlanArgs) -> u8 {
    let request = PlanRequest {
        playbook: args.playbook,
        selection: args.selection.to_app(),
        out: args.out,
        forks: args.forks,
        report: crate::report::Options {
            json: args.json,
            no_progress: args.no_progress,
            report_dir: None,
        },
    };
    super::exit_with(crate::app::plan::plan(request, &Terminal), |written| {
        let plan = &written.plan;
        eprintln!(
            "\nplan written: {} ({} hosts with steps, {} steps, {} reboots, about {}; {} left out)\ndigest {}",
            written.files.join(", "),
            plan.totals.hosts_with_steps,
            plan.totals.steps,
            plan.totals.reboots,
            render::duration(plan.totals.estimated_seconds),
            plan.totals.left_out,
            plan.digest()
        );
        exit::OK
    })
}
