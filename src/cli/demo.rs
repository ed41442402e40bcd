//! `salve demo`: its arguments, handed to [`crate::app::demo`]; says what the lab recorded and
//! where the reports are.

use std::path::PathBuf;

use super::console::Terminal;
use crate::app::demo::DemoRequest;

/// Arguments of `salve demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Playbook to run (default: playbooks/remediate.yml, or playbooks/hello.yml without it).
    #[arg(long, value_name = "FILE")]
    pub playbook: Option<PathBuf>,
    /// Servers in the default fleet mix.
    #[arg(long, default_value_t = 36, value_name = "N")]
    pub hosts: usize,
    /// A lab scenario file instead of the default mix.
    #[arg(long, value_name = "FILE", conflicts_with = "hosts")]
    pub scenario: Option<PathBuf>,
    /// Simulated seconds per real second: at 600 a 60-minute CU install takes 6 s.
    #[arg(long, default_value_t = 600.0, value_name = "X")]
    pub time_scale: f64,
    /// Hosts worked on at once.
    #[arg(short = 'f', long, default_value_t = 50, value_name = "N")]
    pub forks: usize,
    /// Where to write report.json and junit.xml.
    #[arg(long, default_value = "salve-demo-report", value_name = "DIR")]
    pub report_dir: PathBuf,
    /// One JSON event per line on stdout instead of human output.
    #[arg(long)]
    pub json: bool,
    /// Plain lines instead of progress bars, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
}

pub fn run(args: DemoArgs) -> u8 {
    let report_dir = args.report_dir.clone();
    let request = DemoRequest {
        playbook: args.playbook,
        hosts: args.hosts,
        scenario: args.scenario,
        time_scale: args.time_scale,
        forks: args.forks,
        report: crate::report::Options {
            json: args.json,
            no_progress: args.no_progress,
            report_dir: Some(args.report_dir),
        },
    };
    super::exit_with(crate::app::demo::demo(request, &Terminal), |end| {
        eprintln!("\n{}", end.lab_summary);
        eprintln!(
            "reports: {}/report.json, {}/junit.xml",
            report_dir.display(),
            report_dir.display()
        );
        if let Some(pages) = &end.pages {
            eprint!("{}", super::runs::report_text(pages));
        }
        end.code
    })
}
