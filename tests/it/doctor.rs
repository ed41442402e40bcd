//! `salve doctor` against the lab: healthy hosts pass, and each broken setup is named with its
//! fix (Basic over HTTP, an untrusted certificate, a wrong password, nothing listening, a bad
//! variable).

use crate::lab_support::{Lab, salve};

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
    let line = |host: &str| {
        out.lines()
            .find(|l| l.starts_with(host))
            .unwrap_or_default()
            .to_string()
    };
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
