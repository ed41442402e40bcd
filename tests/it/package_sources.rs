//! Package sources against the lab: a `unc:` source with explicit share credentials, read only
//! inside the detached step, so a share that admits only a service account works whichever
//! account (or SYSTEM) the step runs as.

use salve_lab::log::LabEvent;
use serde_json::Value;

use crate::lab_support::{Lab, salve, salve_run};

/// One Exchange 2019 CU15 server, and a share that grants read to a service account only.
const RESTRICTED_SHARE: &str = "seed: 5\ntime_scale: 600\ntenants:\n  - name: t\n    hosts: 1\n    builds: [15.2.1544.36]\nshares:\n  - {path: '\\\\fs01\\patches', read: ['LAB\\svc-pkgread']}\naccounts:\n  - {user: 'LAB\\svc-pkgread', password: 'Pkg-Read-0!'}\n";

fn finished<'a>(events: &'a [Value], task: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["event"] == "task_finished" && e["task"] == task)
        .unwrap_or_else(|| panic!("no task_finished for {task}: {events:?}"))
}

/// A file secret reference (`file:PATH`, readable by its owner only) holding `password`.
fn password_file(lab: &Lab, name: &str, password: &str) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let path = lab.write(name, &format!("{password}\n"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    format!("file:{}", path.display())
}

/// Windows' share permissions (the lab's rule in `shares.rs`): the `become` account is not
/// among the share's readers, so the step fails with "Access is denied"; the source's own
/// `username`/`password` connect to the share as the service account, whatever account the step
/// runs as (here a become account the share does not admit); a wrong password fails as Windows
/// words it. The password is never shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_readable_only_by_a_service_account_is_read_with_the_sources_credentials() {
    let lab = Lab::start(220, RESTRICTED_SHARE).await;
    let sha = "ab".repeat(32);
    let source = |credentials: &str| {
        format!(
            "{{KB5121575: {{unc: '\\\\fs01\\patches\\Exchange2019-KB5121575.msp', sha256: '{sha}'{credentials}}}}}"
        )
    };
    let inherited = lab.write(
        "inherited.yml",
        "- hosts: all\n  tasks:\n    - name: update\n      exchange_update:\n        kb: KB5121575\n        sources: \"{{ pkg }}\"\n",
    );

    // The inventory's become account (the lab's own) is not among the share's readers.
    let plain = lab
        .inventory()
        .host_var("t-ex01", "pkg", &source(""))
        .write();
    let (code, events, all) = salve_run(&inherited, &plain, &[]).await;
    assert_ne!(code, 0, "{all}");
    let denied = finished(&events, "update");
    assert_eq!(denied["status"], "failed", "{all}");
    assert!(
        denied["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("is denied"),
        "{denied}"
    );

    let wrong = password_file(&lab, "wrong.pw", "not-it");
    let wrong = lab
        .inventory()
        .host_var(
            "t-ex01",
            "pkg",
            &source(&format!(
                ", username: 'LAB\\svc-pkgread', password: '{wrong}'"
            )),
        )
        .write();
    let (code, events, all) = salve_run(&inherited, &wrong, &[]).await;
    assert_ne!(code, 0, "{all}");
    assert!(
        finished(&events, "update")["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("password is incorrect"),
        "{all}"
    );
    assert!(!all.contains("not-it"), "{all}");

    let right = password_file(&lab, "right.pw", "Pkg-Read-0!");
    let right = lab
        .inventory()
        .host_var(
            "t-ex01",
            "pkg",
            &source(&format!(
                ", username: 'LAB\\svc-pkgread', password: '{right}'"
            )),
        )
        .write();
    let (code, events, all) = salve_run(&inherited, &right, &[]).await;
    assert_eq!(code, 0, "{all}");
    assert_eq!(finished(&events, "update")["status"], "changed", "{all}");
    assert!(!all.contains("Pkg-Read-0!"), "{all}");
    let log = lab.fleet.log();
    assert_eq!(
        log.count("t-ex01", |e| matches!(e, LabEvent::Installed { .. })),
        1
    );
    // The step ran as the become account, which the share does not admit: the package was
    // read as the source's own account.
    assert!(
        log.count(
            "t-ex01",
            |e| matches!(e, LabEvent::JobStarted { script_id, run_as, .. }
                if script_id == "exchange_update" && run_as != "SYSTEM")
        ) >= 2
    );
}

/// A self-signed certificate and key for `address` (PEM files in the lab's folder), as an
/// operator would make with `openssl req -x509`.
fn self_signed(lab: &Lab, address: &str) -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec![address.to_string()]).unwrap();
    let cert = lab.write("packages.crt", &made.cert.pem());
    let key = lab.write("packages.key", &made.signing_key.serialize_pem());
    (cert.display().to_string(), key.display().to_string())
}

