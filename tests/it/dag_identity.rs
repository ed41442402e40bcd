//! The server's own DAG against the inventory's `salve_dag`: a disagreement stops that host at
//! fact gathering, with both values named, before anything changes.

use crate::lab_support::{Lab, salve_run};

const DAG: &str = "seed: 9\ntenants:\n  - name: c\n    hosts: 2\n    builds: [15.2.792.3]\n    dags: [{name: c-dag1, members: 2, databases: 2}]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_the_inventory_places_in_another_dag_stops_with_both_names() {
    let lab = Lab::start(64, DAG).await;
    let inventory = lab
        .inventory()
        .host_var("c-ex02", "salve_dag", "c-dag2")
        .write();
    let playbook = lab.write(
        "pb.yml",
        "- hosts: all\n  tasks:\n    - name: facts\n      exchange_facts: {}\n",
    );
    let (code, events, all) = salve_run(&playbook, &inventory, &[]).await;
    assert_eq!(code, 2, "{all}");
    let facts = |host: &str| {
        events
            .iter()
            .find(|e| e["event"] == "task_finished" && e["host"] == host)
            .cloned()
            .unwrap_or_else(|| panic!("{all}"))
    };
    assert_eq!(facts("c-ex01")["status"], "ok", "{all}");
    let bad = facts("c-ex02");
    assert_eq!(bad["status"], "failed");
    let msg = bad["msg"].as_str().unwrap();
    assert!(
        msg.contains("`c-dag1`") && msg.contains("`c-dag2`"),
        "{msg}"
    );
}

/// A DAG member whose Exchange cmdlets fail (here: the AD read through them is refused) has no
/// known roles or DAG. Before, the facts answered "no roles, no DAG" with success, and the run
/// went on treating the member as a standalone server (no Mailbox-role checks, no DAG order).
/// Now the facts task fails with the cause and the fix, and nothing else runs on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_exchange_cannot_manage_stops_at_facts_and_is_never_standalone() {
    let lab = Lab::start(
        184,
        &format!("{DAG}hosts:\n  c-ex02: {{faults: {{exchange_unmanageable: true}}}}\n"),
    )
    .await;
    let inventory = lab.inventory().write();
    let playbook = lab.write(
        "pb.yml",
        "- hosts: all\n  tasks:\n    - name: facts\n      exchange_facts: {}\n    - name: after\n      debug: {msg: went on}\n",
    );
    let (code, events, all) = salve_run(&playbook, &inventory, &[]).await;
    assert_eq!(code, 2, "{all}");
    let finished = |host: &str, task: &str| {
        events
            .iter()
            .find(|e| e["event"] == "task_finished" && e["host"] == host && e["task"] == task)
            .cloned()
    };
    assert_eq!(
        finished("c-ex01", "after").unwrap()["status"],
        "ok",
        "{all}"
    );
    let bad = finished("c-ex02", "facts").unwrap_or_else(|| panic!("{all}"));
    assert_eq!(bad["status"], "failed", "{all}");
    let msg = bad["msg"].as_str().unwrap();
    for expected in [
        "Exchange could not be managed on c-ex02",
        "The supplied credential is invalid",
        "rather than treat it as a standalone server",
    ] {
        assert!(msg.contains(expected), "{msg}");
    }
    assert!(finished("c-ex02", "after").is_none(), "{all}");
}
