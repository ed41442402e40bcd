//! A controller killed with SIGKILL in the middle of a remediation, then `salve resume`: the
//! lab's state log shows every update installed exactly once and every host ending fixed.

use std::collections::BTreeMap;
use std::time::Duration;

use salve::exchange::assess::{Facts, assess};
use salve::exchange::catalogue::catalogue;
use salve_lab::log::LabEvent;

use crate::lab_support::{Lab, PASSWORD};

const FLEET: &str = "\
seed: 31
time_scale: 600
tenants:
  - name: t
    hosts: 3
    builds: [15.2.721.2]
";

fn salve(state: &std::path::Path, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_salve"));
    cmd.args(args)
        .env("LAB_PW", PASSWORD)
        .env("SALVE_STATE_DIR", state)
        .kill_on_drop(true);
    cmd
}

/// Start `salve run --json` on `playbook` in the journal at `state`, and kill it (SIGKILL) once
/// the lab's log shows `what` (`seen`), `settle` later.
async fn kill_run_once(
    lab: &Lab,
    state: &std::path::Path,
    playbook: &std::path::Path,
    inv: &std::path::Path,
    what: &str,
    seen: impl Fn(&LabEvent) -> bool,
    settle: Duration,
) {
    let args = [
        "run",
        playbook.to_str().unwrap(),
        "-i",
        inv.to_str().unwrap(),
        "--json",
    ];
    let mut child = salve(state, &args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = tokio::time::Instant::now();
    while !lab.fleet.log().entries().iter().any(|e| seen(&e.event)) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never saw {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(settle).await;
    child.start_kill().unwrap();
    let _ = child.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_resumes_and_installs_everything_exactly_once() {
    let lab = Lab::start(40, FLEET).await;
    let inv = lab.inventory().write();
    let state = inv.parent().unwrap().join("state");
    let playbook =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/proxylogon.yml");
    // Kill it as soon as the first update is being installed somewhere.
    kill_run_once(
        &lab,
        &state,
        &playbook,
        &inv,
        "an install start",
        |e| matches!(e, LabEvent::InstallStarted { .. }),
        Duration::ZERO,
    )
    .await;

    let out = salve(&state, &["runs", "list", "--json"])
        .output()
        .await
        .unwrap();
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run_id = runs[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        runs[0]["status"], "running",
        "a killed run is still marked running: {runs}"
    );

    // The install in flight was recorded durably before it started, without an outcome.
    let out = salve(&state, &["runs", "show", &run_id, "--json"])
        .output()
        .await
        .unwrap();
    let detail: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let open: Vec<&serde_json::Value> = detail["intents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["outcome"].is_null())
        .collect();
    assert!(
        open.iter()
            .any(|i| i["action"] == "Install the updates on the path"),
        "no open intent for the install in flight: {detail}"
    );

    let out = salve(&state, &["resume", &run_id, "--json"])
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{err}{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(err.contains(&format!("resuming run {run_id}")), "{err}");
    assert!(
        err.contains("in flight when run") && err.contains("Install the updates on the path"),
        "{err}"
    );

    let log = lab.fleet.log().entries();
    let mut installs: BTreeMap<(String, String), usize> = BTreeMap::new();
    for e in &log {
        if let LabEvent::Installed { kb, .. } = &e.event {
            *installs.entry((e.host.clone(), kb.clone())).or_default() += 1;
        }
    }
    // 2019 CU7 → CU15 → its Aug26SU: two installs per host, each once.
    assert_eq!(installs.len(), 6, "{installs:?}");
    assert!(
        installs.values().all(|&n| n == 1),
        "an update was installed twice: {installs:?}"
    );
    // No Setup was interrupted, and each host ran one update task per install: the resumed
    // run re-attached to the task the killed controller had started.
    assert!(
        !log.iter()
            .any(|e| matches!(e.event, LabEvent::InstallFailed { .. })),
        "an install failed or was interrupted"
    );
    let mut tasks: BTreeMap<String, usize> = BTreeMap::new();
    for e in &log {
        if let LabEvent::JobStarted { script_id, .. } = &e.event
            && script_id == "exchange_update"
        {
            *tasks.entry(e.host.clone()).or_default() += 1;
        }
    }
    assert!(
        tasks.len() == 3 && tasks.values().all(|&n| n == 2),
        "update tasks per host (two installs each): {tasks:?}"
    );
    let cat = catalogue().unwrap();
    for host in ["t-ex01", "t-ex02", "t-ex03"] {
        let s = lab.fleet.state(host).unwrap();
        let build: salve::exchange::build::Build = s.build.unwrap().to_string().parse().unwrap();
        assert!(
            assess(cat, build, &Facts::default()).open_cves.is_empty(),
            "{host} ends on {build}"
        );
        assert!(
            s.rewrite_rules.is_empty() && s.pending_reboot.is_empty(),
            "{host} not in its planned state"
        );
    }
}

const HELD: &str = "\
- hosts: all
  tasks:
    - name: Enter maintenance mode
      exchange_maintenance: {state: enter}
    - name: Hold
      pause: {seconds: 10}
    - name: Leave maintenance mode
      exchange_maintenance: {state: leave}
";

/// The controller dies while a server is in maintenance, and by the time of `salve resume` the
/// server's own record of entering (C:\salve\maintenance.json) is gone. The resumed run's
/// enter sees a server "already in maintenance before salve"; the journal's record of the
/// stopped run's entry is what leave restores, so the server comes out of maintenance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_restores_maintenance_from_the_journal_when_the_host_lost_its_record() {
    let lab = Lab::start(
        189,
        "seed: 3\ntime_scale: 600\ntenants:\n  - name: t\n    hosts: 1\n    builds: [15.2.792.3]\n",
    )
    .await;
    let inv = lab.inventory().write();
    let state = inv.parent().unwrap().join("state");
    let playbook = lab.write("held.yml", HELD);
    // Kill the controller during the pause, once the entry has reached the journal.
    kill_run_once(
        &lab,
        &state,
        &playbook,
        &inv,
        "maintenance entered",
        |e| matches!(e, LabEvent::MaintenanceEntered { .. }),
        Duration::from_secs(2),
    )
    .await;
    let idx = lab.fleet.core().index("t-ex01").unwrap();
    assert!(
        !lab.fleet
            .state("t-ex01")
            .unwrap()
            .inactive_components()
            .is_empty()
    );
    // Someone cleaned up C:\salve meanwhile.
    lab.fleet.core().with_host(idx, |s| s.ha.record = None);

    let out = salve(&state, &["runs", "list", "--json"])
        .output()
        .await
        .unwrap();
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run_id = runs[0]["id"].as_str().unwrap().to_string();
    let out = salve(&state, &["resume", &run_id, "--json"])
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{err}{stdout}");
    let after = lab.fleet.state("t-ex01").unwrap();
    assert!(
        after.inactive_components().is_empty(),
        "still in maintenance: {:?}\n{stdout}",
        after.inactive_components()
    );
    assert!(
        err.contains("t-ex01 was left in maintenance by run") && err.contains("carried over"),
        "{err}"
    );
    assert!(
        stdout.contains("the server's own record of entering is gone"),
        "{stdout}"
    );
}
