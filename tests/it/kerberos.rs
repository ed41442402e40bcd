//! Kerberos against a real MIT KDC on loopback ([`crate::kerberos_support`]): `salve run` on
//! several lab hosts over Kerberos with message encryption on HTTP and over HTTPS, pywinrm's
//! `transport=kerberos` against the same lab (the independent client that proves the lab's
//! acceptor right), and each way Kerberos fails in practice — a wrong password, an expired
//! ticket, a clock skewed beyond the realm's limit, a host without its SPN, a host reached by
//! address — named with its cause.

use salve_lab::host_api::{ProtocolEvent, SimHost};
use serde_json::Value;

use crate::kerberos_support::{Kdc, fqdn};
use crate::lab_support::{Lab, PASSWORD, json_outcome};

const THREE_HOSTS: &str =
    "seed: 7\ntenants:\n  - name: t\n    hosts: 3\n    builds: [15.2.792.3]\n";
const PLAYBOOK: &str = "- hosts: all\n  tasks:\n    - name: who\n      powershell: {script: 'Write-Output $env:COMPUTERNAME'}\n      register: who\n    - name: again\n      powershell: {script: 'Write-Output 2'}\n";
/// The lab's account, as a principal in the default realm.
const USER: &str = "salve-lab";

/// A realm and a lab joined to it, on loopback block `block` (KDC port 18800 + block).
async fn realm_and_lab(block: u8) -> Option<(Kdc, Lab)> {
    let probe = crate::lab_support::fleet(THREE_HOSTS);
    let hosts: Vec<String> = probe.hosts().iter().map(|h| h.name().to_string()).collect();
    let kdc = Kdc::start(18800 + u16::from(block), USER, PASSWORD, &hosts)?;
    let realm = kdc.realm();
    let lab = Lab::start_in_realm(block, THREE_HOSTS, Some(&realm)).await;
    Some((kdc, lab))
}

/// An inventory of the lab's hosts over Kerberos: each reached by its address, its SPN named
/// by `ansible_winrm_kerberos_hostname_override`, with `vars` (YAML flow-map entries) added.
fn inventory(lab: &Lab, vars: &str) -> std::path::PathBuf {
    let mut text = format!(
        "all:\n  vars: {{ansible_user: {USER}, ansible_password: 'env:LAB_PW', ansible_winrm_transport: kerberos, {vars}}}\n  hosts:\n"
    );
    for host in lab.host_names() {
        text.push_str(&format!(
            "    {host}: {{ansible_host: '{}', ansible_winrm_kerberos_hostname_override: {}}}\n",
            lab.address(&host),
            fqdn(&host)
        ));
    }
    lab.write("inv.yml", &text)
}

async fn run(lab: &Lab, kdc: &Kdc, inventory: &std::path::Path) -> (i32, Vec<Value>, String) {
    let playbook = lab.write("pb.yml", PLAYBOOK);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_salve"))
        .args(["run", "--json", "--all-tenants"])
        .arg(playbook)
        .arg("-i")
        .arg(inventory)
        .env("LAB_PW", PASSWORD)
        .env("NO_PROXY", "127.0.0.0/8")
        .envs(kdc.env())
        .output()
        .await
        .unwrap();
    json_outcome(&out)
}

fn ok_tasks(events: &[Value], host: &str) -> usize {
    events
        .iter()
        .filter(|e| {
            e["event"] == "task_finished"
                && e["host"] == host
                && (e["status"] == "ok" || e["status"] == "changed")
        })
        .count()
}

fn kerberos_logons(lab: &Lab, host: &str) -> usize {
    lab.protocol(
        host,
        |e| matches!(e, ProtocolEvent::Authenticated { method, .. } if method == "kerberos"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salve_runs_a_playbook_over_kerberos_on_http_and_https() {
    let Some((kdc, lab)) = realm_and_lab(61).await else {
        return;
    };
    // HTTP: the bodies sealed with the Kerberos context, as Windows requires.
    let inv = inventory(&lab, "ansible_port: 5985, ansible_winrm_scheme: http");
    let (code, events, all) = run(&lab, &kdc, &inv).await;
    assert_eq!(code, 0, "{all}");
    for host in lab.host_names() {
        assert_eq!(ok_tasks(&events, &host), 2, "{host}: {all}");
        // One logon and one shell per host for the whole run.
        assert_eq!(kerberos_logons(&lab, &host), 1, "{host}: {all}");
        assert_eq!(
            lab.protocol(&host, |e| matches!(e, ProtocolEvent::ShellCreated { .. })),
            1
        );
    }
    // HTTPS, the listener's certificate checked against the lab's CA.
    let inv = inventory(
        &lab,
        &format!(
            "ansible_port: 5986, ansible_winrm_scheme: https, salve_winrm_ca_file: '{}'",
            lab.ca().display()
        ),
    );
    let (code, events, all) = run(&lab, &kdc, &inv).await;
    assert_eq!(code, 0, "{all}");
    for host in lab.host_names() {
        assert_eq!(ok_tasks(&events, &host), 2, "{host}: {all}");
        assert!(kerberos_logons(&lab, &host) >= 2, "{host}: {all}");
    }
    assert!(!all.contains(PASSWORD));
}
