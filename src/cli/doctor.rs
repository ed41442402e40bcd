//! `salve doctor`: its arguments, handed to [`crate::app::doctor`]; prints the findings.

use super::Selection;
use super::console::Terminal;
use crate::doctor::{self, Diagnosis};
use crate::exit;

/// Arguments of `salve doctor`.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
    /// Hosts checked at once.
    #[arg(short = 'f', long, default_value_t = 50, value_name = "N")]
    pub forks: usize,
}

pub fn run(args: DoctorArgs) -> u8 {
    let result = crate::app::doctor::doctor(&args.selection.to_app(), args.forks, &Terminal);
    super::exit_with(result, |diagnoses| {
        if args.json {
            match serde_json::to_string_pretty(&diagnoses) {
                Ok(text) => println!("{text}"),
                Err(e) => {
                    eprintln!("error: {e}");
                    return exit::INTERNAL;
                }
            }
        } else {
            print!("{}", doctor::render(&diagnoses));
        }
        if diagnoses.iter().all(Diagnosis::healthy) {
            exit::OK
        } else {
            exit::HOSTS_FAILED
        }
    })
}
