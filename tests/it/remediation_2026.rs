//! Today's remediation (`playbooks/remediate.yml`) against the shipped 2026 fleet
//! (`tests/scenarios/fleet-2026.yml`), end to end over real WinRM and judged from the lab's own
//! state: every server ends on the newest SU its line can take, CVE-2026-42897 is closed wherever
//! an SU can close it, the 2019 CU8-era server goes through CU15, and the out-of-support Exchange
//! 2013 server is reported (support state on its facts line) and left alone.

use std::collections::BTreeMap;

use salve::exchange::assess::{Facts, assess};
use salve::exchange::catalogue::catalogue;
use salve_lab::log::LabEvent;

use crate::lab_support::{Lab, salve_run};

const FLEET: &str = include_str!("../scenarios/fleet-2026.yml");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_2026_fleet_ends_on_the_newest_sus_with_cve_2026_42897_closed() {
    let lab = Lab::start(57, FLEET).await;
    let inv = lab.inventory().write();
    let playbook = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/remediate.yml");
    let (code, events, all) = salve_run(&playbook, &inv, &[]).await;
    assert_eq!(code, 0, "{all}");

    let expected = [
        ("contoso-ex01", "15.2.1544.44"),
        ("contoso-ex02", "15.2.1748.49"),
        ("contoso-ex03", "15.2.1748.49"),
        ("fabrikam-ex01", "15.2.2562.46"),
        ("fabrikam-ex02", "15.2.2562.46"),
        ("fabrikam-ex03", "15.1.2507.72"),
        ("fabrikam-ex04", "15.0.1497.48"),
        ("fabrikam-ex05", "15.2.2562.46"),
    ];
    let cat = catalogue().unwrap();
    let cve: salve::exchange::ids::Cve = "CVE-2026-42897".parse().unwrap();
    for (host, build) in expected {
        let state = lab.fleet.state(host).unwrap();
        let now = state.build.unwrap().to_string();
        assert_eq!(now, build, "{host}: {all}");
        let a = assess(cat, now.parse().unwrap(), &Facts::default());
        assert!(
            a.open_by_build.is_empty(),
            "{host} still open: {:?}",
            a.open_by_build
        );
        assert!(!a.open_cves.contains(&cve), "{host}");
        assert!(
            state.pending_reboot.is_empty(),
            "{host} still needs a restart"
        );
    }

    let log = lab.fleet.log().entries();
    let mut installs: BTreeMap<(String, String), usize> = BTreeMap::new();
    for e in &log {
        if let LabEvent::Installed { kb, .. } = &e.event {
            *installs.entry((e.host.clone(), kb.clone())).or_default() += 1;
        }
    }
    assert!(installs.values().all(|&n| n == 1), "{installs:?}");
    // The CU8-era server went through CU15 (KB5042461), then CU15's August 2026 SU.
    assert!(
        installs.contains_key(&("contoso-ex03".into(), "KB5042461".into())),
        "{installs:?}"
    );
    assert!(
        installs.contains_key(&("contoso-ex03".into(), "KB5121574".into())),
        "{installs:?}"
    );
    // Exchange 2013: nothing installed, and its facts line says why.
    assert!(
        !installs.keys().any(|(h, _)| h == "fabrikam-ex04"),
        "{installs:?}"
    );
    let facts_line = events
        .iter()
        .find(|e| {
            e["event"] == "task_finished"
                && e["host"] == "fabrikam-ex04"
                && e["task"] == "Read build, updates, support state and prerequisites"
        })
        .and_then(|e| e["msg"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no facts for fabrikam-ex04: {all}"));
    assert!(
        facts_line.contains("Exchange 2013 is out of support since 2023-04-12"),
        "{facts_line}"
    );
    // Patched, but a SettingOverride keeps one fix off: still open, and said after patching.
    let after = |host: &str| {
        events
            .iter()
            .find(|e| {
                e["event"] == "task_finished"
                    && e["host"] == host
                    && e["task"] == "Re-read the facts after patching"
            })
            .cloned()
            .unwrap_or_else(|| panic!("no facts after patching for {host}: {all}"))
    };
    let ex02 = after("contoso-ex02");
    assert!(
        ex02["msg"]
            .as_str()
            .unwrap()
            .contains("open: CVE-2025-25005"),
        "{ex02}"
    );
    // The EEMS mitigation stays after the SU (Microsoft asks to keep it).
    let state = lab.fleet.state("fabrikam-ex01").unwrap();
    assert_eq!(state.config.outbound_rules, ["EOMT OWA CSP - outbound"]);
}
