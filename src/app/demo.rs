//! `salve demo`: the whole job on a simulated fleet, in one command. Starts a lab fleet in this
//! process (several tenants, a DAG, vulnerable and patched builds, a compromised host, a host
//! whose install fails, an unreachable one), serves it over real WinRM on loopback, and runs a
//! playbook against it exactly as `salve run` would against production, then says what the
//! lab recorded. Exists with the `lab` feature only.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use salve_lab::fleet::Fleet;
use salve_lab::host_api::SimHost;
use salve_lab::inventory::{self, PasswordIn};
use salve_lab::log::LabEvent;
use salve_lab::{frontends, scenario};
use tokio_util::sync::CancellationToken;

use super::{AppError, Console, Selection};
use crate::launch::RunBuilder;

/// Loopback block of the demo fleet (127.200.x.y), away from `salve lab serve`'s 127.0.x.y.
const DEMO_BLOCK: u8 = 200;

/// What `salve demo` was asked to do.
#[derive(Debug, Clone)]
pub struct DemoRequest {
    /// The playbook; by default `playbooks/remediate.yml` (or `hello.yml` without it).
    pub playbook: Option<PathBuf>,
    /// Servers in the default fleet mix.
    pub hosts: usize,
    /// A lab scenario file instead of the default mix.
    pub scenario: Option<PathBuf>,
    /// Simulated seconds per real second.
    pub time_scale: f64,
    pub forks: usize,
    pub report: crate::report::Options,
}

/// How the demo ended.
#[derive(Debug)]
pub struct DemoEnd {
    /// The run's exit code.
    pub code: u8,
    /// What the lab's state log recorded, and where the fleet stands on the known-exploited CVE
    /// of the day, one line each.
    pub lab_summary: String,
    /// Where the run's HTML pages are (with a report directory).
    pub pages: Option<crate::run_report::Written>,
}

/// Start the fleet, run the playbook against it, and say what the lab saw.
pub fn demo(request: DemoRequest, console: &dyn Console) -> Result<DemoEnd, AppError> {
    let mut spec = match &request.scenario {
        Some(path) => scenario::load(path),
        None => scenario::default_scenario(request.hosts, 2026),
    }?;
    spec.time_scale = request.time_scale;
    let playbook = request.playbook.clone().unwrap_or_else(default_playbook);
    let runtime = super::runtime()?;
    runtime.block_on(async move {
        let fleet = Arc::new(Fleet::new_in_block(&spec, DEMO_BLOCK));
        let cancel = CancellationToken::new();
        frontends::start(&fleet, None, &cancel)
            .await
            .map_err(|e| AppError::internal("cannot start the lab's WinRM listeners", e))?;
        let work = tempfile::tempdir()
            .map_err(|e| AppError::internal("cannot create a work folder", e))?;
        let inventory = write_inventory(&fleet, work.path())
            .map_err(|e| AppError::internal("cannot write the lab inventory", e))?;
        console.notice(&format!(
            "lab: {} simulated Exchange servers in {} tenants on 127.{DEMO_BLOCK}.x.y, WinRM with \
             NTLM and message encryption; time runs {}x faster\n",
            fleet.hosts().len(),
            fleet.tenants().len(),
            request.time_scale
        ));
        let code = run_playbook(&request, &playbook, inventory, console).await;
        cancel.cancel();
        let pages = request
            .report
            .report_dir
            .as_deref()
            .map(|dir| crate::run_report::layout(dir, fleet.tenants()))
            .filter(|pages| pages.page.exists());
        Ok(DemoEnd {
            code: code?,
            lab_summary: format!("{}\n{}", lab_summary(&fleet), kev_posture(&fleet)),
            pages,
        })
    })
}

