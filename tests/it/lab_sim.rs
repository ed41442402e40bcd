//! The lab's simulation, driven through the same seam the protocol front ends use
//! (`SimHost::spawn`), with paused tokio time; plus the `salve lab` binary for the SSH
//! ForceCommand mode.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::lab_support::spawn_delivered;
use salve::contract::*;
use salve::script::{Deliver as _, Delivery, Script, extract_result};
use salve_lab::fleet::{Fleet, LabHost};
use salve_lab::host_api::SimHost;
use salve_lab::inventory::{self, PasswordIn};
use salve_lab::log::LabEvent;
use salve_lab::process::collect;
use salve_lab::scenario;
use serde_json::{Value, json};

const SCENARIO: &str = "\
seed: 11
time_scale: 60
tenants:
  - name: contoso
    hosts: 4
    builds: [15.2.792.3]
    dags:
      - {name: contoso-dag1, members: 3, databases: 3}
  - name: fabrikam
    hosts: 3
    builds: [15.1.2176.2]
hosts:
  contoso-ex04: {compromised: true}
  fabrikam-ex01: {faults: {install_failure: aborted}}
  fabrikam-ex02: {faults: {unreachable: true, wrong_credentials: true, latency_ms: 250, drop_mid_command: 2}}
  fabrikam-ex03: {build: 15.1.2106.2, pending_reboot: true}
  contoso-ex03: {faults: {non_elevated_su: true}}
";

fn fleet() -> Fleet {
    crate::lab_support::fleet(SCENARIO)
}

fn host<'a>(fleet: &'a Fleet, name: &str) -> &'a Arc<LabHost> {
    fleet.host(name).unwrap()
}

struct Run {
    stdout: String,
    stderr: String,
    code: i32,
}

impl Run {
    fn answer<T: serde::de::DeserializeOwned>(&self) -> T {
        let value = extract_result(&self.stdout)
            .expect("a result line")
            .unwrap();
        serde_json::from_value(value).unwrap()
    }
}

async fn run(host: &LabHost, script: Script) -> Run {
    let process = spawn_delivered(host, &script);
    let (out, err, code) = collect(process).await;
    Run {
        stdout: String::from_utf8(out).unwrap(),
        stderr: String::from_utf8(err).unwrap(),
        code,
    }
}

async fn shipped(host: &LabHost, id: ScriptId, args: Value) -> Run {
    run(
        host,
        Script::shipped(id.as_str(), "throw 'the lab runs its own simulation'", args),
    )
    .await
}

async fn facts(host: &LabHost) -> FactsAnswer {
    shipped(host, ScriptId::ExchangeFacts, json!({}))
        .await
        .answer()
}

fn su(kb: &str, target: &str) -> Value {
    json!({"kind": "su", "source": "https://media.lab.test/updates/x.msp", "sha256": "ab".repeat(32), "kb": kb, "target_build": target})
}

#[tokio::test(start_paused = true)]
async fn same_seed_gives_the_same_fleet_and_inventory() {
    let a = inventory::render(&fleet(), &PasswordIn::ClearText);
    let b = inventory::render(&fleet(), &PasswordIn::ClearText);
    assert_eq!(a, b);
    assert!(
        a.contains("    contoso:\n      vars:\n        salve_tenant: \"contoso\"\n"),
        "{a}"
    );
    assert!(
        a.contains(
            "        contoso-dag1:\n          vars:\n            salve_dag: \"contoso-dag1\"\n"
        ),
        "{a}"
    );
    assert!(
        a.contains("          ansible_host: 127.0.1.1\n          ansible_port: 5985\n"),
        "{a}"
    );
    assert!(!a.contains("127.0.0.1"));
    let with_ref = inventory::render(
        &fleet(),
        &PasswordIn::Reference("env:SALVE_LAB_PASSWORD".into()),
    );
    assert!(with_ref.contains("ansible_password: \"env:SALVE_LAB_PASSWORD\""));
    assert!(!with_ref.contains(scenario::DEFAULT_PASSWORD));
    // The default mix too, and a different seed gives a different fleet.
    let d1 = scenario::default_scenario(20, 5).unwrap();
    assert_eq!(d1, scenario::default_scenario(20, 5).unwrap());
    assert_ne!(d1.hosts, scenario::default_scenario(20, 6).unwrap().hosts);
    let shipped_demo = scenario::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scenarios/lab-demo.yml"
    )));
    assert_eq!(shipped_demo.unwrap().hosts.len(), 7);
}