/// A host that reaches neither a URL nor a share gets its package from salve itself: the
/// controller serves the `serve:` file over HTTPS (`salve_package_server`) with a token for
/// that step, and the host downloads it for real over loopback with the certificate pinned,
/// checks its SHA-256 and installs. A file whose SHA-256 is not the one the source names is
/// refused by the host before anything is installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salve_serves_a_package_the_host_downloads_with_a_token_and_verifies() {
    use sha2::Digest as _;
    let lab = Lab::start(
        221,
        "seed: 5\ntime_scale: 600\ntenants:\n  - name: t\n    hosts: 1\n    builds: [15.2.1544.36]\n",
    )
    .await;
    let text: String = (0..100_000)
        .map(|i| format!("package line {i}\n"))
        .collect();
    let package = lab.write("Exchange2019-KB5121575.msp", &text);
    let sha = hex::encode(sha2::Sha256::digest(text.as_bytes()));
    let server = "127.221.200.1";
    let (cert, key) = self_signed(&lab, server);
    let update = lab.write(
        "served.yml",
        "- hosts: all\n  tasks:\n    - name: update\n      exchange_update:\n        kb: KB5121575\n        sources: \"{{ pkg }}\"\n",
    );
    let inventory = |sha: &str| {
        lab.inventory()
            .host_var(
                "t-ex01",
                "pkg",
                &format!(
                    "{{KB5121575: {{serve: '{}', sha256: '{sha}'}}}}",
                    package.display()
                ),
            )
            .host_var(
                "t-ex01",
                "salve_package_server",
                &format!("{{url: 'https://{server}:8443', certificate: '{cert}', key: '{key}'}}"),
            )
            .write()
    };

    let wrong = inventory(&"ab".repeat(32));
    let (code, events, all) = salve_run(&update, &wrong, &[]).await;
    assert_ne!(code, 0, "{all}");
    let refused = finished(&events, "update");
    assert_eq!(refused["status"], "failed", "{all}");
    assert!(
        refused["msg"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("SHA-256 of https://{server}:8443/packages/")),
        "{refused}"
    );

    let right = inventory(&sha);
    // doctor starts the package server as a run would, and says what the host must reach.
    let (_, doctor) = salve(&["doctor", "-i", right.to_str().unwrap()]).await;
    assert!(doctor.contains("package server ok"), "{doctor}");
    let (code, events, all) = salve_run(&update, &right, &[]).await;
    assert_eq!(code, 0, "{all}");
    assert_eq!(finished(&events, "update")["status"], "changed", "{all}");
    assert!(
        all.contains(&format!("SHA-256 verified: {sha} ({} bytes)", text.len())),
        "{all}"
    );
    assert!(!all.contains("Bearer"), "{all}");
    assert_eq!(
        lab.fleet
            .log()
            .count("t-ex01", |e| matches!(e, LabEvent::Installed { .. })),
        1
    );
}

/// `salve check` (no connection) names a share an `exchange_update` task's account could not
/// read, with the fix, and says nothing once the source has its own share account or the task
/// runs under `become`. A host without a become account is refused anyway (Exchange cannot be
/// managed from its WinRM logon); the share's warning still comes with the refusal.
#[tokio::test]
async fn check_names_a_share_source_that_would_need_a_second_hop() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let sha = "ab".repeat(32);
    let inventory = |account: &str| {
        format!(
            "all:\n  vars:\n    ansible_password: env:PW\n    salve_update_sources:\n      KB5000871: {{unc: '\\\\fs01\\exchange\\KB5000871.msp', sha256: '{sha}'{account}}}\n  hosts:\n    ex01: {{}}\n"
        )
    };
    let playbook = write(
        "pb.yml",
        "- hosts: all\n  tasks:\n    - name: update\n      exchange_update:\n        kb: KB5000871\n        sources: \"{{ salve_update_sources }}\"\n",
    );
    let bare = write("bare.yml", &inventory(""));
    let (code, _, err) =
        crate::lab_support::salve_with(&["check", &playbook, "-i", &bare], &[]).await;
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("no become account is set"), "{err}");
    assert!(
        err.contains("warning: ex01: task `update`: 1 package source is on a file share")
            && err.contains("fix: give each share source the share's username and password"),
        "{err}"
    );
    let own = write(
        "own.yml",
        &inventory(", username: 'CONTOSO\\svc-media', password: 'env:MEDIA_PW'"),
    );
    let (code, _, err) =
        crate::lab_support::salve_with(&["check", &playbook, "-i", &own], &[]).await;
    assert_ne!(code, 0, "{err}");
    assert!(!err.contains("warning: ex01"), "{err}");
    let with_become = write(
        "become.yml",
        &inventory("").replace(
            "    ansible_password: env:PW\n",
            "    ansible_password: env:PW\n    ansible_become_user: CONTOSO\\svc-patch\n    ansible_become_password: env:PW\n",
        ),
    );
    let (code, _, err) =
        crate::lab_support::salve_with(&["check", &playbook, "-i", &with_become], &[]).await;
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning: ex01"), "{err}");
    // A package to be served by salve, on a host without salve_package_server.
    let served = write(
        "served.yml",
        &format!(
            "all:\n  vars:\n    ansible_password: env:PW\n    salve_update_sources:\n      KB5000871: {{serve: /srv/KB5000871.msp, sha256: '{sha}'}}\n  hosts:\n    ex01: {{}}\n"
        ),
    );
    let (code, _, err) =
        crate::lab_support::salve_with(&["check", &playbook, "-i", &served], &[]).await;
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("no salve_package_server is set; fix: set salve_package_server"),
        "{err}"
    );
}
