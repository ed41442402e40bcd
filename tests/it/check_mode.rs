//! `salve run --check` with the remediation playbook against a lab fleet over real WinRM,
//! judged from the lab's own state log: every server is asked what would change (read-only
//! scripts run, the results say what would be installed, mitigated, drained and restarted) and
//! nothing changes: no install, restart, mitigation, maintenance transition or database move,
//! and no script started other than the read-only ones.

use std::collections::BTreeMap;

use salve_lab::log::LabEvent;
use serde_json::Value;

use crate::lab_support::{Lab, salve_run};

const FLEET: &str = "\
seed: 12
time_scale: 600
tenants:
  - name: contoso
    hosts: 3
    builds: [15.2.792.3]
    dags: [{name: contoso-dag1, members: 2, databases: 2}]
  - name: fabrikam
    hosts: 2
    builds: [15.1.2176.2]
hosts:
  contoso-ex03: {pending_reboot: true}
  fabrikam-ex02: {compromised: true}
";

const HOSTS: [&str; 5] = [
    "contoso-ex01",
    "contoso-ex02",
    "contoso-ex03",
    "fabrikam-ex01",
    "fabrikam-ex02",
];

/// The shipped scripts that only read, listed here independently of salve's own list.
const READ_ONLY_SCRIPTS: [&str; 6] = [
    "exchange_facts",
    "boot_id",
    "exchange_verify",
    "exchange_ioc_scan",
    "exchange_health",
    "job_poll",
];

