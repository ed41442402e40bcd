//! Update paths of any length and the order of evidence and change, end to end over real WinRM
//! against the lab, judged from the lab's own log: a 2016 CU8-era server walks its whole path
//! (.NET, CUs, the restarts between, its line's newest SU) in one run of the shipped
//! playbook, and the IOC scan runs before the first change to any server.

use salve_contract::contract::UpdateKind;
use salve_lab::log::LabEvent;

use crate::lab_support::{Lab, salve_run};

fn playbook(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("playbooks")
        .join(name)
}

/// A 2016 CU8 server on .NET 4.6.2 (Release 394802): its path is .NET 4.7.1 → CU12 →
/// .NET 4.7.2 → CU14 → .NET 4.8 → CU23 → CU23's newest SU, seven steps.
const CU8_ERA: &str = "\
seed: 3
time_scale: 600
tenants:
  - name: contoso
    hosts: 1
    builds: [15.1.1415.2]
hosts:
  contoso-ex01: {dotnet_release: 394802}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2016_cu8_server_walks_seven_steps_to_its_newest_su_in_one_run() {
    let lab = Lab::start(120, CU8_ERA).await;
    let inv = lab.inventory().write();
    let (code, events, all) = salve_run(&playbook("remediate.yml"), &inv, &[]).await;
    assert_eq!(code, 0, "{all}");

    let state = lab.fleet.state("contoso-ex01").unwrap();
    assert_eq!(
        state.build.unwrap().to_string(),
        "15.1.2507.72",
        "ends on 2016 CU23's newest SU: {all}"
    );
    assert!(state.pending_reboot.is_empty(), "no restart left pending");
    assert_eq!(state.dotnet_release, 528040, ".NET 4.8 in place");

    let installed: Vec<(UpdateKind, String)> = lab
        .fleet
        .log()
        .entries()
        .into_iter()
        .filter_map(|e| match e.event {
            LabEvent::Installed { update, kb, .. } => Some((update, kb)),
            _ => None,
        })
        .collect();
    let kbs: Vec<&str> = installed.iter().map(|(_, kb)| kb.as_str()).collect();
    assert_eq!(
        kbs,
        [
            "NDP471",
            "KB4471392",
            "NDP472",
            "KB4514140",
            "NDP48",
            "KB5011155",
            "KB5121576"
        ],
        "each step once, in the path's order"
    );
    assert_eq!(
        installed
            .iter()
            .filter(|(k, _)| *k == UpdateKind::DotNet)
            .count(),
        3
    );

    // One task walked it, and said so step by step.
    let finished: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "task_finished" && e["task"] == "Install the updates on the path")
        .collect();
    assert_eq!(finished.len(), 1, "{all}");
    let result = &finished[0]["result"];
    assert_eq!(result["installed"], 7, "{result}");
    assert!(result["restarts"].as_u64().unwrap() >= 7, "{result}");
    let lines: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "task_output" && e["task"] == "Install the updates on the path")
        .filter_map(|e| e["text"].as_str())
        .filter(|t| t.starts_with("step "))
        .collect();
    assert!(lines.len() >= 7, "{lines:?}");
}

/// An exposed 2019 CU8 server: the playbook mitigates, drains and patches it.
const EXPOSED: &str = "\
seed: 5
time_scale: 600
tenants:
  - name: contoso
    hosts: 1
    builds: [15.2.792.3]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ioc_scan_runs_before_the_first_change_and_again_at_the_end() {
    let lab = Lab::start(121, EXPOSED).await;
    let inv = lab.inventory().write();
    let (code, _, all) = salve_run(&playbook("proxylogon.yml"), &inv, &[]).await;
    assert_eq!(code, 0, "{all}");
    let log = lab.fleet.log().entries();
    let is_scan =
        |e: &LabEvent| matches!(e, LabEvent::ScriptStarted { id } if id == "exchange_ioc_scan");
    let is_change = |e: &LabEvent| {
        matches!(
            e,
            LabEvent::RewriteModuleInstalled { .. }
                | LabEvent::MitigationApplied { .. }
                | LabEvent::MaintenanceEntered { .. }
                | LabEvent::InstallStarted { .. }
                | LabEvent::RebootScheduled { .. }
        )
    };
    let first_scan = log.iter().position(|e| is_scan(&e.event));
    let first_change = log.iter().position(|e| is_change(&e.event));
    let (Some(scan), Some(change)) = (first_scan, first_change) else {
        panic!("a scan and a change must both happen: {all}");
    };
    assert!(
        scan < change,
        "the first scan ({scan}) comes before the first change ({change}): {:?}",
        log.iter()
            .map(|e| &e.event)
            .take(change + 1)
            .collect::<Vec<_>>()
    );
    let last_change = log.iter().rposition(|e| is_change(&e.event)).unwrap();
    assert!(
        log[last_change..].iter().any(|e| is_scan(&e.event)),
        "and again after the last change"
    );
}

