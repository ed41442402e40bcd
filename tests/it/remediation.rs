//! The remediation playbook against a mixed lab fleet, end to end over real WinRM, judged from
//! the lab's own state log: every vulnerable server ends patched and verified with its
//! mitigation removed, the compromised server is flagged, the failing install is reported with
//! the installer's reason, no two members of a DAG are ever in maintenance at once, and every
//! update is installed exactly once per server.

use std::collections::BTreeMap;

use salve::exchange::assess::{Facts, assess};
use salve::exchange::catalogue::catalogue;
use salve_lab::log::LabEvent;

use crate::lab_support::{Lab, salve_run};

const FLEET: &str = "\
seed: 11
time_scale: 600
tenants:
  - name: contoso
    hosts: 4
    builds: [15.2.792.3]
    dags: [{name: contoso-dag1, members: 3, databases: 3}]
  - name: fabrikam
    hosts: 3
    builds: [15.1.2176.2]
hosts:
  contoso-ex04: {build: 15.2.922.13}
  fabrikam-ex02: {compromised: true}
  fabrikam-ex03: {faults: {install_failure: fatal}}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_fleet_is_remediated_and_the_lab_log_proves_it() {
    let lab = Lab::start(37, FLEET).await;
    let inv = lab.inventory().write();
    let playbook =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/proxylogon.yml");
    let (code, events, all) = salve_run(&playbook, &inv, &[]).await;
    assert_eq!(
        code, 2,
        "the failing install and the compromised server fail the run: {all}"
    );

    let status = |host: &str, task: &str| {
        events
            .iter()
            .find(|e| e["event"] == "task_finished" && e["host"] == host && e["task"] == task)
            .map(|e| {
                (
                    e["status"].as_str().unwrap_or("").to_string(),
                    e["msg"].as_str().unwrap_or("").to_string(),
                )
            })
    };
    // The failing host: the installer's own reason, and a clean exit from maintenance.
    let (st, msg) = status("fabrikam-ex03", "Install the updates on the path").unwrap();
    assert_eq!(st, "failed");
    assert!(msg.contains("1603"), "{msg}");
    let (st, _) = status(
        "fabrikam-ex03",
        "Bring a failed server out of maintenance mode",
    )
    .unwrap();
    assert_eq!(
        st, "changed",
        "rescue took the failed server out of maintenance: {all}"
    );
    // The compromised host is patched, and still reported as compromised.
    let (st, msg) = status("fabrikam-ex02", "Scan for signs of exploitation")
        .unwrap_or_else(|| panic!("fabrikam-ex02 never scanned: {all}"));
    assert_eq!(
        (st.as_str(), msg.contains("COMPROMISED")),
        ("failed", true),
        "{msg}"
    );

    let cat = catalogue().unwrap();
    for host in [
        "contoso-ex01",
        "contoso-ex02",
        "contoso-ex03",
        "contoso-ex04",
        "fabrikam-ex01",
        "fabrikam-ex02",
    ] {
        let state = lab.fleet.state(host).unwrap();
        // The lab keeps its own build type, independent of salve's catalogue.
        let build: salve::exchange::build::Build =
            state.build.unwrap().to_string().parse().unwrap();
        let open = assess(cat, build, &Facts::default()).open_by_build;
        assert!(open.is_empty(), "{host} ends on {build} with {open:?} open");
        assert!(state.rewrite_rules.is_empty(), "{host} kept its mitigation");
        assert!(
            state.pending_reboot.is_empty(),
            "{host} still needs a restart"
        );
    }
    for host in ["contoso-ex01", "fabrikam-ex01"] {
        let (st, _) = status(host, "Verify build, services, components and OWA").unwrap();
        assert_eq!(st, "ok");
    }

    let log = lab.fleet.log().entries();
    // Exactly once: no (host, KB) installed twice.
    let mut installs: BTreeMap<(String, String), usize> = BTreeMap::new();
    for e in &log {
        if let LabEvent::Installed { kb, .. } = &e.event {
            *installs.entry((e.host.clone(), kb.clone())).or_default() += 1;
        }
    }
    assert!(!installs.is_empty());
    assert!(installs.values().all(|&n| n == 1), "{installs:?}");
    // Never two members of the DAG in maintenance at once.
    let mut inside: Vec<String> = Vec::new();
    let members = ["contoso-ex01", "contoso-ex02", "contoso-ex03"];
    let mut entered = 0;
    for e in log.iter().filter(|e| members.contains(&e.host.as_str())) {
        match &e.event {
            LabEvent::MaintenanceEntered { .. } => {
                assert!(
                    inside.is_empty(),
                    "{} entered maintenance while {inside:?} was in it",
                    e.host
                );
                inside.push(e.host.clone());
                entered += 1;
            }
            LabEvent::MaintenanceLeft { .. } => inside.retain(|h| h != &e.host),
            _ => {}
        }
    }
    assert_eq!(entered, 3, "every DAG member went through maintenance");
}
