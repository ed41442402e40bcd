//! Detached steps against the lab: an update runs as a scheduled task on the host, so the
//! task's timeout only stops salve *waiting* — Setup is never killed — and the next run
//! re-attaches to the task and reads its result instead of installing a second time.

use salve_lab::log::LabEvent;
use serde_json::Value;

use crate::lab_support::{Lab, salve_run};

// 2019 CU7 with a 60-minute CU to CU10 at 600 simulated seconds per second: 6 s of real time.
const ONE_HOST: &str =
    "seed: 5\ntime_scale: 600\ntenants:\n  - name: t\n    hosts: 1\n    builds: [15.2.721.2]\n";

fn playbook(timeout: &str) -> String {
    format!(
        "- hosts: all\n  tasks:\n    - name: update\n      exchange_update:\n        target: path\n        sources: \"{{{{ salve_update_sources }}}}\"\n        license_switch: \"{{{{ salve_license_switch | default(none) }}}}\"\n        ad_prepared: true\n      register: step\n      timeout: {timeout}\n"
    )
}

fn finished<'a>(events: &'a [Value], task: &str) -> Option<&'a Value> {
    events
        .iter()
        .find(|e| e["event"] == "task_finished" && e["task"] == task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_leaves_setup_running_and_the_next_run_reattaches() {
    let lab = Lab::start(63, ONE_HOST).await;
    let inventory = lab.inventory().write();

    // The task gives up waiting after 2 s; Setup needs 6.
    let short = lab.write("short.yml", &playbook("2s"));
    let (_, events, all) = salve_run(&short, &inventory, &[]).await;
    let update = finished(&events, "update").unwrap_or_else(|| panic!("{all}"));
    assert_eq!(update["status"], "interrupted", "{all}");
    let msg = update["msg"].as_str().unwrap_or_default();
    assert!(msg.contains("left alone"), "{msg}");
    assert!(msg.contains("re-attaches"), "{msg}");

    let log = || lab.fleet.log();
    assert_eq!(
        log().count("t-ex01", |e| matches!(e, LabEvent::InstallStarted { .. })),
        1
    );
    // Setup was not killed: it finishes on its own.
    let started = std::time::Instant::now();
    while log().count("t-ex01", |e| matches!(e, LabEvent::JobFinished { .. })) == 0 {
        assert!(started.elapsed().as_secs() < 60, "the task never finished");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        log().count("t-ex01", |e| matches!(e, LabEvent::Installed { .. })),
        1
    );
    assert_eq!(
        log().count("t-ex01", |e| matches!(e, LabEvent::InstallFailed { .. })),
        0,
        "Setup was interrupted"
    );
    let state = lab.fleet.state("t-ex01").unwrap();
    assert!(
        state.services.iter().all(|s| s.start_type != "Disabled"),
        "services left disabled: {:?}",
        state.services
    );

    // The next run finds the finished task, reads its result and removes it; nothing is
    // installed a second time.
    let long = lab.write("long.yml", &playbook("2h"));
    let (code, events, all) = salve_run(&long, &inventory, &[]).await;
    assert_eq!(code, 0, "{all}");
    let update = finished(&events, "update").unwrap();
    assert_eq!(update["status"], "changed", "{all}");
    assert!(
        update["msg"].as_str().unwrap().contains("started earlier"),
        "{update}"
    );
    assert_eq!(
        log().count("t-ex01", |e| matches!(e, LabEvent::InstallStarted { .. })),
        1,
        "a second install was started"
    );
    assert_eq!(
        log().count("t-ex01", |e| matches!(e, LabEvent::JobRemoved { .. })),
        1
    );
    assert!(lab.fleet.state("t-ex01").unwrap().jobs.is_empty());
}
