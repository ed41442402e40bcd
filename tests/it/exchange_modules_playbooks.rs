//! The shipped Exchange playbooks pass `salve check` against the shipped DAG inventory, and
//! the check really looks at them (a playbook needing update sources fails against an
//! inventory without them).

use std::path::Path;
use std::process::Command;

fn check(playbook: &str, inventory: &str) -> (bool, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_salve"))
        .current_dir(root)
        .args(["check", playbook, "-i", inventory])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn shipped_exchange_playbooks_pass_check_with_the_dag_inventory() {
    for playbook in [
        "playbooks/assess.yml",
        "playbooks/proxylogon.yml",
        "playbooks/ioc-scan.yml",
        "playbooks/rollback-mitigation.yml",
    ] {
        let (ok, text) = check(playbook, "inventories/dag.yml");
        assert!(ok, "{playbook}: {text}");
        assert!(text.contains("4 hosts matched"), "{playbook}: {text}");
    }
}

#[test]
fn the_remediation_playbook_needs_update_sources_from_the_inventory() {
    let (ok, text) = check("playbooks/proxylogon.yml", "inventories/single-site.yml");
    assert!(!ok, "{text}");
    assert!(
        text.contains("undefined variable `salve_update_sources`"),
        "{text}"
    );
    let (ok, text) = check("playbooks/assess.yml", "inventories/single-site.yml");
    assert!(ok, "read-only playbooks need no sources: {text}");
}
