//! Client-certificate authentication over HTTPS: salve presents a certificate from the lab's
//! CA (`ansible_winrm_cert_pem` / `ansible_winrm_cert_key_pem`), the lab maps its UPN to the
//! host's account as Windows' certificate mapping does, and a certificate the host does not
//! map is refused.

use salve_lab::frontends::Domain;
use salve_lab::host_api::ProtocolEvent;

use crate::lab_support::{Lab, PASSWORD, salve_run};

const TWO_HOSTS: &str = "seed: 7\ntenants:\n  - name: t\n    hosts: 2\n    builds: [15.2.792.3]\n";
const MAPPED: &str = "salve-lab@lab.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapped_certificate_authenticates_and_an_unmapped_one_is_refused() {
    let domain = Domain {
        mapped_certificates: vec![MAPPED.into()],
        ..Domain::default()
    };
    let lab = Lab::start_in_domain(66, TWO_HOSTS, Some(&domain)).await;
    let (good_cert, good_key) = lab.client_certificate(MAPPED);
    let (bad_cert, bad_key) = lab.client_certificate("mallory@lab.test");
    let hosts = lab.host_names();
    let text = format!(
        "all:
  vars: {{ansible_winrm_transport: certificate, ansible_port: 5986, ansible_winrm_scheme: https, salve_winrm_ca_file: '{ca}'}}
  hosts:
    {h0}: {{ansible_host: '{a0}', ansible_winrm_cert_pem: '{gc}', ansible_winrm_cert_key_pem: '{gk}'}}
    {h1}: {{ansible_host: '{a1}', ansible_winrm_cert_pem: '{bc}', ansible_winrm_cert_key_pem: '{bk}'}}
",
        ca = lab.ca().display(),
        h0 = hosts[0],
        h1 = hosts[1],
        a0 = lab.address(&hosts[0]),
        a1 = lab.address(&hosts[1]),
        gc = good_cert.display(),
        gk = good_key.display(),
        bc = bad_cert.display(),
        bk = bad_key.display(),
    );
    let inventory = lab.write("inv.yml", &text);
    let playbook = lab.write(
        "pb.yml",
        "- hosts: all\n  tasks:\n    - name: who\n      powershell: {script: 'Write-Output $env:COMPUTERNAME'}\n",
    );
    let (code, events, all) = salve_run(&playbook, &inventory, &[]).await;
    assert_ne!(code, 0, "{all}");
    let result = |host: &str| {
        events
            .iter()
            .find(|e| e["event"] == "task_finished" && e["host"] == host)
            .cloned()
            .unwrap_or_else(|| panic!("{host}: {all}"))
    };
    assert_eq!(
        result(&hosts[0])["result"]["stdout"],
        hosts[0].as_str(),
        "{all}"
    );
    let refused = result(&hosts[1]);
    assert_eq!(refused["status"], "unreachable", "{all}");
    assert!(
        refused["msg"]
            .as_str()
            .unwrap()
            .contains("authentication to"),
        "{refused}"
    );
    let logons = |host: &str, method: &str| {
        lab.protocol(
            host,
            |e| matches!(e, ProtocolEvent::Authenticated { method: m, .. } if m == method),
        )
    };
    assert_eq!(logons(&hosts[0], "certificate"), 1);
    assert_eq!(logons(&hosts[1], "certificate"), 0);
    assert!(
        lab.protocol(&hosts[1], |e| matches!(
            e,
            ProtocolEvent::AuthFailed { method, user } if method == "certificate" && user == "mallory@lab.test"
        )) >= 1
    );
    assert!(!all.contains(PASSWORD));
}
