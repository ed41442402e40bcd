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
