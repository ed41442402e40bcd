//! WinRM's per-shell quotas against a long, large step (issue 16, part E): what runs inside a
//! WinRM shell lives under the shell's MaxMemoryPerShellMB and IdleTimeout; salve's detached
//! steps (scheduled tasks) live under neither.

use std::time::Duration;

use salve::contract::{ScriptId, UpdateKind, UpdateRequest};
use salve::model::HostSettings;
use salve::script::{Script, shipped_text};
use salve::transport::winrm::WinrmConnector;
use salve::transport::{Connector, RunRequest, Transport};
use salve_lab::log::LabEvent;

use crate::lab_support::{Lab, salve_run};

/// Two 2019 CU7 servers whose Setup's processes reach 1.5 GB during a CU (a scenario figure).
const BIG_SETUP: &str = "seed: 5\ntime_scale: 600\ntenants:\n  - name: t\n    hosts: 2\n    builds: [15.2.721.2]\nhosts:\n  t-ex01: {setup_memory_mb: 1536}\n  t-ex02: {setup_memory_mb: 1536}\n";

/// A WinRM transport to lab host `idx`, logged on as the lab's user.
pub(crate) async fn winrm_to(lab: &Lab, idx: usize) -> std::sync::Arc<dyn Transport> {
    let address = lab.fleet.core().address(idx);
    let vars = serde_json::json!({
        "ansible_host": address.ip().to_string(),
        "ansible_port": address.port(),
        "ansible_connection": "winrm",
        "ansible_winrm_transport": "ntlm",
        "ansible_winrm_scheme": "http",
        "ansible_user": lab.fleet.core().credentials().0,
        "ansible_password": crate::lab_support::PASSWORD,
    });
    let name = lab.fleet.core().name(idx).to_string();
    let spec = HostSettings::read(&name, vars.as_object().unwrap())
        .unwrap()
        .connection;
    WinrmConnector.connect(&spec).await.unwrap()
}

/// The CU to 2019 CU15, downloaded by the host itself (no share: no double hop).
pub(crate) fn cu15() -> Script {
    let request = UpdateRequest {
        kind: UpdateKind::Cu,
        source: "https://media.lab.test/ExchangeServer2019-x64-CU15.iso".into(),
        sha256: "ab".repeat(32),
        kb: "KB5042461".into(),
        target_build: "15.2.1748.10".into(),
        license_switch: Some("/IAcceptExchangeServerLicenseTerms_DiagnosticDataOFF".into()),
        keep_packages: false,
        proxy: None,
        dotnet_release: None,
        server_pin: None,
    };
    Script::shipped(
        "exchange_update",
        shipped_text(ScriptId::ExchangeUpdate),
        serde_json::to_value(&request).unwrap(),
    )
}

/// MaxMemoryPerShellMB (1,024 MB by default): Setup run inside a WinRM shell is stopped when
/// its processes grow past the quota — before WinRM's own restart gets to it — and leaves the
/// server broken (Setup's log unfinished, services Disabled). salve's detached Setup, a
/// scheduled task, has no such quota: the same CU on the second server installs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_in_a_winrm_shell_is_stopped_at_the_memory_quota_and_a_detached_one_is_not() {
    let lab = Lab::start(211, BIG_SETUP).await;
    let transport = winrm_to(&lab, 0).await;
    let ran = transport
        .run(RunRequest::new(cu15(), Duration::from_secs(60)))
        .await;
    let log = lab.fleet.log();
    let count = |host: &str, f: &dyn Fn(&LabEvent) -> bool| log.count(host, f);
    assert_eq!(
        count("t-ex01", &|e| matches!(
            e,
            LabEvent::ShellMemoryQuotaExceeded {
                quota_mb: 1024,
                used_mb: 1536
            }
        )),
        1,
        "{ran:?}"
    );
    assert_eq!(
        count("t-ex01", &|e| matches!(e, LabEvent::WinRmRestarted { .. })),
        0
    );
    assert_eq!(
        count("t-ex01", &|e| matches!(
            e,
            LabEvent::InstallFailed { reason, .. } if reason.contains("Setup was interrupted")
        )),
        1,
        "{ran:?}"
    );
    let state = lab.fleet.state("t-ex01").unwrap();
    assert!(state.services.iter().any(|s| s.start_type == "Disabled"));

    let inventory = lab.inventory().write();
    let playbook = lab.write(
        "cu.yml",
        "- hosts: t-ex02\n  tasks:\n    - name: update\n      exchange_update:\n        target: path\n        sources: \"{{ salve_update_sources }}\"\n        license_switch: \"{{ salve_license_switch | default(none) }}\"\n        ad_prepared: true\n",
    );
    let (code, _, all) = salve_run(&playbook, &inventory, &[]).await;
    assert_eq!(code, 0, "{all}");
    let log = lab.fleet.log();
    assert_eq!(
        log.count("t-ex02", |e| matches!(
            e,
            LabEvent::ShellMemoryQuotaExceeded { .. }
        )),
        0
    );
    assert_eq!(
        log.count("t-ex02", |e| matches!(e, LabEvent::Installed { .. })),
        1,
        "{all}"
    );
}