/// A 2019 CU14 server on which msiexec is still applying an SU from salve's own package
/// folder (an earlier run's, its scheduled task gone) for 20 simulated minutes.
const SU_RUNNING: &str = r#"
seed: 7
time_scale: 600
tenants:
  - name: contoso
    hosts: 1
    builds: [15.2.1544.4]
hosts:
  contoso-ex01:
    running_installer:
      command_line: '"C:\Windows\system32\msiexec.exe" /update "C:\salve\updates\KB5121575.msp" /qn /norestart'
      minutes: 20
"#;

const WALK_ONLY: &str = "\
- name: Update
  hosts: all
  tasks:
    - name: Install the updates on the path
      exchange_update:
        target: path
        walk: true
        poll_interval: 1
        sources: \"{{ salve_update_sources }}\"
        license_switch: \"{{ salve_license_switch }}\"
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_su_is_not_started_while_one_runs() {
    let lab = Lab::start(122, SU_RUNNING).await;
    let inv = lab.inventory().write();
    let pb = lab.write("walk.yml", WALK_ONLY);
    let (code, events, all) = salve_run(&pb, &inv, &[]).await;
    assert_eq!(code, 0, "{all}");
    let busy_until = lab
        .fleet
        .state("contoso-ex01")
        .unwrap()
        .installer_busy_until
        .unwrap();
    let started: Vec<_> = lab
        .fleet
        .log()
        .entries()
        .into_iter()
        .filter(|e| matches!(&e.event, LabEvent::JobStarted { script_id, .. } if script_id == "exchange_update"))
        .map(|e| e.sim_time)
        .collect();
    assert_eq!(started.len(), 1, "{all}");
    assert!(
        started[0] >= busy_until,
        "salve started an update at {} while msiexec ran until {busy_until}",
        started[0]
    );
    assert!(
        events.iter().any(|e| e["event"] == "task_output"
            && e["text"].as_str().is_some_and(
                |t| t.contains("an installer is still running") && t.contains("KB5121575.msp")
            )),
        "salve said what it waited for: {all}"
    );
}

/// The lab reports a running installer by the shipped facts script's own patterns.
#[test]
fn the_lab_knows_an_installer_by_the_facts_scripts_patterns() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/exchange_facts.ps1"),
    )
    .unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("if ($line -match "))
        .expect("the installer test in exchange_facts.ps1");
    let shipped: Vec<&str> = line
        .split("-match '")
        .skip(1)
        .map(|rest| rest.split('\'').next().unwrap_or_default())
        .collect();
    assert_eq!(shipped, salve_lab::scripts::INSTALLER_PATTERNS);
}

/// The hosts on which Setup /PrepareAD started, in the lab log's order.
fn preparations(log: &[salve_lab::log::LogEntry]) -> Vec<&str> {
    log.iter()
        .filter(|e| {
            matches!(
                e.event,
                LabEvent::InstallStarted {
                    update: UpdateKind::PrepareAd,
                    ..
                }
            )
        })
        .map(|e| e.host.as_str())
        .collect()
}

/// Three 2019 CU8 servers in one forest that was last prepared by 2019 CU8 (schema 17002,
/// organisation 16756): CU15 needs 17003 / 16763.
const FOREST_BEHIND: &str = "\
seed: 9
time_scale: 600
tenants:
  - name: contoso
    hosts: 3
    builds: [15.2.792.3]
    forest: {schema: 17002, org: 16756}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ad_preparation_runs_once_for_a_forest_of_several_servers() {
    let lab = Lab::start(123, FOREST_BEHIND).await;
    let inv = lab.inventory().write();
    let pb = lab.write("walk.yml", WALK_ONLY);

    // Planned as its own step, before the CU, on every server (none has run it yet).
    let (_, events, all) = salve_run(&pb, &inv, &["--check"]).await;
    for host in ["contoso-ex01", "contoso-ex02", "contoso-ex03"] {
        let done = events
            .iter()
            .find(|e| e["event"] == "task_finished" && e["host"] == host)
            .unwrap_or_else(|| panic!("{host}: {all}"));
        let steps = done["result"]["steps"].as_array().unwrap();
        assert_eq!(steps[0]["kind"], "PrepareAD", "{host}: {done}");
        assert_eq!(steps[1]["kind"], "CU", "{host}: {done}");
    }

    // The servers update side by side; the forest is prepared once, before the first CU.
    let (code, _, all) = salve_run(&pb, &inv, &[]).await;
    assert_eq!(code, 0, "{all}");
    let log = lab.fleet.log().entries();
    let runs = preparations(&log).len();
    assert_eq!(runs, 1, "Setup /PrepareAD ran once: {all}");
    let prepared: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e.event, LabEvent::AdPrepared { .. }))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(prepared.len(), 1, "{all}");
    let first_cu = log
        .iter()
        .position(|e| {
            matches!(
                e.event,
                LabEvent::InstallStarted {
                    update: UpdateKind::Cu,
                    ..
                }
            )
        })
        .unwrap();
    assert!(prepared[0] < first_cu);
    for host in ["contoso-ex01", "contoso-ex02", "contoso-ex03"] {
        let state = lab.fleet.state(host).unwrap();
        assert_eq!(state.build.unwrap().to_string(), "15.2.1748.49", "{host}");
        assert_eq!((state.forest.schema, state.forest.org), (17003, 16763));
    }
}

