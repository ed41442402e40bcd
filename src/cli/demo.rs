//! `salve demo`: the whole job on a simulated fleet, in one command. Starts a lab fleet in this
//! process (several tenants, a DAG, vulnerable and patched builds, a compromised host, a host
//! whose install fails, an unreachable one), serves it over real WinRM on loopback, and runs a
//! playbook against it exactly as `salve run` would against production, then says what the
//! lab recorded.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::console::Terminal;
use crate::exit;
use crate::launch::RunBuilder;
use salve_lab::fleet::Fleet;
use salve_lab::inventory::{self, PasswordIn};
use salve_lab::log::LabEvent;
use salve_lab::{frontends, scenario};

/// Loopback block of the demo fleet (127.200.x.y), away from `salve lab serve`'s 127.0.x.y.
const DEMO_BLOCK: u8 = 200;

/// Arguments of `salve demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Playbook to run (default: playbooks/proxylogon.yml, or playbooks/hello.yml without it).
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
    let spec = match &args.scenario {
        Some(path) => scenario::load(path),
        None => scenario::default_scenario(args.hosts, 2021),
    };
    let mut spec = match spec {
        Ok(s) => s,
        Err(diags) => {
            eprint!("{}", diags.render());
            return exit::INVALID_INPUT;
        }
    };
    spec.time_scale = args.time_scale;
    let playbook = args.playbook.clone().unwrap_or_else(default_playbook);
    let runtime = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let fleet = Arc::new(Fleet::new_in_block(&spec, DEMO_BLOCK));
        let cancel = CancellationToken::new();
        if let Err(e) = frontends::start(&fleet, None, &cancel).await {
            eprintln!("error: cannot start the lab's WinRM listeners: {e}");
            return exit::INTERNAL;
        }
        let work = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("error: cannot create a work folder: {e}");
                return exit::INTERNAL;
            }
        };
        let inventory = match write_inventory(&fleet, work.path()) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: cannot write the lab inventory: {e}");
                return exit::INTERNAL;
            }
        };
        eprintln!(
            "lab: {} simulated Exchange servers in {} tenants on 127.{DEMO_BLOCK}.x.y, WinRM with NTLM and \
             message encryption; time runs {}x faster\n",
            fleet.hosts().len(),
            fleet.tenants().len(),
            args.time_scale
        );
        let code = run_playbook(&args, &playbook, inventory).await;
        cancel.cancel();
        eprintln!("\n{}", lab_summary(&fleet));
        eprintln!("reports: {}/report.json, {}/junit.xml", args.report_dir.display(), args.report_dir.display());
        code
    })
}

fn default_playbook() -> PathBuf {
    let remediation = PathBuf::from("playbooks/proxylogon.yml");
    if remediation.exists() {
        remediation
    } else {
        PathBuf::from("playbooks/hello.yml")
    }
}

/// The lab's inventory, with its password in an owner-only file referenced as `file:`.
fn write_inventory(fleet: &Fleet, dir: &Path) -> std::io::Result<PathBuf> {
    let password_file = dir.join("lab-password");
    std::fs::write(&password_file, fleet.core().credentials().1)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600))?;
    }
    let reference = PasswordIn::Reference(format!("file:{}", password_file.display()));
    let path = dir.join("lab-inventory.yml");
    std::fs::write(&path, inventory::render(fleet, &reference))?;
    Ok(path)
}

async fn run_playbook(args: &DemoArgs, playbook: &Path, inventory: PathBuf) -> u8 {
    let selection = crate::app::Selection {
        inventories: vec![inventory],
        all_tenants: true,
        ..Default::default()
    };
    let prepared = match crate::app::prepare(playbook, &selection, &Terminal) {
        Ok(p) => p,
        Err(diags) => {
            eprint!("{}", diags.render());
            return exit::INVALID_INPUT;
        }
    };
    let report = crate::report::Options {
        json: args.json,
        no_progress: args.no_progress,
        report_dir: Some(args.report_dir.clone()),
    };
    let run = RunBuilder::new(prepared.input, prepared.extra_vars)
        .forks(args.forks)
        .slow_step(Duration::from_secs(30))
        .execute(Arc::new(crate::launch::standard_connector()), &report)
        .await;
    super::exit_with(run.map_err(Into::into), |summary| summary.exit_code)
}

/// What the lab saw happen, from its state log.
fn lab_summary(fleet: &Fleet) -> String {
    let entries = fleet.log().entries();
    let count =
        |pred: &dyn Fn(&LabEvent) -> bool| entries.iter().filter(|e| pred(&e.event)).count();
    format!(
        "lab state log: {} updates installed, {} installs failed, {} reboots, {} build changes",
        count(&|e| matches!(e, LabEvent::Installed { .. })),
        count(&|e| matches!(e, LabEvent::InstallFailed { .. })),
        count(&|e| matches!(e, LabEvent::RebootScheduled { .. })),
        count(&|e| matches!(e, LabEvent::BuildChanged { .. })),
    )
}
