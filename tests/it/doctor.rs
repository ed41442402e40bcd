//! `salve doctor` against the lab: healthy hosts pass, and each broken setup is named with its
//! fix (Basic over HTTP, an untrusted certificate, a wrong password, nothing listening, a bad
//! variable).

use crate::lab_support::{Lab, salve};

/// The summary line of `host` in doctor's output.
fn line_of(out: &str, host: &str) -> String {
    out.lines()
        .find(|l| l.starts_with(host))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_each_problem_and_its_fix() {
    let lab = Lab::start(
        36,
        "seed: 5\ntenants:\n  - name: t\n    hosts: 1\n    builds: [15.1.2176.2]\n",
    )
    .await;
    let ip = lab.address("t-ex01");
    let ca = lab.ca();
    let inventory = lab.write(
        "inv.yml",
        &format!(
            "all:
  vars: {{ansible_user: salve-lab, ansible_password: 'env:LAB_PW', ansible_host: '{ip}'}}
  hosts:
    ntlm-http: {{ansible_port: 5985}}
    basic-https: {{ansible_port: 5986, ansible_winrm_transport: basic, salve_winrm_ca_file: '{ca}'}}
    basic-http: {{ansible_port: 5985, ansible_winrm_transport: basic, ansible_winrm_scheme: http}}
    untrusted: {{ansible_port: 5986}}
    wrong-pw: {{ansible_port: 5985, ansible_password: 'Wrong-Pw-1'}}
    nobody-home: {{ansible_host: 127.36.250.250, ansible_port: 5985}}
    bad-var: {{ansible_port: http}}
",
            ca = ca.display()
        ),
    );
    let (code, out) = salve(&["doctor", "-i", inventory.to_str().unwrap()]).await;
    assert_eq!(code, 2, "{out}");
    let line = |host: &str| line_of(&out, host);
    assert!(
        line("ntlm-http").ends_with("dns ok, tcp ok, listener ok, command ok"),
        "{out}"
    );
    assert!(line("basic-https").ends_with("command ok"), "{out}");
    assert!(
        out.contains("listener is HTTP-only and Basic is refused over HTTP"),
        "{out}"
    );
    assert!(
        out.contains("invalid peer certificate") && out.contains("salve_winrm_ca_file"),
        "{out}"
    );
    assert!(
        out.contains("authentication to") && out.contains("as user `salve-lab`"),
        "{out}"
    );
    assert!(line("nobody-home").ends_with("tcp FAILED"), "{out}");
    assert!(
        out.contains("`ansible_port` = http: expected a port number"),
        "{out}"
    );
    assert!(out.contains("2 of 7 hosts ready"), "{out}");
    assert!(
        !out.contains("Wrong-Pw-1") && !out.contains(crate::lab_support::PASSWORD),
        "{out}"
    );
}

/// Package sources on a share: `doctor` says who will read them. Without a become account the
/// WinRM logon cannot (the double hop) and SYSTEM would need the share to grant the computer
/// account: named with the fix; with one, it passes and names the account. A URL Rewrite MSI
/// on a share is always out of reach (it installs inside the WinRM session).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_package_shares_out_of_reach_and_who_reads_them() {
    let lab = Lab::start(
        182,
        "seed: 5\ntenants:\n  - name: t\n    hosts: 1\n    builds: [15.1.2176.2]\n",
    )
    .await;
    let ip = lab.address("t-ex01");
    let inventory = lab.write(
        "inv.yml",
        &format!(
            "all:
  vars:
    ansible_user: salve-lab
    ansible_password: 'env:LAB_PW'
    ansible_host: '{ip}'
    ansible_port: 5985
    salve_update_sources:
      KB5000871: {{unc: '\\\\fs01\\exchange\\KB5000871.msp', sha256: '{sha}'}}
      KB5003435: {{url: 'https://media.contoso.test/KB5003435.msp', sha256: '{sha}'}}
  hosts:
    no-become: {{}}
    with-become: {{ansible_become_user: 'CONTOSO\\svc-patch', ansible_become_password: 'env:LAB_PW'}}
    msi-on-share:
      ansible_become_user: 'CONTOSO\\svc-patch'
      ansible_become_password: 'env:LAB_PW'
      salve_rewrite_msi: {{unc: '\\\\fs01\\media\\rewrite.msi', sha256: '{sha}'}}
",
            sha = "ab".repeat(32)
        ),
    );
    let (code, out) = salve(&["doctor", "-i", inventory.to_str().unwrap()]).await;
    assert_eq!(code, 2, "{out}");
    let line = |host: &str| line_of(&out, host);
    assert!(
        line("no-become").ends_with("command ok, sources FAILED"),
        "{out}"
    );
    assert!(
        out.contains("1 package source is on a file share (\\\\fs01\\exchange\\KB5000871.msp), and no become account is set"),
        "{out}"
    );
    assert!(
        out.contains("fix: give each share source the share's username and password"),
        "{out}"
    );
    assert!(
        line("with-become").ends_with("command ok, sources ok"),
        "{out}"
    );
    // URL Rewrite's MSI is installed by a task under the become account, which reads it.
    assert!(line("msi-on-share").ends_with("sources ok"), "{out}");
}