/// Whether a lab event records a change to the server. Exhaustive on purpose: a new kind of
/// lab event must be classified here before this test compiles.
fn changes_state(event: &LabEvent) -> bool {
    match event {
        // `job_control` starts a task: the task's script decides (salve reads Exchange from a
        // task under its become account; the task comes and goes, the server is unchanged).
        LabEvent::ScriptStarted { id } => {
            id != "job_control" && !READ_ONLY_SCRIPTS.contains(&id.as_str())
        }
        LabEvent::JobStarted { script_id, .. }
        | LabEvent::JobFinished { script_id, .. }
        | LabEvent::JobRemoved { script_id, .. } => {
            !READ_ONLY_SCRIPTS.contains(&script_id.as_str())
        }
        LabEvent::Protocol { .. }
        | LabEvent::AnswerBroken { .. }
        | LabEvent::InputDropped { .. }
        | LabEvent::CommandLineTooLong { .. } => false,
        LabEvent::InstallStarted { .. }
        | LabEvent::Installed { .. }
        | LabEvent::InstallFailed { .. }
        | LabEvent::BuildChanged { .. }
        | LabEvent::RebootScheduled { .. }
        | LabEvent::RebootStarted { .. }
        | LabEvent::RebootCompleted { .. }
        | LabEvent::RewriteModuleInstalled { .. }
        | LabEvent::MitigationApplied { .. }
        | LabEvent::MitigationRemoved { .. }
        | LabEvent::MaintenanceEntered { .. }
        | LabEvent::MaintenanceLeft { .. }
        | LabEvent::DatabaseMoved { .. }
        | LabEvent::TransportRestarted
        | LabEvent::ServicesDisabled { .. }
        | LabEvent::ShellMemoryQuotaExceeded { .. }
        | LabEvent::WinRmRestarted { .. } => true,
        LabEvent::AdPrepared { .. } => true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_mode_asks_every_server_and_changes_nothing() {
    let lab = Lab::start(38, FLEET).await;
    let inv = lab.inventory().write();
    // The lab's inventory carries its package sources.
    // The playbook runs from the lab's folder, away from the checkout.
    let playbook = lab.write(
        "proxylogon.yml",
        include_str!("../../playbooks/proxylogon.yml"),
    );
    let before: BTreeMap<&str, _> = HOSTS
        .iter()
        .map(|h| (*h, lab.fleet.state(h).unwrap()))
        .collect();

    let (code, events, all) = salve_run(&playbook, &inv, &["--check"]).await;

    // Nothing changed on any server, by the lab's own account.
    let log = lab.fleet.log().entries();
    let changes: Vec<_> = log.iter().filter(|e| changes_state(&e.event)).collect();
    assert!(
        changes.is_empty(),
        "check mode changed servers: {changes:#?}"
    );
    for host in HOSTS {
        assert_eq!(
            lab.fleet.state(host).unwrap(),
            before[host],
            "{host} changed"
        );
        let facts_read = lab.fleet.log().count(
            host,
            // In a task under the become account, where Exchange can be managed.
            |e| matches!(e, LabEvent::JobStarted { script_id, .. } if script_id == "exchange_facts"),
        );
        assert!(facts_read > 0, "{host}: facts were not read: {all}");
    }

    // Every server was asked, and the answers say what would change.
    let finished = |host: &str, task: &str| -> (String, String, Value) {
        let e = events
            .iter()
            .find(|e| e["event"] == "task_finished" && e["host"] == host && e["task"] == task)
            .unwrap_or_else(|| panic!("{host}: `{task}` did not finish: {all}"));
        (
            e["status"].as_str().unwrap_or_default().to_string(),
            e["msg"].as_str().unwrap_or_default().to_string(),
            e["result"].clone(),
        )
    };
    for host in HOSTS {
        let (status, msg, _) = finished(
            host,
            "Apply the EOMT mitigation while the server is exposed",
        );
        assert_eq!(status, "changed", "{host}: {msg}");
        assert!(msg.contains("add rewrite rules"), "{host}: {msg}");

        let (status, msg, _) = finished(host, "Enter maintenance mode");
        assert_eq!(status, "changed", "{host}: {msg}");
        assert!(msg.starts_with("would enter maintenance"), "{host}: {msg}");

        if host == "contoso-ex03" {
            continue;
        }
        let (status, msg, result) = finished(host, "Install the updates on the path");
        assert_eq!(status, "changed", "{host}: {msg}");
        assert!(msg.starts_with("would install "), "{host}: {msg}");
        let steps = result["steps"].as_array().unwrap();
        assert!(!steps.is_empty(), "{host}: {result}");
        assert!(
            msg.contains(steps[0]["label"].as_str().unwrap()),
            "{host}: the message names the first step: {msg} / {result}"
        );
    }
    // Check mode made no restart, so the update still sees the pending one: it asks for the
    // restart first (the playbook's restart task takes it) rather than failing the host.
    let (status, msg, result) = finished("contoso-ex03", "Install the updates on the path");
    assert_eq!(status, "ok", "{msg}");
    assert!(msg.contains("a restart is pending"), "{msg}");
    assert_eq!(result["reboot_required"], true, "{result}");
    let (status, msg, result) = finished("contoso-ex03", "Restart first, a restart is pending");
    assert_eq!(status, "changed", "{msg}");
    assert!(msg.starts_with("would restart the host"), "{msg}");
    assert!(result["boot_id_before"].is_string(), "{result}");
    let restart_read = lab.fleet.log().count(
        "contoso-ex03",
        |e| matches!(e, LabEvent::ScriptStarted { id } if id == "boot_id"),
    );
    // Every restart task that was checked (the pending one, and one after each update on the
    // path that asked for it) reads the boot id once and does nothing else.
    let restarts_checked = events
        .iter()
        .filter(|e| {
            e["event"] == "task_finished"
                && e["host"] == "contoso-ex03"
                && e["task"].as_str().is_some_and(|t| t.starts_with("Restart"))
                && e["status"] == "changed"
        })
        .count();
    assert!(restarts_checked >= 1, "{all}");
    assert_eq!(
        restart_read, restarts_checked,
        "each restart check reads the boot id once"
    );

    // The compromised server is still found by the (read-only) scan.
    let (status, msg, _) = finished("fabrikam-ex02", "Scan for signs of exploitation");
    assert_eq!(status, "failed", "{msg}");
    assert!(msg.contains("COMPROMISED"), "{msg}");
    assert_eq!(code, 2, "the compromised server fails the check run: {all}");
}
