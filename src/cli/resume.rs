//! `salve resume RUN`: its arguments, handed to [`crate::app::resume`]; exits with the new
//! run's code.

use super::Output;
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
    #[command(flatten)]
    pub output: Output,
}

pub fn run(args: ResumeArgs) -> u8 {
    let request = ResumeRequest {
        run: args.run,
        forks: args.forks,
        report: args.output.into_options(),
    };
    super::exit_with(crate::app::resume::resume(request, &Terminal), |code| code)
}
