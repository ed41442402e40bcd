//! `salve resume RUN`: its arguments, handed to [`crate::app::resume`]; exits with the new
//! run's code.

use super::console::Terminal;
use crate::app::resume::ResumeRequest;

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
    let request = ResumeRequest {
        run: args.run,
        forks: args.forks,
        report: crate::report::Options {
            json: args.json,
            no_progress: args.no_progress,
            report_dir: args.report_dir,
        },
    };
    super::exit_with(crate::app::resume::resume(request, &Terminal), |code| code)
}