fn default_playbook() -> PathBuf {
    let remediation = PathBuf::from("playbooks/remediate.yml");
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

async fn run_playbook(
    request: &DemoRequest,
    playbook: &Path,
    inventory: PathBuf,
    console: &dyn Console,
) -> Result<u8, AppError> {
    let selection = Selection {
        inventories: vec![inventory],
        all_tenants: true,
        ..Selection::default()
    };
    let prepared = super::prepare(playbook, &selection, console)?;
    let summary = RunBuilder::new(prepared.input, prepared.extra_vars)
        .forks(request.forks)
        .slow_step(Duration::from_secs(30))
        .execute(
            Arc::new(crate::launch::standard_connector()),
            &request.report,
        )
        .await?;
    Ok(summary.exit_code)
}

/// What the lab saw happen, from its state log: counts, then how long each server was in
/// maintenance (simulated time, from entering to leaving).
fn lab_summary(fleet: &Fleet) -> String {
    let entries = fleet.log().entries();
    let count =
        |pred: &dyn Fn(&LabEvent) -> bool| entries.iter().filter(|e| pred(&e.event)).count();
    let mut out = format!(
        "lab state log: {} updates installed, {} installs failed, {} reboots, {} build changes",
        count(&|e| matches!(e, LabEvent::Installed { .. })),
        count(&|e| matches!(e, LabEvent::InstallFailed { .. })),
        count(&|e| matches!(e, LabEvent::RebootScheduled { .. })),
        count(&|e| matches!(e, LabEvent::BuildChanged { .. })),
    );
    let stays = maintenance_stays(&entries);
    if !stays.is_empty() {
        out.push_str("\ntime in maintenance (simulated): ");
        out.push_str(&stays.join(", "));
    }
    out
}

/// `host 1h 12m` per stay in maintenance, in the order servers entered (`still in` when the
/// run ended first).
fn maintenance_stays(entries: &[salve_lab::log::LogEntry]) -> Vec<String> {
    let mut open: Vec<(String, jiff::Timestamp)> = Vec::new();
    let mut stays: Vec<(String, Option<jiff::SignedDuration>)> = Vec::new();
    for e in entries {
        match &e.event {
            LabEvent::MaintenanceEntered { .. } => {
                open.push((e.host.clone(), e.sim_time));
                stays.push((e.host.clone(), None));
            }
            LabEvent::MaintenanceLeft { .. } => {
                if let Some(i) = open.iter().position(|(h, _)| *h == e.host) {
                    let (_, from) = open.remove(i);
                    if let Some(stay) = stays.iter_mut().rev().find(|(h, _)| *h == e.host) {
                        stay.1 = Some(e.sim_time.duration_since(from));
                    }
                }
            }
            _ => {}
        }
    }
    stays
        .into_iter()
        .map(|(host, d)| match d {
            Some(d) => {
                let minutes = d.as_secs().max(0) / 60;
                format!("{host} {}h {:02}m", minutes / 60, minutes % 60)
            }
            None => format!("{host} still in"),
        })
        .collect()
}

/// The CVE on CISA's known-exploited list the 2026 fleet is remediated for.
const KEV_CVE: &str = "CVE-2026-42897";

/// Where the fleet stands on [`KEV_CVE`] after the run, from the lab's state (the simulated
/// servers' builds and IIS rules, not what salve reported): fixed by build, mitigated by the
/// OWA outbound rule (written by salve or by the Emergency Mitigation service), or exposed.
fn kev_posture(fleet: &Fleet) -> String {
    let Ok(cat) = crate::exchange::catalogue::catalogue() else {
        return format!("{KEV_CVE}: not judged (the build catalogue is broken)");
    };
    let Ok(cve) = KEV_CVE.parse() else {
        return format!("{KEV_CVE}: not judged");
    };
    let (mut fixed, mut mitigated, mut exposed, mut unaffected) = (0, Vec::new(), Vec::new(), 0);
    for host in fleet.hosts() {
        let Some(state) = fleet.state(host.name()) else {
            continue;
        };
        let build = state.build.and_then(|b| b.to_string().parse().ok());
        let Some(build) = build else {
            unaffected += 1;
            continue;
        };
        let a = crate::exchange::assess::assess(cat, build, &Default::default());
        let affected = a.family.is_some_and(|f| {
            cat.family(f)
                .is_some_and(|entry| entry.affected().contains(&cve))
        });
        if a.open_by_build.contains(&cve) {
            let rule = state
                .config
                .outbound_rules
                .iter()
                .any(|r| r == salve_lab::exchange_config::OWA_CSP_RULE);
            if rule {
                mitigated.push(host.name().to_owned());
            } else {
                exposed.push(host.name().to_owned());
            }
        } else if affected {
            fixed += 1;
        } else {
            unaffected += 1;
        }
    }
    let list = |names: &[String]| {
        if names.is_empty() {
            String::new()
        } else {
            format!(" ({})", names.join(", "))
        }
    };
    format!(
        "{KEV_CVE} (CISA known-exploited): {fixed} fixed by build, {} mitigated by the OWA \
         rule{}, {} exposed{}, {unaffected} not in Microsoft's affected list",
        mitigated.len(),
        list(&mitigated),
        exposed.len(),
        list(&exposed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use salve_lab::log::LogEntry;

    fn entry(host: &str, minute: i64, event: LabEvent) -> LogEntry {
        let t0 = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let at = t0
            .saturating_add(jiff::SignedDuration::from_mins(minute))
            .unwrap();
        LogEntry {
            seq: 0,
            host: host.into(),
            sim_time: at,
            real_time: at,
            event,
        }
    }

    #[test]
    fn each_stay_in_maintenance_is_timed_in_the_order_servers_entered() {
        let entered = || LabEvent::MaintenanceEntered {
            previous_policy: "Unrestricted".into(),
        };
        let left = || LabEvent::MaintenanceLeft {
            restored_policy: "Unrestricted".into(),
        };
        let log = [
            entry("ex01", 0, entered()),
            entry("ex01", 95, left()),
            entry("ex02", 100, entered()),
            entry("ex02", 142, left()),
            entry("ex03", 150, entered()),
        ];
        assert_eq!(
            maintenance_stays(&log),
            ["ex01 1h 35m", "ex02 0h 42m", "ex03 still in"]
        );
    }
}