/// IdleTimeout (7,200,000 ms by default; 600 ms here): a shell nobody uses any more — the
/// controller was killed, the connection is gone — is deleted with the processes in it, so a
/// Setup started inside it dies half-way (here before Setup's own WinRM restart). The same CU
/// registered as a scheduled task outlives its shell's expiry and installs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_in_a_shell_left_idle_dies_with_it_and_a_detached_one_does_not() {
    use salve_lab::host_api::{ProtocolEvent, SimHost};
    use salve_lab::winrm::{ListenerConfig, Quotas, WinrmListener};
    use tokio_util::sync::CancellationToken;

    let fleet = crate::lab_support::fleet(
        "seed: 5\ntime_scale: 600\ntenants:\n  - name: t\n    hosts: 2\n    builds: [15.2.721.2]\n",
    );
    let shutdown = CancellationToken::new();
    let idle = Duration::from_millis(600);
    let mut transports = Vec::new();
    for (i, host) in fleet.hosts().iter().enumerate() {
        let sim: std::sync::Arc<dyn SimHost> = std::sync::Arc::clone(host) as _;
        let config = ListenerConfig {
            quotas: Quotas {
                idle_timeout: idle,
                ..Quotas::default()
            },
            ..ListenerConfig::default()
        };
        let addr = std::net::SocketAddr::from(([127, 212, 0, 1 + i as u8], 0));
        let listener = WinrmListener::bind(addr, sim, config).await.unwrap();
        let port = listener
            .endpoint()
            .rsplit(':')
            .next()
            .unwrap()
            .trim_end_matches("/wsman")
            .to_string();
        tokio::spawn(listener.serve(shutdown.clone()));
        let vars = serde_json::json!({
            "ansible_host": addr.ip().to_string(),
            "ansible_port": port.parse::<u16>().unwrap(),
            "ansible_connection": "winrm",
            "ansible_winrm_transport": "ntlm",
            "ansible_winrm_scheme": "http",
            "ansible_user": fleet.core().credentials().0,
            "ansible_password": crate::lab_support::PASSWORD,
        });
        let spec = HostSettings::read(host.name(), vars.as_object().unwrap())
            .unwrap()
            .connection;
        transports.push(WinrmConnector.connect(&spec).await.unwrap());
    }

    // In the shell: the client goes away a moment after starting Setup (as a killed
    // controller does), and never comes back.
    let gone = tokio::time::timeout(
        Duration::from_millis(300),
        transports[0].run(RunRequest::new(cu15(), Duration::from_secs(60))),
    )
    .await;
    assert!(gone.is_err(), "Setup finished in 300 ms: {gone:?}");
    // As a task: registered under the lab's account, then nobody asks for 3 idle timeouts.
    use base64::Engine as _;
    let (user, password) = fleet.core().credentials();
    let start = serde_json::json!({"action": "start", "job": "salve-idle-test",
        "script_id": "exchange_update",
        "script": base64::engine::general_purpose::STANDARD.encode(cu15().render()),
        "become_user": user, "become_password": password});
    let control = Script::shipped("job_control", shipped_text(ScriptId::JobControl), start);
    let started = transports[1]
        .run(RunRequest::new(control, Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(started.stdout.contains("\"started\":true"), "{started:?}");
    tokio::time::sleep(idle * 3).await;

    let log = fleet.log();
    let expired = |host: &str| {
        log.count(host, |e| {
            matches!(
                e,
                LabEvent::Protocol {
                    event: ProtocolEvent::ShellExpired { .. }
                }
            )
        })
    };
    assert!(expired("t-ex01") >= 1 && expired("t-ex02") >= 1);
    // The shell's expiry killed Setup, not Setup's own WinRM restart later on.
    assert_eq!(
        log.count("t-ex01", |e| matches!(e, LabEvent::WinRmRestarted { .. })),
        0
    );
    assert_eq!(
        log.count("t-ex01", |e| matches!(
            e,
            LabEvent::InstallFailed { reason, .. } if reason.contains("Setup was interrupted")
        )),
        1
    );
    assert!(
        fleet
            .core()
            .state(0)
            .services
            .iter()
            .any(|s| s.start_type == "Disabled")
    );
    // The task goes on: Setup finishes on its own (6 s of real time in all).
    let began = std::time::Instant::now();
    while fleet
        .log()
        .count("t-ex02", |e| matches!(e, LabEvent::Installed { .. }))
        == 0
    {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the task never finished"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        fleet
            .log()
            .count("t-ex02", |e| matches!(e, LabEvent::InstallFailed { .. })),
        0
    );
    shutdown.cancel();
}