/// A 2019 CU8 server (CU15, then its newest SU) whose first restart leaves a pending-restart
/// flag behind.
const LINGERING: &str = "\
seed: 13
time_scale: 600
tenants:
  - name: contoso
    hosts: 1
    builds: [15.2.792.3]
hosts:
  contoso-ex01: {lingering_reboot_flag: true}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lingering_restart_flag_is_restarted_away_and_the_walk_goes_on() {
    let lab = Lab::start(124, LINGERING).await;
    let inv = lab.inventory().write();
    let pb = lab.write("walk.yml", WALK_ONLY);
    let (code, events, all) = salve_run(&pb, &inv, &[]).await;
    assert_eq!(code, 0, "{all}");
    let state = lab.fleet.state("contoso-ex01").unwrap();
    assert_eq!(state.build.unwrap().to_string(), "15.2.1748.49", "{all}");
    assert!(state.pending_reboot.is_empty());
    let result = &events
        .iter()
        .find(|e| e["event"] == "task_finished")
        .unwrap()["result"];
    assert_eq!(result["installed"], 2, "{result}");
    assert_eq!(result["restarts"], 3, "one more for the flag: {result}");
}

/// A 2019 CU8 server whose CU15 Setup logs an `[ERROR]` it recovers from and completes.
const SETUP_RECOVERS: &str = "\
seed: 15
time_scale: 600
tenants:
  - name: contoso
    hosts: 1
    builds: [15.2.792.3]
hosts:
  contoso-ex01: {faults: {setup_error_line: true}}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_is_judged_by_its_last_runs_success_line_not_by_any_error_line() {
    let lab = Lab::start(125, SETUP_RECOVERS).await;
    let inv = lab.inventory().write();
    let pb = lab.write("walk.yml", WALK_ONLY);
    let (code, _, all) = salve_run(&pb, &inv, &[]).await;
    assert_eq!(code, 0, "{all}");
    let state = lab.fleet.state("contoso-ex01").unwrap();
    assert_eq!(state.build.unwrap().to_string(), "15.2.1748.49", "{all}");
    assert!(state.setup_log.iter().any(|l| l.contains("[ERROR]")));
}

/// The lab judges Setup's log by the shipped update script's own patterns.
#[test]
fn the_lab_judges_setup_logs_by_the_update_scripts_patterns() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/exchange_update.ps1"),
    )
    .unwrap();
    for pattern in salve_lab::scripts::SETUP_LOG_PATTERNS {
        assert!(
            text.contains(&format!("'{pattern}'")) || text.contains(&format!("\"{pattern}\"")),
            "{pattern}"
        );
    }
}

/// Two 2019 CU8 servers of one forest behind CU15's AD versions, whose preparation takes one
/// simulated hour (six seconds at this time scale): long enough that two runners reach it at
/// once.
const FOREST_OF_TWO: &str = "\
seed: 19
time_scale: 600
durations: {su_minutes: 60}
tenants:
  - name: contoso
    hosts: 2
    builds: [15.2.792.3]
    forest: {schema: 17002, org: 16756}
";

/// Two `salve runner` processes each claim one server of the forest at the same moment: the
/// queue database's lock lets one prepare AD while the other waits, re-reads its facts and
/// finds the forest prepared. (Before the lock lived in the database, each process had its
/// own, and both ran Setup /PrepareAD.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ad_preparation_runs_once_for_a_forest_across_queue_runners() {
    use crate::queue_support::{Pg, controller, exited, finish, runner, wait_for_items};
    let Some(pg) = Pg::start() else { return };
    let admin = pg.admin().await;
    let lab = Lab::start(187, FOREST_OF_TWO).await;
    let inventory = lab.inventory().clear_text().write();
    let playbook = lab.write("walk.yml", WALK_ONLY);
    let mut control = controller(&pg, &playbook, &inventory);
    wait_for_items(&admin, 2, &mut control).await;
    let logs = [lab.write("r1.log", ""), lab.write("r2.log", "")];
    let runners = [
        runner(&pg, "r1", "contoso", 1, &inventory, &logs[0]),
        runner(&pg, "r2", "contoso", 1, &inventory, &logs[1]),
    ];
    for (child, log) in runners.into_iter().zip(&logs) {
        let (code, stderr) = exited(child, log).await;
        assert_eq!(code, 0, "{stderr}");
    }
    let (code, _, all) = finish(control).await;
    assert_eq!(code, 0, "{all}");

    let log = lab.fleet.log().entries();
    let preparing = preparations(&log);
    assert_eq!(
        preparing.len(),
        1,
        "Setup /PrepareAD ran once: {preparing:?}\n{all}"
    );
    for host in lab.host_names() {
        let state = lab.fleet.state(&host).unwrap();
        assert_eq!(
            state.build.unwrap().to_string(),
            "15.2.1748.49",
            "{host}: {all}"
        );
        assert_eq!((state.forest.schema, state.forest.org), (17003, 16763));
    }
}
