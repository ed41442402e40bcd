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