#[tokio::test(start_paused = true)]
async fn faults_reach_the_front_end_seam() {
    let fleet = fleet();
    let bad = host(&fleet, "fabrikam-ex02");
    assert!(!bad.accepting());
    let f = bad.faults();
    assert!(f.reject_auth);
    assert_eq!(f.latency, Duration::from_millis(250));
    assert_eq!(f.drop_mid_command, Some(2));
    let good = host(&fleet, "fabrikam-ex01");
    assert!(good.accepting());
    assert_eq!(good.faults(), Default::default());
    assert_eq!(
        good.credentials(),
        (scenario::DEFAULT_USER, scenario::DEFAULT_PASSWORD)
    );
}

#[tokio::test(start_paused = true)]
async fn su_install_changes_the_build_only_after_the_reboot() {
    let fleet = fleet();
    let ex = host(&fleet, "contoso-ex01");
    let before = facts(ex).await;
    assert_eq!(before.build.as_deref(), Some("15.2.792.3"));
    assert!(before.installed_kbs.is_empty());
    let mut boots = ex.boot_watch();

    let started = tokio::time::Instant::now();
    let r = shipped(ex, ScriptId::ExchangeUpdate, su("KB5000871", "15.2.792.10")).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let answer: UpdateAnswer = r.answer();
    assert!(answer.success && answer.reboot_required, "{answer:?}");
    assert_eq!(answer.exit_code, 3010);
    // 30 simulated minutes at x60 = 30 real seconds (paused clock).
    assert_eq!(started.elapsed(), Duration::from_secs(30));

    let mid = facts(ex).await;
    assert_eq!(
        mid.build.as_deref(),
        Some("15.2.792.3"),
        "files are replaced at the restart"
    );
    assert_eq!(mid.installed_kbs, ["KB5000871"]);
    assert!(!mid.pending_reboot.is_empty());
    assert!(
        mid.uninstall_entries[0]
            .starts_with("Security Update for Exchange Server 2019 Cumulative Update 8")
    );

    let r: RebootAnswer = shipped(ex, ScriptId::Reboot, json!({})).await.answer();
    assert_eq!(r.boot_id_before, before.boot_id);
    boots.changed().await.unwrap();
    assert!(!ex.accepting(), "down while restarting");
    tokio::time::sleep(Duration::from_secs(9 * 60 / 60)).await;
    assert!(ex.accepting(), "back after the (scaled) restart time");
    let after = facts(ex).await;
    assert_eq!(after.build.as_deref(), Some("15.2.792.10"));
    assert_ne!(after.boot_id, before.boot_id);
    assert!(after.pending_reboot.is_empty());

    // Running the same update again changes nothing, and the log proves a single install.
    let again: UpdateAnswer = shipped(ex, ScriptId::ExchangeUpdate, su("KB5000871", "15.2.792.10"))
        .await
        .answer();
    assert!(again.success && again.already_installed && !again.reboot_required);
    assert_eq!(fleet.log().installs("contoso-ex01", "KB5000871"), 1);
    assert_eq!(fleet.log().reboots("contoso-ex01"), 1);
    assert_eq!(
        fleet.log().count("contoso-ex01", |e| matches!(
            e,
            LabEvent::BuildChanged { .. }
        )),
        1
    );
    assert_eq!(fleet.log().installs("contoso-ex02", "KB5000871"), 0);
    let verify: VerifyAnswer = shipped(
        ex,
        ScriptId::ExchangeVerify,
        json!({"expected_build": "15.2.792.10", "expected_kb": "KB5000871"}),
    )
    .await
    .answer();
    assert!(verify.success, "{verify:?}");
}

