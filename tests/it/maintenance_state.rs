//! State-aware maintenance and the health gate, end to end over real WinRM against the lab,
//! judged from the lab's own state and log: a rescue on a server that never entered
//! maintenance leaves it as the administrator set it; an IntrasiteOnly policy and a copy's
//! activation suspension survive a patch; a standalone server with a mounted database is patched
//! with its outage planned; a member whose copies still catch up holds the next member back
//! (and, never caught up, stays in maintenance and stops its DAG after the gate's bound) while
//! leaving never restarts transport twice.

use salve_lab::log::LabEvent;
use serde_json::Value;

use crate::lab_support::{Lab, salve_run};

fn playbook() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/proxylogon.yml")
}

fn finished<'e>(events: &'e [Value], host: &str, task: &str) -> Option<&'e Value> {
    events
        .iter()
        .find(|e| e["event"] == "task_finished" && e["host"] == host && e["task"] == task)
}

fn transport_restarts(lab: &Lab, host: &str) -> usize {
    lab.fleet
        .log()
        .count(host, |e| matches!(e, LabEvent::TransportRestarted))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescue_on_a_server_that_never_entered_leaves_its_blocked_policy_untouched() {
    let lab = Lab::start(
        100,
        "seed: 5\ntime_scale: 600\ntenants:\n  - name: t\n    hosts: 2\n    builds: [15.2.792.3]\n    \
         dags: [{name: t-dag1, members: 2, databases: 2}]\nhosts:\n  t-ex01:\n    ha: {activation_policy: Blocked}\n",
    )
    .await;
    let inv = lab.inventory().write();
    let play = lab.write(
        "rescue.yml",
        "- hosts: t-ex01\n  tasks:\n    - name: Fail before maintenance\n      fail: {msg: stop here}\n  \
         rescue:\n    - name: Bring a failed server out of maintenance mode\n      \
         exchange_maintenance: {state: leave, health: \"{{ salve_health_gate | default({}) }}\"}\n",
    );
    let (_, events, all) = salve_run(&play, &inv, &[]).await;
    let rescue = finished(
        &events,
        "t-ex01",
        "Bring a failed server out of maintenance mode",
    )
    .unwrap_or_else(|| panic!("no rescue: {all}"));
    assert_eq!(rescue["status"], "ok", "{rescue}");
    let state = lab.fleet.state("t-ex01").unwrap();
    assert_eq!(state.activation_policy, "Blocked", "{all}");
    assert_eq!(state.cluster_node.as_deref(), Some("Up"));
    assert_eq!(transport_restarts(&lab, "t-ex01"), 0);
}

const DAG: &str = "\
seed: 7
time_scale: 600
tenants:
  - name: c
    hosts: 3
    builds: [15.2.792.3]
    dags: [{name: c-dag1, members: 3, databases: 3}]
hosts:
  c-ex02:
    ha: {activation_policy: IntrasiteOnly, activation_suspended: [C-DAG1-DB03]}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intrasite_only_policy_and_per_copy_suspension_survive_a_patch() {
    let lab = Lab::start(101, DAG).await;
    let inv = lab.inventory().write();
    let (code, _, all) = salve_run(&playbook(), &inv, &[]).await;
    assert_eq!(code, 0, "{all}");
    let state = lab.fleet.state("c-ex02").unwrap();
    assert_eq!(state.activation_policy, "IntrasiteOnly");
    let suspended: Vec<&str> = state
        .copies
        .iter()
        .filter(|c| c.activation_suspended)
        .map(|c| c.database.as_str())
        .collect();
    assert_eq!(suspended, ["C-DAG1-DB03"]);
    for host in ["c-ex01", "c-ex02", "c-ex03"] {
        let s = lab.fleet.state(host).unwrap();
        assert!(s.ha.record.is_none(), "{host} kept its maintenance record");
        assert_eq!(transport_restarts(&lab, host), 2, "{host}: enter and leave");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_server_with_a_mounted_database_is_patched_with_its_planned_outage() {
    let lab = Lab::start(
        102,
        "seed: 3\ntime_scale: 600\ntenants:\n  - name: s\n    hosts: 2\n    builds: [15.1.2176.2]\n\
         hosts:\n  s-ex01:\n    ha: {databases: [S-EX01-DB01]}\n",
    )
    .await;
    let inv = lab.inventory().write();
    let (code, events, all) = salve_run(&playbook(), &inv, &["--check"]).await;
    assert_eq!(code, 0, "{all}");
    let enter = finished(&events, "s-ex01", "Enter maintenance mode").unwrap();
    let msg = enter["msg"].as_str().unwrap();
    assert!(
        msg.contains(
            "planned outage: S-EX01-DB01 not replicated, offline while this server is updated"
        ),
        "{msg}"
    );
    let (code, events, all) = salve_run(&playbook(), &inv, &[]).await;
    assert_eq!(code, 0, "{all}");
    let enter = finished(&events, "s-ex01", "Enter maintenance mode").unwrap();
    assert_eq!(enter["status"], "changed", "{enter}");
    assert!(enter["msg"].as_str().unwrap().contains("planned outage"));
    let state = lab.fleet.state("s-ex01").unwrap();
    assert!(state.copies[0].active, "the database stays mounted");
    assert!(state.inactive_components().is_empty());
    assert_eq!(
        lab.fleet
            .log()
            .count("s-ex01", |e| matches!(e, LabEvent::Installed { .. })),
        lab.fleet
            .log()
            .count("s-ex02", |e| matches!(e, LabEvent::Installed { .. })),
        "patched like its neighbour without databases"
    );
}

/// Each member's passive copies come back 412 logs behind after its restart.
fn catching_up(per_minute: u64) -> String {
    format!(
        "seed: 7\ntime_scale: 600\ntenants:\n  - name: c\n    hosts: 3\n    builds: [15.2.792.3]\n    \
         dags: [{{name: c-dag1, members: 3, databases: 3}}]\nhosts:\n  \
         c-ex01: {{ha: {{resync: {{logs: 412, per_minute: {per_minute}}}}}}}\n  \
         c-ex02: {{ha: {{resync: {{logs: 412, per_minute: {per_minute}}}}}}}\n  \
         c-ex03: {{ha: {{resync: {{logs: 412, per_minute: {per_minute}}}}}}}\n"
    )
}

/// (host, entered, left) sim times of each member's stay in maintenance, in log order.
fn stays(lab: &Lab) -> Vec<(String, jiff::Timestamp, Option<jiff::Timestamp>)> {
    let mut out: Vec<(String, jiff::Timestamp, Option<jiff::Timestamp>)> = Vec::new();
    for e in lab.fleet.log().entries() {
        match &e.event {
            LabEvent::MaintenanceEntered { .. } => out.push((e.host.clone(), e.sim_time, None)),
            LabEvent::MaintenanceLeft { .. } => {
                if let Some(s) = out.iter_mut().rev().find(|s| s.0 == e.host) {
                    s.2 = Some(e.sim_time);
                }
            }
            _ => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_still_catching_up_holds_the_next_back_until_healthy() {
    // 412 logs at 10 a minute: about 41 simulated minutes (four seconds of real time).
    let lab = Lab::start(103, &catching_up(10)).await;
    let inv = lab.inventory().write();
    let (code, events, all) = salve_run(&playbook(), &inv, &[]).await;
    assert_eq!(code, 0, "{all}");
    let waited = events.iter().any(|e| {
        e["event"] == "task_output"
            && e["text"]
                .as_str()
                .is_some_and(|t| t.contains("health gate: waiting for") && t.contains("copy queue"))
    });
    assert!(waited, "the gate reported its wait: {all}");
    let leave = finished(&events, "c-ex01", "Leave maintenance mode").unwrap();
    assert!(
        leave["msg"]
            .as_str()
            .unwrap()
            .starts_with("copies caught up after"),
        "{leave}"
    );
    let stays = stays(&lab);
    assert_eq!(stays.len(), 3, "{stays:?}");
    // The next member entered only once the previous one's copies were within the gate's
    // 10 logs: (412 - 10) / 10 a minute = 40 simulated minutes after it came back.
    let log = lab.fleet.log().entries();
    for pair in stays.windows(2) {
        assert!(pair[0].2.is_some(), "{} left maintenance", pair[0].0);
        let back = log
            .iter()
            .filter(|e| {
                e.host == pair[0].0
                    && e.sim_time < pair[1].1
                    && matches!(e.event, LabEvent::RebootCompleted { .. })
            })
            .map(|e| e.sim_time)
            .next_back()
            .expect("the member restarted");
        let gap = pair[1].1.duration_since(back);
        assert!(
            gap >= jiff::SignedDuration::from_mins(40),
            "{} entered {gap:?} after {} came back, before its copies caught up",
            pair[1].0,
            pair[0].0
        );
    }
    for host in ["c-ex01", "c-ex02", "c-ex03"] {
        assert_eq!(transport_restarts(&lab, host), 2, "{host}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_never_catches_up_stops_its_dag_after_the_bound() {
    let lab = Lab::start(104, &catching_up(0)).await;
    let inv = lab
        .inventory()
        .host_var(
            "c-ex01",
            "salve_health_gate",
            "{poll_seconds: 1, timeout_seconds: 3}",
        )
        .write();
    let (code, events, all) = salve_run(&playbook(), &inv, &[]).await;
    assert_ne!(code, 0, "{all}");
    let leave = finished(&events, "c-ex01", "Leave maintenance mode").unwrap();
    assert_eq!(leave["status"], "failed", "{leave}");
    let msg = leave["msg"].as_str().unwrap();
    assert!(
        msg.starts_with("still in maintenance: health gate not met after")
            && msg.contains("copy queue 412 (at most 10)"),
        "{msg}"
    );
    let rescue = finished(
        &events,
        "c-ex01",
        "Bring a failed server out of maintenance mode",
    );
    assert!(rescue.is_some(), "{all}");
    let stays = stays(&lab);
    assert_eq!(
        stays.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
        ["c-ex01"],
        "the DAG stopped: no other member entered maintenance"
    );
    // Left in maintenance, activation blocked: neither leave nor the rescue took it out, so
    // transport restarted only when it entered.
    let s = lab.fleet.state("c-ex01").unwrap();
    assert_eq!(s.activation_policy, "Blocked");
    assert!(s.ha.record.is_some());
    assert_eq!(transport_restarts(&lab, "c-ex01"), 1);
}

/// A DAG member that also holds a database with no copy on any other member: the plan names
/// that database's outage, and the patch keeps it mounted while the replicated ones move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_copy_database_of_a_dag_member_is_planned_as_an_outage() {
    let lab = Lab::start(
        188,
        "seed: 5\ntime_scale: 600\ntenants:\n  - name: c\n    hosts: 2\n    builds: [15.2.792.3]\n    \
         dags: [{name: c-dag1, members: 2, databases: 2}]\n\
         hosts:\n  c-ex01:\n    ha: {databases: [C-EX01-ARCHIVE]}\n",
    )
    .await;
    let inv = lab.inventory().write();
    let (code, events, all) = salve_run(&playbook(), &inv, &["--check"]).await;
    assert_eq!(code, 0, "{all}");
    let msg = finished(&events, "c-ex01", "Enter maintenance mode").unwrap()["msg"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains(
            "planned outage: C-EX01-ARCHIVE not replicated, offline while this server is updated"
        ),
        "{msg}"
    );
    let peer = finished(&events, "c-ex02", "Enter maintenance mode").unwrap();
    assert!(!peer["msg"].as_str().unwrap().contains("outage"), "{peer}");

    let (code, events, all) = salve_run(&playbook(), &inv, &[]).await;
    assert_eq!(code, 0, "{all}");
    let enter = finished(&events, "c-ex01", "Enter maintenance mode").unwrap();
    assert!(
        enter["msg"].as_str().unwrap().contains("planned outage"),
        "{enter}"
    );
    let state = lab.fleet.state("c-ex01").unwrap();
    let archive = state
        .copies
        .iter()
        .find(|c| c.database == "C-EX01-ARCHIVE")
        .unwrap();
    assert!(archive.active, "the single-copy database stays mounted");
    assert!(state.inactive_components().is_empty());
}
