//! The command line: argument definitions (clap), one file per subcommand, each turning its
//! arguments into a request, calling one [`crate::app`] function, printing what it returns and
//! mapping an [`crate::app::AppError`] to a documented exit code ([`crate::exit`]).

mod apply;
mod approve;
mod assess;
mod catalogue;
mod check;
mod console;
#[cfg(feature = "lab")]
mod demo;
mod doctor;
mod inventory;
mod keygen;
mod plan;
mod queue;
mod resume;
mod run;
mod runner;
mod runs;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// salve: find, mitigate, patch and verify on-premises Exchange servers across a fleet.
#[derive(Debug, Parser)]
#[command(name = "salve", version, about, max_term_width = 100)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a playbook against the hosts of an inventory.
    Run(run::RunArgs),
    /// Validate a playbook and its inventory without connecting to any host.
    Check(check::CheckArgs),
    /// List the resolved hosts with their groups, tenant and variables.
    Inventory(inventory::InventoryArgs),
    /// Tell what an Exchange build is, which CVEs it is open to, and the path to fixed.
    Assess(assess::AssessArgs),
    /// The build/CVE catalogue in use; install a newer signed one.
    Catalogue(catalogue::CatalogueArgs),
    /// Make an Ed25519 key pair for approving plans (NAME.key, NAME.pub).
    Keygen(keygen::KeygenArgs),
    /// Countersign a plan with your key.
    Approve(approve::ApproveArgs),
    /// What the run journal recorded: past runs, their steps, changes left in flight.
    Runs(runs::RunsArgs),
    /// Run a simulated Exchange fleet that speaks real WinRM (tests, demos, rehearsals).
    #[cfg(feature = "lab")]
    Lab(salve_lab::cli::LabArgs),
    /// Gather facts and write the plan (what would change on each host, and why) for approval.
    Plan(plan::PlanArgs),
    /// Apply an approved plan: exactly its steps, on hosts whose facts have not drifted.
    Apply(apply::ApplyArgs),
    /// Continue a stopped run with the same inputs; completed work is recognised on the hosts.
    Resume(resume::ResumeArgs),
    /// Start a simulated fleet in-process and run the remediation playbook against it.
    #[cfg(feature = "lab")]
    Demo(demo::DemoArgs),
    /// Check each host's connection (DNS, TCP, listener, TLS, auth, a command) and say what to fix.
    Doctor(doctor::DoctorArgs),
    /// Claim and run queued work for its tenants (and site) from the queue database.
    Runner(runner::RunnerArgs),
    /// Set up the queue database or show the work in it.
    Queue(queue::QueueArgs),
}

/// Which inventory and which hosts: shared by every command that reads an inventory.
#[derive(Debug, Clone, clap::Args)]
pub struct Selection {
    /// Inventory file (Ansible YAML format); repeat to merge several.
    #[arg(short = 'i', long = "inventory", value_name = "FILE", required = true)]
    pub inventories: Vec<PathBuf>,
    /// Further limit the hosts with a host pattern (`ex*:&dag1:!ex03`, `@file`).
    #[arg(short = 'l', long, value_name = "PATTERN")]
    pub limit: Option<String>,
    /// Restrict the run to one tenant (customer).
    #[arg(long, value_name = "NAME", conflicts_with = "all_tenants")]
    pub tenant: Option<String>,
    /// Allow a run to span several tenants.
    #[arg(long)]
    pub all_tenants: bool,
    /// Extra variables `key=value` (the value is parsed as YAML) or `@file.yml` (a mapping of
    /// variables); highest precedence, a later one wins.
    #[arg(short = 'e', long = "extra-vars", value_name = "KEY=VALUE|@FILE")]
    pub extra_vars: Vec<String>,
}

/// Parse arguments, set up logging, run the command, and map the result to an exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version are successes; a usage error is invalid input (exit 3), never the
        // "hosts failed" code 2 that clap would use.
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                crate::exit::INVALID_INPUT
            } else {
                crate::exit::OK
            });
        }
    };
    init_tracing(cli.verbose);
    catalogue::activate_installed();
    let code = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Check(args) => check::run(args),
        Command::Inventory(args) => inventory::run(args),
        Command::Assess(args) => assess::run(args),
        Command::Catalogue(args) => catalogue::run(args),
        #[cfg(feature = "lab")]
        Command::Lab(args) => salve_lab::cli::run(args, runtime),
        Command::Plan(args) => plan::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Resume(args) => resume::run(args),
        #[cfg(feature = "lab")]
        Command::Demo(args) => demo::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Keygen(args) => keygen::run(args),
        Command::Approve(args) => approve::run(args),
        Command::Runs(args) => runs::run(args),
        Command::Runner(args) => runner::run(args),
        Command::Queue(args) => queue::run(args),
    };
    ExitCode::from(code)
}

/// How a run's progress and results are shown: shared by every command that runs or follows a
/// playbook run.
#[derive(Debug, Clone, clap::Args)]
pub struct Output {
    /// One JSON event per line on stdout instead of human output.
    #[arg(long)]
    pub json: bool,
    /// Write report.json and junit.xml into DIR at the end of the run.
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
    /// Plain lines instead of progress bars, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
}

impl Output {
    /// The reporters' options.
    pub fn into_options(self) -> crate::report::Options {
        crate::report::Options {
            json: self.json,
            no_progress: self.no_progress,
            report_dir: self.report_dir,
        }
    }
}

impl Selection {
    /// The library's form of the selection.
    pub fn to_app(&self) -> crate::app::Selection {
        crate::app::Selection {
            inventories: self.inventories.clone(),
            limit: self.limit.clone(),
            tenant: self.tenant.clone(),
            all_tenants: self.all_tenants,
            extra_vars: self.extra_vars.clone(),
        }
    }
}

/// Print an application error (every diagnostic, or `error: ...` with its "Caused by:" chain)
/// on stderr; returns its exit code.
fn report_error(error: &crate::app::AppError) -> u8 {
    let code = error.exit_code();
    match error {
        crate::app::AppError::Invalid(diags) => {
            eprint!("{}", diags.render());
            code
        }
        crate::app::AppError::Refused(e) | crate::app::AppError::Failed(e) => {
            print_error(e.as_ref(), code)
        }
    }
}

/// The exit code of a command's result: its own on success, the error's otherwise.
fn exit_with<T>(result: Result<T, crate::app::AppError>, ok: impl FnOnce(T) -> u8) -> u8 {
    match result {
        Ok(value) => ok(value),
        Err(e) => report_error(&e),
    }
}

/// Print `error: ...` and its "Caused by:" chain on stderr; returns `code`.
fn print_error(error: &dyn std::error::Error, code: u8) -> u8 {
    eprintln!("error: {error}");
    let causes = crate::error_chain::causes(error);
    if !causes.is_empty() {
        eprintln!("\nCaused by:");
    }
    for cause in causes {
        eprintln!("    {cause}");
    }
    code
}

/// The multi-threaded tokio runtime every networked command runs on; the error is already
/// reported and mapped to its exit code.
pub fn runtime() -> Result<tokio::runtime::Runtime, u8> {
    crate::app::runtime().map_err(|e| report_error(&e))
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        // winrm-rs warns about NTLM over HTTP on every connection; `salve doctor` explains
        // transport security once instead.
        0 => "warn,winrm_rs=error",
        1 => "salve=info",
        2 => "salve=debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::report::log_writer())
        .with_ansi(crate::report::stderr_color())
        .init();
}
