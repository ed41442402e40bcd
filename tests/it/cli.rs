//! Exit codes of the command line itself: usage errors are invalid input (3), never the
//! "hosts failed" code (2); help and version succeed.

fn code(args: &[&str]) -> i32 {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_salve"))
        .args(args)
        .output()
        .unwrap();
    out.status.code().unwrap_or(-1)
}

#[test]
fn usage_errors_are_invalid_input() {
    assert_eq!(code(&["run", "--bogus"]), 3);
    assert_eq!(code(&["no-such-command"]), 3);
    assert_eq!(
        code(&["run", "playbooks/hello.yml"]),
        3,
        "a missing -i is a usage error"
    );
}

#[test]
fn help_and_version_succeed() {
    assert_eq!(code(&["--help"]), 0);
    assert_eq!(code(&["--version"]), 0);
    assert_eq!(code(&["run", "--help"]), 0);
}

/// `salve run --check --tags X` runs only the tagged tasks, as `salve run --tags X` does (it
/// once dropped the tags when printing the plan). `debug` never reaches the host, so the
/// unreachable address is never dialled.
#[test]
fn check_honours_tags() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("hosts.yml");
    std::fs::write(
        &inventory,
        "all:\n  hosts:\n    h1:\n      ansible_host: 127.0.0.1\n      ansible_port: 9\n",
    )
    .unwrap();
    let playbook = dir.path().join("tags.yml");
    std::fs::write(
        &playbook,
        "- name: tags\n  hosts: all\n  tasks:\n    - name: tagged task\n      debug: {msg: wanted}\n      tags: [x]\n    - name: untagged task\n      debug: {msg: unwanted}\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_salve"))
        .args(["run", "--check", "--no-progress", "--tags", "x", "-i"])
        .arg(&inventory)
        .arg(&playbook)
        .env("SALVE_STATE_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("tagged task"), "{stdout}");
    assert!(!stdout.contains("untagged task"), "{stdout}");
}

/// The README's first command, smaller: the demo remediates its simulated 2026 fleet and says,
/// from the lab's own state, where the fleet stands on CVE-2026-42897: the server whose SU
/// install fails stays protected by the OWA rule written before the update, the others are
/// fixed by build. It uses the demo's own loopback block (127.200.x.y), which no test lab takes.
#[test]
fn the_demo_fixes_or_mitigates_cve_2026_42897_on_every_reachable_server() {
    let reports = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_salve"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["demo", "--hosts", "12", "--no-progress", "--report-dir"])
        .arg(reports.path())
        .output()
        .unwrap();
    let stdout = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Exit 2: the demo fleet has a host whose install fails and an unreachable one, by design.
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("12 updates installed, 1 installs failed"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "CVE-2026-42897 (CISA known-exploited): 10 fixed by build, 1 mitigated by the OWA \
             rule (fabrikam-ex02), 0 exposed"
        ),
        "{stdout}"
    );
    assert!(reports.path().join("report.html").exists());
}