#[tokio::test(start_paused = true)]
async fn su_for_another_cu_fails_like_msiexec() {
    let fleet = fleet();
    let ex = host(&fleet, "contoso-ex02");
    let r = shipped(ex, ScriptId::ExchangeUpdate, su("KB5001779", "15.2.858.10")).await;
    assert_eq!(r.code, 1);
    let a: UpdateAnswer = r.answer();
    assert_eq!(a.exit_code, 1642);
    assert!(!a.success);
    assert!(
        a.log_excerpt[0]
            .starts_with("The upgrade patch cannot be installed by the Windows Installer service")
    );
    assert!(r.stderr.starts_with("#< CLIXML"), "{}", r.stderr);
    assert_eq!(facts(ex).await.build.as_deref(), Some("15.2.792.3"));
    assert_eq!(
        fleet.log().count("contoso-ex02", |e| matches!(
            e,
            LabEvent::InstallFailed {
                exit_code: 1642,
                ..
            }
        )),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn cu_setup_checks_prerequisites_and_aborted_runs_leave_services_disabled() {
    let fleet = fleet();
    let cu = |switch: &str| {
        json!({"kind": "cu", "source": "D:\\", "sha256": "cd".repeat(32), "kb": "KB5003611",
               "target_build": "15.1.2308.8", "license_switch": switch})
    };
    // A pending reboot blocks Setup.
    let pending = host(&fleet, "fabrikam-ex03");
    let a: UpdateAnswer = shipped(
        pending,
        ScriptId::ExchangeUpdate,
        cu("/IAcceptExchangeServerLicenseTerms"),
    )
    .await
    .answer();
    assert!(!a.success);
    assert!(a.reason.unwrap().contains("RebootPending"));
    assert!(
        a.log_excerpt
            .iter()
            .any(|l| l.ends_with("Evaluated [Rule:RebootPending] [Value:\"True\"]"))
    );
    assert!(
        a.log_excerpt
            .last()
            .unwrap()
            .contains("The Exchange Server setup operation didn't complete.")
    );

    // A CU from September 2021 wants the diagnostic-data form of the license switch.
    let ok_host = host(&fleet, "contoso-ex03");
    let cu11 = json!({"kind": "cu", "source": "D:\\", "sha256": "cd".repeat(32), "kb": "KB5005334",
                      "target_build": "15.2.986.5", "license_switch": "/IAcceptExchangeServerLicenseTerms"});
    let a: UpdateAnswer = shipped(ok_host, ScriptId::ExchangeUpdate, cu11)
        .await
        .answer();
    assert!(a.reason.unwrap().contains("_DiagnosticDataOFF"));

    // The scenario's aborted install: services stay Disabled, verify reports it.
    let broken = host(&fleet, "fabrikam-ex01");
    let r = shipped(
        broken,
        ScriptId::ExchangeUpdate,
        cu("/IAcceptExchangeServerLicenseTerms"),
    )
    .await;
    assert_eq!(r.code, 1);
    let v: VerifyAnswer = shipped(broken, ScriptId::ExchangeVerify, json!({}))
        .await
        .answer();
    assert!(!v.success);
    assert!(
        v.disabled_services.contains(&"MSExchangeIS".to_string()),
        "{v:?}"
    );
    assert_eq!(facts(broken).await.build.as_deref(), Some("15.1.2176.2"));

    // A successful CU: success line in the log, build after the restart, old SU entries gone.
    let ex = host(&fleet, "contoso-ex04");
    let to_cu9 = json!({"kind": "cu", "source": "D:\\", "sha256": "cd".repeat(32), "kb": "KB4602570",
                        "target_build": "15.2.858.5", "license_switch": "/IAcceptExchangeServerLicenseTerms"});
    let started = tokio::time::Instant::now();
    let a: UpdateAnswer = shipped(ex, ScriptId::ExchangeUpdate, to_cu9).await.answer();
    assert!(a.success, "{a:?}");
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(60),
        "60 simulated minutes at x60"
    );
    assert!(
        a.log_excerpt
            .last()
            .unwrap()
            .ends_with("The Exchange Server setup operation completed successfully.")
    );
}

#[tokio::test(start_paused = true)]
async fn killing_an_install_leaves_the_server_half_done() {
    let fleet = fleet();
    let ex = host(&fleet, "contoso-ex02");
    let script = Script::shipped("exchange_update", "", su("KB5000871", "15.2.792.10"));
    let process = spawn_delivered(ex.as_ref(), &script);
    tokio::time::sleep(Duration::from_secs(5)).await;
    process.kill.cancel();
    let (_, _, code) = collect(process).await;
    assert_eq!(code as u32, 0xC000_013A);
    let state = fleet.state("contoso-ex02").unwrap();
    assert!(state.services.iter().any(|s| s.start_type == "Disabled"));
    assert_eq!(state.pending_build, None);
    assert_eq!(fleet.log().installs("contoso-ex02", "KB5000871"), 0);
}

#[tokio::test(start_paused = true)]
async fn maintenance_moves_databases_and_restores_the_policy() {
    let fleet = fleet();
    let ex1 = host(&fleet, "contoso-ex01");
    let actives = |name: &str| {
        fleet
            .state(name)
            .unwrap()
            .copies
            .iter()
            .filter(|c| c.active)
            .count()
    };
    assert_eq!(actives("contoso-ex01"), 1);
    let enter: MaintenanceAnswer = shipped(
        ex1,
        ScriptId::ExchangeMaintenance,
        json!({"action": "enter", "redirect_target": "contoso-ex03.contoso.local"}),
    )
    .await
    .answer();
    assert!(enter.success && enter.changed, "{enter:?}");
    let record = enter.record.clone().unwrap();
    assert_eq!(record.activation_policy.as_deref(), Some("Unrestricted"));
    assert!(!record.already_in_maintenance);
    assert_eq!(enter.activation_policy.as_deref(), Some("Blocked"));
    assert_eq!(enter.cluster_node_state.as_deref(), Some("Paused"));
    assert_eq!(enter.moved_databases.len(), 1);
    // StartDagServerMaintenance picks the copy to activate, not the redirect target.
    assert_ne!(enter.moved_databases[0].to, "contoso-ex01");
    assert!(enter.gates.no_active_copies && enter.gates.components_as_expected);
    assert_eq!(actives("contoso-ex01"), 0);
    assert_eq!(actives("contoso-ex02") + actives("contoso-ex03"), 3);
    let active: Vec<String> = enter
        .component_states
        .iter()
        .filter(|c| c.state == "Active")
        .map(|c| c.component.clone())
        .collect();
    assert_eq!(active, ["Monitoring", "RecoveryActionsEnabled"]);

    // Entering again is a no-op.
    let again: MaintenanceAnswer = shipped(
        ex1,
        ScriptId::ExchangeMaintenance,
        json!({"action": "enter"}),
    )
    .await
    .answer();
    assert!(!again.changed);

    // Leaving without the controller's copy uses the record kept on the host.
    let leave: MaintenanceAnswer = shipped(
        ex1,
        ScriptId::ExchangeMaintenance,
        json!({"action": "leave"}),
    )
    .await
    .answer();
    assert!(leave.success, "{leave:?}");
    assert_eq!(leave.activation_policy.as_deref(), Some("Unrestricted"));
    assert!(
        leave
            .steps
            .iter()
            .any(|s| s == "StopDagServerMaintenance.ps1")
    );
    // Leaving again, with the controller's record, finds nothing held: no step, no restart.
    let again: MaintenanceAnswer = shipped(
        ex1,
        ScriptId::ExchangeMaintenance,
        json!({"action": "leave", "record": record}),
    )
    .await
    .answer();
    assert!(
        again.success && !again.changed && again.steps.is_empty(),
        "{again:?}"
    );
    assert_eq!(
        fleet.log().count("contoso-ex01", |e| matches!(
            e,
            LabEvent::TransportRestarted
        )),
        2,
        "once entering, once leaving"
    );
    assert_eq!(leave.cluster_node_state.as_deref(), Some("Up"));
    assert!(
        fleet
            .state("contoso-ex01")
            .unwrap()
            .inactive_components()
            .is_empty()
    );
    assert_eq!(
        fleet.log().count("contoso-ex01", |e| matches!(
            e,
            LabEvent::DatabaseMoved { .. }
        )),
        1
    );
    assert_eq!(
        fleet.log().count("contoso-ex01", |e| matches!(
            e,
            LabEvent::MaintenanceLeft { .. }
        )),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn mitigation_and_ioc_scan() {
    let fleet = fleet();
    let ex = host(&fleet, "contoso-ex04");
    let a: MitigateAnswer = shipped(
        ex,
        ScriptId::ExchangeMitigate,
        json!({"action": "apply", "mitigations": ["eomt-cve-2021-26855"]}),
    )
    .await
    .answer();
    assert!(a.changed && a.success);
    assert_eq!(
        a.rules_present,
        [
            "X-AnonResource-Backend Abort - inbound",
            "X-BEResource Abort - inbound"
        ]
    );
    let b: MitigateAnswer = shipped(
        ex,
        ScriptId::ExchangeMitigate,
        json!({"action": "apply", "mitigations": ["eomt-cve-2021-26855"]}),
    )
    .await
    .answer();
    assert!(!b.changed);
    assert_eq!(facts(ex).await.mitigation_rules.len(), 2);
    let c: MitigateAnswer = shipped(
        ex,
        ScriptId::ExchangeMitigate,
        json!({"action": "remove", "mitigations": ["eomt-cve-2021-26855"]}),
    )
    .await
    .answer();
    assert!(c.changed && c.rules_present.is_empty());
    let bad = shipped(
        ex,
        ScriptId::ExchangeMitigate,
        json!({"action": "apply", "mitigations": ["eomt-cve-2021-26855"], "extra": 1}),
    )
    .await;
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("exchange_mitigate contract"));

    let scan: IocScanAnswer = shipped(ex, ScriptId::ExchangeIocScan, json!({}))
        .await
        .answer();
    assert!(scan.compromised);
    let kinds: Vec<(&str, &str)> = scan
        .findings
        .iter()
        .map(|f| (f.cve.as_str(), f.kind.as_str()))
        .collect();
    for want in [
        ("CVE-2021-26855", "ssrf_request"),
        ("CVE-2021-26857", "um_invalid_cast"),
        ("CVE-2021-26858", "oab_download_failed"),
        ("CVE-2021-27065", "ecp_reset_vdir"),
        ("CVE-2021-27065", "ecp_vdir_script"),
        ("other", "web_shell"),
        ("other", "lsass_dump"),
        ("other", "suspicious_archive"),
    ] {
        assert!(kinds.contains(&want), "{want:?} missing from {kinds:?}");
    }
    let shell = scan
        .findings
        .iter()
        .find(|f| f.kind == "web_shell")
        .unwrap();
    assert_eq!(shell.evidence[0].sha256.as_ref().unwrap().len(), 64);
    assert_eq!(scan.log_age_days["HttpProxy\\Owa"], 30);

    let clean: IocScanAnswer = shipped(
        host(&fleet, "contoso-ex01"),
        ScriptId::ExchangeIocScan,
        json!({}),
    )
    .await
    .answer();
    assert!(!clean.compromised && clean.findings.is_empty(), "{clean:?}");
}

#[tokio::test(start_paused = true)]
async fn health_reports_copies_for_gates() {
    let fleet = fleet();
    let h: HealthAnswer = shipped(
        host(&fleet, "contoso-ex02"),
        ScriptId::ExchangeHealth,
        json!(null),
    )
    .await
    .answer();
    assert_eq!(h.dag.as_deref(), Some("contoso-dag1"));
    assert_eq!(h.copies.len(), 3);
    assert!(h.all_copies_healthy);
    assert!(h.copies.iter().any(|c| c.status == "Mounted"));
    let b: BootIdAnswer = shipped(host(&fleet, "contoso-ex02"), ScriptId::BootId, json!(null))
        .await
        .answer();
    assert!(b.uptime_seconds >= 24 * 3600);
}

#[tokio::test(start_paused = true)]
async fn powershell_subset_answers_like_windows() {
    let fleet = fleet();
    let ex = host(&fleet, "contoso-ex01");
    let r = run(ex, Script::raw("Write-Output 'a'; echo \"host=$env:COMPUTERNAME kb=$($SalveArgs.kb)\"\nWrite-Host hi -ForegroundColor Green\n$PSVersionTable.PSVersion.Major")
        .with_args(json!({"kb": "KB5000871"}))).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "a\r\nhost=contoso-ex01 kb=KB5000871\r\nhi\r\n5\r\n"
    );
    assert_eq!(r.stderr, "");

    let r = run(
        ex,
        Script::raw("Write-Output before\nGet-ExchangeServer\nWrite-Output after"),
    )
    .await;
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stdout, "before\r\n",
        "the prelude's Stop preference ends the script"
    );
    assert!(
        r.stderr
            .starts_with("#< CLIXML\r\n<Objs Version=\"1.1.0.1\""),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("The term 'Get-ExchangeServer' is not recognized as the name of a cmdlet, function, script file, or operable program."));
    assert!(r.stderr.contains("At line:2 char:1"), "{}", r.stderr);

    let r = run(
        ex,
        Script::raw("$ErrorActionPreference = 'Continue'\nFoo-Bar\nWrite-Output after"),
    )
    .await;
    assert_eq!((r.code, r.stdout.as_str()), (1, "after\r\n"));

    let r = run(ex, Script::raw("Write-Error 'disk full'")).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("disk full") && r.stderr.contains("WriteErrorException"));

    let r = run(ex, Script::raw("hostname; exit 7")).await;
    assert_eq!((r.code, r.stdout.as_str()), (7, "contoso-ex01\r\n"));

    let before = fleet.core().clock.now();
    let real = tokio::time::Instant::now();
    let r = run(
        ex,
        Script::raw("Start-Sleep -Seconds 120; Start-Sleep -Milliseconds 60000"),
    )
    .await;
    assert_eq!(r.code, 0);
    assert_eq!(
        real.elapsed(),
        Duration::from_secs(3),
        "180 simulated seconds at x60"
    );
    assert!(fleet.core().clock.now().duration_since(before).as_secs() >= 180);

    // Large scripts arrive on stdin (-Command -) and run the same way.
    let big = format!("{}exit 3", "Write-Output 'x'\n".repeat(700));
    let r = run(ex, Script::raw(big)).await;
    assert_eq!(r.code, 3);
    assert_eq!(r.stdout.lines().count(), 700);

    let p = ex.spawn("ipconfig.exe", &[]);
    let (_, err, code) = collect(p).await;
    assert_eq!(code, 1);
    assert!(
        String::from_utf8(err)
            .unwrap()
            .contains("is not recognized as an internal or external command")
    );
}

