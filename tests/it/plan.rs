//! `salve keygen` and `salve approve` end to end: keys on disk, an approval appended to the plan
//! file without changing its digest, verification against a trusted-keys directory, and an
//! edited plan refused.

use std::path::Path;
use std::process::Command;

use salve::plan::{
    FileRef, HostPlan, InventoryRef, Plan, PlanError, PlanSelection, Risk, Step, verify,
};

fn salve(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_salve"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn plan() -> Plan {
    let host = HostPlan {
        name: "ex01.acme.local".into(),
        tenant: Some("acme".into()),
        facts: serde_json::json!({"build": "15.1.2106.2"}),
        window: vec![],
        steps: vec![Step {
            play: 0,
            task_index: 1,
            task: "Install security update".into(),
            module: "exchange_update".into(),
            action: "install KB5000871".into(),
            reason: "build 15.1.2106.2 is 2016 CU19 without KB5000871: CVE-2021-26855 open".into(),
            reboot: true,
            estimated_seconds: 2700,
            non_idempotent: false,
        }],
        risks: vec![Risk::DagMember { dag: "DAG1".into() }],
    };
    Plan::new(
        "2024-03-02T10:00:00Z".parse().unwrap(),
        FileRef {
            path: "site.yml".into(),
            sha256: "00".repeat(32),
        },
        InventoryRef {
            sources: vec!["hosts.yml".into()],
            sha256: "11".repeat(32),
        },
        PlanSelection::default(),
        vec![host],
        vec![],
    )
}

#[test]
fn keygen_approve_verify_and_tamper() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("trusted")).unwrap();
    let out = salve(&["keygen", "--out", "trusted/jane"], d);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("fingerprint: sha256:"), "{stdout}");
    let again = salve(&["keygen", "--out", "trusted/jane"], d);
    assert_eq!(again.status.code(), Some(3), "never overwrites a key");

    let original = plan();
    original.save(&d.join("plan.json")).unwrap();
    let out = salve(
        &[
            "approve",
            "plan.json",
            "--key",
            "trusted/jane.key",
            "--name",
            "Jane Doe",
            "--trusted",
            "trusted",
        ],
        d,
    );
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 trusted approval(s): Jane Doe"),
        "{stdout}"
    );

    let approved = Plan::load(&d.join("plan.json")).unwrap();
    assert_eq!(approved.digest(), original.digest());
    assert_eq!(
        verify(&approved, &d.join("trusted"), 1).unwrap()[0].name,
        "Jane Doe"
    );

    // The same key approving again is refused.
    let out = salve(
        &[
            "approve",
            "plan.json",
            "--key",
            "trusted/jane.key",
            "--name",
            "Jane",
        ],
        d,
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already approved"));

    // Editing the plan file after approval: refused, and the edited host is named.
    let text = std::fs::read_to_string(d.join("plan.json")).unwrap();
    std::fs::write(
        d.join("plan.json"),
        text.replace("\"reboot\": true", "\"reboot\": false"),
    )
    .unwrap();
    let edited = Plan::load(&d.join("plan.json")).unwrap();
    let err = verify(&edited, &d.join("trusted"), 1).unwrap_err();
    assert!(
        matches!(&err, PlanError::DigestMismatch { changed, .. } if changed == &["host ex01.acme.local"]),
        "{err}"
    );
}
