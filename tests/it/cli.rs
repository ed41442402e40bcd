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