#[tokio::test]
async fn admin_endpoint_serves_state_and_log() {
    let fleet = Arc::new(fleet());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    tokio::spawn(salve_lab::admin::serve(
        listener,
        Arc::clone(&fleet),
        cancel.clone(),
    ));
    shipped(
        host(&fleet, "contoso-ex01"),
        ScriptId::ExchangeMitigate,
        json!({"action": "apply", "mitigations": ["eomt-cve-2021-26855"]}),
    )
    .await;
    let state: Value = serde_json::from_str(
        &salve_lab::admin::fetch(addr, "/state?host=contoso-ex01")
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(state["hosts"].as_array().unwrap().len(), 1);
    assert_eq!(
        state["hosts"][0]["rewrite_rules"].as_array().unwrap().len(),
        2
    );
    let log: Value =
        serde_json::from_str(&salve_lab::admin::fetch(addr, "/log").await.unwrap()).unwrap();
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"]["kind"] == "mitigation_applied")
    );
    assert!(salve_lab::admin::fetch(addr, "/nope").await.is_err());
    cancel.cancel();
}

fn salve_bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_salve"))
}

fn ssh_command(dir: &Path, host: &str, script: &Script) -> std::process::Output {
    use std::io::Write as _;
    let Delivery {
        program,
        arguments,
        stdin,
    } = script.delivery();
    let mut child = salve_bin()
        .args(["lab", "shell", "--state-dir"])
        .arg(dir)
        .args(["--host", host])
        .env("SSH_ORIGINAL_COMMAND", format!("{program} {arguments}"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Dropping the pipe closes it: the bootstrap reads to its end.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn force_command_round_trip_keeps_state_between_processes() {
    let dir = tempfile::tempdir().unwrap();
    let scenario_file = dir.path().join("s.yml");
    std::fs::write(&scenario_file, SCENARIO).unwrap();
    let state = dir.path().join("state");
    let init = salve_bin()
        .args(["lab", "init", "--state-dir"])
        .arg(&state)
        .arg("--scenario")
        .arg(&scenario_file)
        .args(["--time-scale", "100000"])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );

    let out = ssh_command(
        &state,
        "contoso-ex01",
        &Script::raw("Write-Output $env:COMPUTERNAME; exit 4"),
    );
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "contoso-ex01\r\n");

    let apply = Script::shipped(
        "exchange_mitigate",
        "",
        json!({"action": "apply", "mitigations": ["eomt-cve-2021-26855"]}),
    );
    let out = ssh_command(&state, "contoso-ex01", &apply);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let facts = ssh_command(
        &state,
        "contoso-ex01",
        &Script::shipped("exchange_facts", "", json!({})),
    );
    let f: FactsAnswer = serde_json::from_value(
        extract_result(&String::from_utf8_lossy(&facts.stdout))
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        f.mitigation_rules.len(),
        2,
        "state persisted between SSH commands"
    );

    let out = ssh_command(&state, "contoso-ex01", &Script::raw("Get-Mailbox"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("#< CLIXML"));

    let down = ssh_command(&state, "fabrikam-ex02", &Script::raw("hostname"));
    assert_eq!(down.status.code(), Some(255));

    let saved: Value =
        serde_json::from_slice(&std::fs::read(state.join("fleet.json")).unwrap()).unwrap();
    let applied = saved["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["kind"] == "mitigation_applied")
        .count();
    assert_eq!(applied, 1);
}

#[tokio::test(start_paused = true)]
async fn non_elevated_su_install_leaves_owa_broken() {
    let fleet = fleet();
    let ex = host(&fleet, "contoso-ex03");
    let a: UpdateAnswer = shipped(ex, ScriptId::ExchangeUpdate, su("KB5000871", "15.2.792.10"))
        .await
        .answer();
    assert!(a.success, "msiexec itself reports success: {a:?}");
    let v: VerifyAnswer = shipped(ex, ScriptId::ExchangeVerify, json!({}))
        .await
        .answer();
    assert_eq!(v.owa_status, 500);
    assert!(v.owa_error.unwrap().contains("Microsoft.Exchange.Common"));
    assert!(!v.success);
}

/// Kills the child when dropped, so a failed assertion never leaves a lab serving.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_in_another_block_listens_and_writes_its_addresses() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inv.yml");
    let mut lab = KillOnDrop(
        salve_bin()
            .args(["lab", "serve", "--block", "47", "--hosts", "2"])
            .arg("--inventory-out")
            .arg(&inventory)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = std::io::BufReader::new(lab.0.stderr.take().unwrap());
    let mut seen = String::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("lab running") {
            break;
        }
    }
    assert!(seen.contains("2 hosts, 1 tenants on 127.47.x.y"), "{seen}");
    let text = std::fs::read_to_string(&inventory).unwrap();
    assert!(text.contains("ansible_host: 127.47.1.1\n"), "{text}");
    assert!(text.contains("ansible_host: 127.47.1.2\n"), "{text}");
    assert!(!text.contains("127.0."), "{text}");
    let playbook = dir.path().join("pb.yml");
    std::fs::write(
        &playbook,
        "- hosts: all\n  tasks:\n    - name: who\n      powershell: {script: 'Write-Output $env:COMPUTERNAME'}\n",
    )
    .unwrap();
    let run = salve_bin()
        .args(["run", "--json", "--all-tenants"])
        .arg(&playbook)
        .arg("-i")
        .arg(&inventory)
        .env("NO_PROXY", "127.0.0.0/8")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // Each host answered with its own name: the run reached both simulated hosts.
    let answered = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "task_finished" && e["result"]["stdout"] == e["host"])
        .count();
    assert_eq!(answered, 2, "{stdout}");
}

#[test]
fn serve_refuses_a_block_outside_1_to_254() {
    for block in ["0", "255", "x"] {
        let out = salve_bin()
            .args(["lab", "serve", "--hosts", "1", "--block", block])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "block {block}: invalid input");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--block"), "block {block}: {stderr}");
    }
}
