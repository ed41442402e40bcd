//! Every shipped script's answer, as the lab gives it, read through the contract the way salve
//! reads it (`salve_contract::answer`): no list nested by accident, every field of its type.
//! And the lab's simulations tied to the shipped text where PowerShell's list handling decides
//! the answer (`salve_lab::scripts::EMITS`).

use std::path::PathBuf;

use salve::contract::*;
use salve::script::{Script, extract_result};
use salve_lab::fleet::{Fleet, LabHost};
use salve_lab::host_api::SimHost;
use salve_lab::log::LabEvent;
use salve_lab::process::collect;
use salve_lab::scripts::{EMITS, pipeline::Emit};
use serde_json::{Value, json};

const SCENARIO: &str = "\
seed: 15
time_scale: 60
tenants:
  - name: contoso
    hosts: 3
    builds: [15.2.792.3]
    dags:
      - {name: contoso-dag1, members: 3, databases: 4}
hosts:
  contoso-ex01: {pending_reboot: true, compromised: true}
  contoso-ex02: {stale_reboot_values: true}
";

struct Answer {
    value: Value,
    stdout: String,
}

async fn shipped(host: &LabHost, id: ScriptId, args: Value) -> Answer {
    let script = Script::shipped(id.as_str(), "throw 'the lab runs its own simulation'", args);
    let process = crate::lab_support::spawn_delivered(host, &script);
    let (out, _err, _code) = collect(process).await;
    let stdout = String::from_utf8(out).unwrap();
    let value = extract_result(&stdout)
        .unwrap_or_else(|| panic!("{}: no result line in {stdout}", id.as_str()))
        .unwrap();
    Answer { value, stdout }
}

fn with_state<R>(
    fleet: &Fleet,
    name: &str,
    f: impl FnOnce(&mut salve_lab::state::HostState) -> R,
) -> R {
    let core = fleet.core();
    core.with_host(core.index(name).unwrap(), f)
}

/// Make ex02's active database active on ex01 instead; returns its name.
fn two_active_on_ex01(fleet: &Fleet) -> String {
    let db = with_state(fleet, "contoso-ex02", |s| {
        let db = s.copies.iter_mut().find(|c| c.active).unwrap();
        db.active = false;
        db.database.clone()
    });
    with_state(fleet, "contoso-ex01", |s| {
        s.copies
            .iter_mut()
            .filter(|c| c.database == db)
            .for_each(|c| c.active = true)
    });
    db
}

fn broken(fleet: &Fleet) -> Vec<String> {
    fleet
        .log()
        .entries()
        .into_iter()
        .filter_map(|e| match e.event {
            LabEvent::AnswerBroken { problem, .. } => Some(problem),
            _ => None,
        })
        .collect()
}

/// Each script's lab answer, with lists filled (a pending restart, EOMT rules, a DAG member
/// with several copies and two active databases), parses as its contract type.
#[tokio::test(start_paused = true)]
async fn every_shipped_script_answer_from_the_lab_parses() {
    let fleet = crate::lab_support::fleet(SCENARIO);
    let ex1 = fleet.host("contoso-ex01").unwrap();
    // Two active databases on ex01, so the maintenance answer has two moves to report.
    two_active_on_ex01(&fleet);
    let job_script = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .encode(Script::shipped("boot_id", "", json!({})).render())
    };
    let calls: Vec<(ScriptId, Value)> = vec![
        (ScriptId::ExchangeFacts, json!({})),
        (ScriptId::BootId, json!({})),
        (ScriptId::ExchangeHealth, json!({})),
        (ScriptId::ExchangeIocScan, json!({})),
        (
            ScriptId::ExchangeVerify,
            json!({"expected_build": "15.2.792.3"}),
        ),
        (
            ScriptId::ExchangeMitigate,
            json!({"action": "apply", "mitigations": ["eomt-cve-2021-26855"]}),
        ),
        (
            ScriptId::ExchangeMitigate,
            json!({"action": "apply", "mitigations": ["eomt-cve-2021-26855"]}),
        ),
        (ScriptId::ExchangeMaintenance, json!({"action": "enter"})),
        (
            ScriptId::ExchangeUpdate,
            json!({"kind": "su", "source": "https://media.lab.test/u/x.msp", "sha256": "ab".repeat(32),
                   "kb": "KB5000871", "target_build": "15.2.792.10"}),
        ),
        (
            ScriptId::JobControl,
            json!({"action": "start", "job": "salve-boot-id-1", "script_id": "boot_id",
                   "script": job_script}),
        ),
        (
            ScriptId::JobPoll,
            json!({"job": "salve-boot-id-1", "offset": 0}),
        ),
        (ScriptId::Reboot, json!({})),
    ];
    let mut seen = Vec::new();
    for (id, args) in calls {
        let a = shipped(ex1, id, args).await;
        if let Err(e) = salve_contract::answer::validate(id, &a.value) {
            panic!("{e}\n{}", a.stdout);
        }
        seen.push(id);
    }
    for id in ScriptId::ALL {
        assert!(seen.contains(&id), "{} not exercised", id.as_str());
    }
    assert_eq!(broken(&fleet), Vec::<String>::new());
}

/// The lab hands a function's list back the way the shipped text does; a `return , $list` in
/// the text and `Emit::Items` in the lab (or the reverse) fails here.
#[test]
fn the_lab_hands_lists_back_as_the_shipped_text_does() {
    for (id, function, emit) in EMITS {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("scripts")
            .join(format!("{}.ps1", id.as_str()));
        let text = std::fs::read_to_string(&path).unwrap();
        let start = text
            .find(&format!("function {function}"))
            .unwrap_or_else(|| panic!("{}: no function {function}", path.display()));
        // The body runs to the first line that closes a block at column 0.
        let body = &text[start..];
        let end = body.find("\n}").map_or(body.len(), |e| e + 2);
        let wraps = body[..end].contains("return ,");
        assert_eq!(
            wraps,
            emit == Emit::OneObject,
            "{function} in {}: the lab takes it as {emit:?}",
            path.display()
        );
    }
}

/// `state: absent` removes both EOMT rules, and applying twice changes nothing the second time.
#[tokio::test(start_paused = true)]
async fn mitigation_removes_every_rule_and_applies_once() {
    let fleet = crate::lab_support::fleet(SCENARIO);
    let ex = fleet.host("contoso-ex03").unwrap();
    shipped(
        ex,
        ScriptId::ExchangeMitigate,
        json!({"action": "apply", "mitigations": ["eomt-cve-2021-26855"]}),
    )
    .await;
    let again: MitigateAnswer = salve_contract::answer::parse(
        ScriptId::ExchangeMitigate,
        shipped(
            ex,
            ScriptId::ExchangeMitigate,
            json!({"action": "apply", "mitigations": ["eomt-cve-2021-26855"]}),
        )
        .await
        .value,
    )
    .unwrap();
    assert!(!again.changed, "{again:?}");
    let removed: MitigateAnswer = salve_contract::answer::parse(
        ScriptId::ExchangeMitigate,
        shipped(
            ex,
            ScriptId::ExchangeMitigate,
            json!({"action": "remove", "mitigations": ["eomt-cve-2021-26855"]}),
        )
        .await
        .value,
    )
    .unwrap();
    assert!(removed.rules_present.is_empty(), "{removed:?}");
    assert!(
        fleet
            .state("contoso-ex03")
            .unwrap()
            .rewrite_rules
            .is_empty()
    );
}

/// Entering maintenance with several active databases reports every move.
#[tokio::test(start_paused = true)]
async fn maintenance_reports_every_moved_database() {
    let fleet = crate::lab_support::fleet(SCENARIO);
    let moved_here = two_active_on_ex01(&fleet);
    let mut active: Vec<String> = with_state(&fleet, "contoso-ex01", |s| {
        s.copies
            .iter()
            .filter(|c| c.active)
            .map(|c| c.database.clone())
            .collect()
    });
    active.sort();
    assert!(active.len() >= 2, "{active:?}");
    let ex1 = fleet.host("contoso-ex01").unwrap();
    let a: MaintenanceAnswer = salve_contract::answer::parse(
        ScriptId::ExchangeMaintenance,
        shipped(
            ex1,
            ScriptId::ExchangeMaintenance,
            json!({"action": "enter"}),
        )
        .await
        .value,
    )
    .unwrap();
    assert!(a.success, "{a:?}");
    let mut dbs: Vec<String> = a
        .moved_databases
        .iter()
        .map(|m| m.database.clone())
        .collect();
    dbs.sort();
    assert_eq!(dbs, active);
    assert!(dbs.contains(&moved_here), "{dbs:?}");
}

fn su_request() -> Value {
    json!({"kind": "su", "source": "https://media.lab.test/u/x.msp", "sha256": "ab".repeat(32),
           "kb": "KB5000871", "target_build": "15.2.792.10"})
}

/// Windows Installer held by another installation for `minutes` from now on `host`.
fn installer_busy(fleet: &Fleet, host: &str, minutes: i64) {
    let until = fleet
        .core()
        .clock
        .now()
        .checked_add(jiff::SignedDuration::from_mins(minutes))
        .unwrap();
    with_state(fleet, host, |s| s.installer_busy_until = Some(until));
}

/// msiexec 1618 (another installation in progress) is waited on, and the SU then installs.
#[tokio::test(start_paused = true)]
async fn an_su_waits_for_another_installation_to_finish() {
    let fleet = crate::lab_support::fleet(SCENARIO);
    installer_busy(&fleet, "contoso-ex03", 5);
    let a = shipped(
        fleet.host("contoso-ex03").unwrap(),
        ScriptId::ExchangeUpdate,
        su_request(),
    )
    .await;
    let answer: UpdateAnswer =
        salve_contract::answer::parse(ScriptId::ExchangeUpdate, a.value).unwrap();
    assert!(answer.success, "{answer:?}\n{}", a.stdout);
    assert!(a.stdout.contains("msiexec 1618"), "{}", a.stdout);
}

/// Still blocked after the wait: 1618 reported by name, nothing installed.
#[tokio::test(start_paused = true)]
async fn an_su_blocked_past_the_wait_reports_1618_by_name() {
    let fleet = crate::lab_support::fleet(SCENARIO);
    installer_busy(&fleet, "contoso-ex03", 60);
    let a = shipped(
        fleet.host("contoso-ex03").unwrap(),
        ScriptId::ExchangeUpdate,
        su_request(),
    )
    .await;
    let answer: UpdateAnswer =
        salve_contract::answer::parse(ScriptId::ExchangeUpdate, a.value).unwrap();
    assert!(!answer.success);
    assert_eq!(answer.exit_code, 1618);
    let reason = answer.reason.unwrap();
    assert!(reason.contains("ERROR_INSTALL_ALREADY_RUNNING"), "{reason}");
    assert!(reason.contains("after waiting 15 minutes"), "{reason}");
    assert_eq!(
        fleet
            .state("contoso-ex03")
            .unwrap()
            .build
            .unwrap()
            .to_string(),
        "15.2.792.3"
    );
    // The shipped script waits the same way.
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/exchange_update.ps1"),
    )
    .unwrap();
    assert!(text.contains("$installerWaitSeconds = 900"));
    assert!(text.contains("$p.ExitCode -ne 1618"));
}

/// URL Rewrite installed with msiexec 1641 or 3010: a success that asks for a restart.
#[tokio::test(start_paused = true)]
async fn url_rewrite_installed_with_a_restart_code_is_a_success() {
    for code in [3010, 1641] {
        let fleet = crate::lab_support::fleet(SCENARIO);
        with_state(&fleet, "contoso-ex03", |s| {
            s.url_rewrite = None;
            s.msi_restart_code = Some(code);
        });
        let a = shipped(
            fleet.host("contoso-ex03").unwrap(),
            ScriptId::ExchangeMitigate,
            json!({"action": "apply", "mitigations": ["eomt-cve-2021-26855"], "rewrite_msi_source": "https://media.lab.test/u/rewrite.msi"}),
        )
        .await;
        let answer: MitigateAnswer =
            salve_contract::answer::parse(ScriptId::ExchangeMitigate, a.value).unwrap();
        assert!(answer.success, "{code}: {answer:?}");
        assert!(answer.reboot_required, "{code}");
        assert_eq!(answer.rules_present.len(), 2, "{code}");
    }
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/exchange_mitigate.ps1"),
    )
    .unwrap();
    for code in [3010, 1641] {
        assert!(text.contains(&format!("{code} {{ $script:rebootRequired = $true }}")));
    }
}

/// A pending restart is decided by the values: an empty rename list and `Flags` of 0, left
/// behind after the last restart, do not make the server "pending" (for facts and verify).
#[tokio::test(start_paused = true)]
async fn leftover_reboot_values_with_nothing_pending_are_not_a_pending_restart() {
    let fleet = crate::lab_support::fleet(SCENARIO);
    assert_eq!(
        fleet
            .state("contoso-ex02")
            .unwrap()
            .idle_reboot_values
            .len(),
        2
    );
    let ex = fleet.host("contoso-ex02").unwrap();
    let facts: FactsAnswer = salve_contract::answer::parse(
        ScriptId::ExchangeFacts,
        shipped(ex, ScriptId::ExchangeFacts, json!({})).await.value,
    )
    .unwrap();
    assert_eq!(facts.pending_reboot, Vec::<String>::new());
    let verify: VerifyAnswer = salve_contract::answer::parse(
        ScriptId::ExchangeVerify,
        shipped(ex, ScriptId::ExchangeVerify, json!({})).await.value,
    )
    .unwrap();
    assert_eq!(verify.pending_reboot, Vec::<String>::new());
    // The shipped scripts read the values.
    for script in ["exchange_facts", "exchange_verify", "exchange_update"] {
        let text = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("scripts/{script}.ps1")),
        )
        .unwrap();
        assert!(text.contains("[int] $flags -ne 0"), "{script}");
        assert!(text.contains("$renames.Count -gt 0"), "{script}");
    }
}

/// OWA behind AD FS (302 to the sign-in page) or with Windows authentication (401) is healthy;
/// a 500 is not. Judged alike by the script (lab) and by salve's contract rule.
#[tokio::test(start_paused = true)]
async fn owa_behind_adfs_or_windows_authentication_verifies() {
    use salve_lab::state::OwaAuth;
    for (auth, status) in [(OwaAuth::Adfs, 302), (OwaAuth::Windows, 401)] {
        let fleet = crate::lab_support::fleet(SCENARIO);
        with_state(&fleet, "contoso-ex03", |s| s.owa_auth = auth);
        let ex = fleet.host("contoso-ex03").unwrap();
        let v: VerifyAnswer = salve_contract::answer::parse(
            ScriptId::ExchangeVerify,
            shipped(ex, ScriptId::ExchangeVerify, json!({})).await.value,
        )
        .unwrap();
        assert_eq!(v.owa_status, status);
        assert!(v.owa_healthy() && v.success, "{auth:?}: {v:?}");
        with_state(&fleet, "contoso-ex03", |s| {
            s.owa_error = Some("broken".into())
        });
        let v: VerifyAnswer = salve_contract::answer::parse(
            ScriptId::ExchangeVerify,
            shipped(ex, ScriptId::ExchangeVerify, json!({})).await.value,
        )
        .unwrap();
        assert_eq!(v.owa_status, 500);
        assert!(!v.owa_healthy() && !v.success);
    }
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/exchange_verify.ps1"),
    )
    .unwrap();
    assert!(text.contains("($owaStatus -eq 401)"));
    assert!(text.contains("$owaLocation -notmatch 'errorFE\\.aspx'"));
}

/// An aborted update leaves Windows services Disabled besides Exchange's (WMI, Remote
/// Registry, Performance Logs & Alerts, Application Identity, IIS, filtering management):
/// facts list them and verify names each.
#[tokio::test(start_paused = true)]
async fn services_a_failed_update_disables_are_all_checked() {
    let fleet = crate::lab_support::fleet(SCENARIO);
    with_state(&fleet, "contoso-ex03", |s| {
        s.disable_services();
    });
    let ex = fleet.host("contoso-ex03").unwrap();
    let v: VerifyAnswer = salve_contract::answer::parse(
        ScriptId::ExchangeVerify,
        shipped(ex, ScriptId::ExchangeVerify, json!({})).await.value,
    )
    .unwrap();
    for name in salve_lab::state::SETUP_ALSO_DISABLES {
        assert!(
            v.disabled_services.iter().any(|d| d == name),
            "{name} missing from {:?}",
            v.disabled_services
        );
    }
    let facts: FactsAnswer = salve_contract::answer::parse(
        ScriptId::ExchangeFacts,
        shipped(ex, ScriptId::ExchangeFacts, json!({})).await.value,
    )
    .unwrap();
    for name in salve_lab::state::SETUP_ALSO_DISABLES {
        assert!(facts.services.iter().any(|s| s.name == name), "{name}");
    }
}

/// Each shipped script that reads, checks or restores services names the lab's list.
#[test]
fn the_scripts_watch_the_services_the_lab_simulates() {
    for script in ["exchange_facts", "exchange_verify", "exchange_update"] {
        let text = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("scripts/{script}.ps1")),
        )
        .unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("$salveServices = @("))
            .unwrap_or_else(|| panic!("{script}: no $salveServices list"));
        let listed: Vec<&str> = line
            .trim_start_matches("$salveServices = @(")
            .trim_end_matches(')')
            .split(',')
            .map(|x| x.trim().trim_matches('\''))
            .collect();
        assert_eq!(listed, salve_lab::scripts::WATCHED_SERVICES, "{script}");
    }
}

/// Right after a restart, Automatic (Delayed Start) services are still stopped for about two
/// minutes; verify gives them that time instead of failing.
#[tokio::test(start_paused = true)]
async fn verify_right_after_a_restart_waits_for_delayed_start_services() {
    let fleet = crate::lab_support::fleet(SCENARIO);
    with_state(&fleet, "contoso-ex03", |s| {
        s.delayed_start = vec!["MSExchangeDiagnostics".to_string()];
    });
    let ex = fleet.host("contoso-ex03").unwrap();
    let mut boots = ex.boot_watch();
    shipped(ex, ScriptId::Reboot, json!({})).await;
    boots.changed().await.unwrap();
    while !ex.accepting() {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let state = fleet.state("contoso-ex03").unwrap();
    let diag = state
        .services
        .iter()
        .find(|s| s.name == "MSExchangeDiagnostics")
        .unwrap();
    assert_eq!(diag.status, "Stopped", "the lab holds it back after boot");
    let a = shipped(ex, ScriptId::ExchangeVerify, json!({})).await;
    let v: VerifyAnswer = salve_contract::answer::parse(ScriptId::ExchangeVerify, a.value).unwrap();
    assert!(v.stopped_automatic_services.is_empty(), "{v:?}");
    assert!(v.success, "{v:?}");
    assert!(
        a.stdout.contains("waiting for Automatic services"),
        "{}",
        a.stdout
    );
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/exchange_verify.ps1"),
    )
    .unwrap();
    assert!(text.contains("$recentBootMinutes = 15") && text.contains("$serviceWaitSeconds = 300"));
}

/// A package that installed is deleted from the host (its disk space back) unless
/// `keep_packages` keeps it.
#[tokio::test(start_paused = true)]
async fn installed_packages_are_removed_unless_kept() {
    for keep in [false, true] {
        let fleet = crate::lab_support::fleet(SCENARIO);
        let before = fleet.state("contoso-ex03").unwrap().free_disk_bytes;
        let mut req = su_request();
        req["keep_packages"] = json!(keep);
        let a = shipped(
            fleet.host("contoso-ex03").unwrap(),
            ScriptId::ExchangeUpdate,
            req,
        )
        .await;
        let answer: UpdateAnswer =
            salve_contract::answer::parse(ScriptId::ExchangeUpdate, a.value).unwrap();
        assert!(answer.success, "{answer:?}");
        let state = fleet.state("contoso-ex03").unwrap();
        if keep {
            assert_eq!(state.downloads.len(), 1);
            assert!(state.free_disk_bytes < before);
        } else {
            assert!(state.downloads.is_empty(), "{:?}", state.downloads);
            assert_eq!(state.free_disk_bytes, before);
            assert!(
                a.stdout
                    .contains("Removed C:\\salve\\updates\\KB5000871.msp")
            );
        }
    }
}

fn cu_request() -> Value {
    json!({"kind": "cu", "source": "https://media.lab.test/u/cu9.iso", "sha256": "cd".repeat(32),
           "kb": "KB4602570", "target_build": "15.2.858.5",
           "license_switch": "/IAcceptExchangeServerLicenseTerms"})
}

/// An ISO left attached by an earlier run that was cut off holds its file open; the CU
/// dismounts it first and installs. Mounted images are detached when the script ends.
#[tokio::test(start_paused = true)]
async fn a_cu_installs_over_an_iso_left_mounted_by_an_earlier_run() {
    let fleet = crate::lab_support::fleet(SCENARIO);
    let iso = "C:\\salve\\updates\\KB4602570.iso";
    with_state(&fleet, "contoso-ex03", |s| {
        s.store_download(iso, 1).unwrap();
        assert_eq!(s.mount_image(iso), Some('D'));
    });
    let a = shipped(
        fleet.host("contoso-ex03").unwrap(),
        ScriptId::ExchangeUpdate,
        cu_request(),
    )
    .await;
    let answer: UpdateAnswer =
        salve_contract::answer::parse(ScriptId::ExchangeUpdate, a.value).unwrap();
    assert!(answer.success, "{answer:?}");
    assert!(
        fleet
            .state("contoso-ex03")
            .unwrap()
            .mounted_images
            .is_empty()
    );
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/exchange_update.ps1"),
    )
    .unwrap();
    assert!(text.contains("if ($stale -and $stale.Attached)"));
}

/// With automount off the mounted ISO gets no drive letter: reported as such, not as a
/// missing Setup.exe, and the image is detached again.
#[tokio::test(start_paused = true)]
async fn an_iso_without_a_drive_letter_is_reported() {
    let fleet = crate::lab_support::fleet(SCENARIO);
    with_state(&fleet, "contoso-ex03", |s| s.automount_disabled = true);
    let a = shipped(
        fleet.host("contoso-ex03").unwrap(),
        ScriptId::ExchangeUpdate,
        cu_request(),
    )
    .await;
    let answer: UpdateAnswer =
        salve_contract::answer::parse(ScriptId::ExchangeUpdate, a.value).unwrap();
    assert!(!answer.success);
    let reason = answer.reason.unwrap();
    assert!(reason.contains("got no drive letter"), "{reason}");
    let state = fleet.state("contoso-ex03").unwrap();
    assert!(state.mounted_images.is_empty());
    assert_eq!(state.build.unwrap().to_string(), "15.2.792.3");
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/exchange_update.ps1"),
    )
    .unwrap();
    assert!(text.contains("was mounted but got no drive letter"));
}

/// Installing URL Rewrite waits for another installation too, then applies the rules; still
/// blocked after the wait, 1618 is named.
#[tokio::test(start_paused = true)]
async fn url_rewrite_install_waits_for_another_installation() {
    for (minutes, installs) in [(5, true), (60, false)] {
        let fleet = crate::lab_support::fleet(SCENARIO);
        with_state(&fleet, "contoso-ex03", |s| s.url_rewrite = None);
        installer_busy(&fleet, "contoso-ex03", minutes);
        let a = shipped(
            fleet.host("contoso-ex03").unwrap(),
            ScriptId::ExchangeMitigate,
            json!({"action": "apply", "mitigations": ["eomt-cve-2021-26855"], "rewrite_msi_source": "https://media.lab.test/u/rewrite.msi"}),
        )
        .await;
        let answer: MitigateAnswer =
            salve_contract::answer::parse(ScriptId::ExchangeMitigate, a.value).unwrap();
        assert_eq!(answer.success, installs, "{answer:?}");
        assert!(a.stdout.contains("msiexec 1618"), "{}", a.stdout);
        if installs {
            assert_eq!(answer.rules_present.len(), 2);
            assert_eq!(fleet.state("contoso-ex03").unwrap().installing, None);
        } else {
            let reason = answer.reason.unwrap();
            assert!(reason.contains("ERROR_INSTALL_ALREADY_RUNNING"), "{reason}");
        }
    }
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/exchange_mitigate.ps1"),
    )
    .unwrap();
    assert!(text.contains("$p = Invoke-SalveMsiexec @('/i'"));
}

/// The CVE-2026-42897 rule the shipped script writes is the one CSS-Exchange's EOMT writes and
/// recognises (Security/src/EOMT/Mitigations/CVE-2026-42897.ps1, `TestVulnerable`): an outbound
/// rule rewriting `RESPONSE_Content_Security_Policy` to `{R:1}; script-src-attr 'none'`, behind
/// a preCondition on `{RESPONSE_CONTENT_TYPE}` `^text/html` and `{REQUEST_URI}` of OWA's shell
/// pages. EOMT and HealthChecker judge by these values, so a different string would leave the
/// server reported as unmitigated by Microsoft's own tools.
#[test]
fn the_owa_csp_rule_has_the_values_eomt_checks_for() {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/exchange_mitigate.ps1"),
    )
    .unwrap();
    for expected in [
        "$cspRule = 'EOMT OWA CSP - outbound'",
        "$cspPreCondition = 'EOMT OWA SPA HTML shell - precondition'",
        r"$cspPages = '^/owa/?($|\?|default\.aspx|projection\.aspx|readingPane\.aspx|popout\.aspx)'",
        r#"$cspValue = "{R:1}; script-src-attr 'none'""#,
        "-Name 'serverVariable' -Value 'RESPONSE_Content_Security_Policy'",
        "-Name 'type' -Value 'Rewrite'",
        "input   = '{RESPONSE_CONTENT_TYPE}'",
        "pattern = '^text/html'",
        "input   = '{REQUEST_URI}'",
        "pattern = $cspPages",
        "logicalGrouping = 'MatchAll'",
        "$owa = 'IIS:\\Sites\\Default Web Site\\owa'",
    ] {
        assert!(text.contains(expected), "missing: {expected}");
    }
}

/// The OWA rule goes on /owa's outbound rules and comes off with its preCondition; the
/// exchange_facts answer reads it back where EOMT put it, and the inbound rules are untouched.
#[tokio::test(start_paused = true)]
async fn the_owa_rule_is_written_and_removed_on_its_own() {
    let fleet = crate::lab_support::fleet(SCENARIO);
    let ex = fleet.host("contoso-ex03").unwrap();
    let csp = json!({"action": "apply", "mitigations": ["eomt-cve-2026-42897"]});
    let on: MitigateAnswer = salve_contract::answer::parse(
        ScriptId::ExchangeMitigate,
        shipped(ex, ScriptId::ExchangeMitigate, csp).await.value,
    )
    .unwrap();
    assert!(on.changed && on.success, "{on:?}");
    assert_eq!(on.rules_present, ["EOMT OWA CSP - outbound"]);
    let facts: FactsAnswer = salve_contract::answer::parse(
        ScriptId::ExchangeFacts,
        shipped(ex, ScriptId::ExchangeFacts, json!({})).await.value,
    )
    .unwrap();
    assert!(
        facts.mitigation_rules.is_empty(),
        "{:?}",
        facts.mitigation_rules
    );
    assert_eq!(
        facts.config.unwrap().outbound_rules,
        ["EOMT OWA CSP - outbound"]
    );
    let off: MitigateAnswer = salve_contract::answer::parse(
        ScriptId::ExchangeMitigate,
        shipped(
            ex,
            ScriptId::ExchangeMitigate,
            json!({"action": "remove", "mitigations": ["eomt-cve-2026-42897"]}),
        )
        .await
        .value,
    )
    .unwrap();
    assert!(off.changed && off.rules_present.is_empty(), "{off:?}");
}

/// URL Rewrite from a URL on a server that reaches the web only through a proxy: without the
/// source's proxy the download fails as Invoke-WebRequest does there; with it, the module
/// installs and the rules go on.
#[tokio::test(start_paused = true)]
async fn url_rewrite_is_downloaded_through_the_proxy_the_source_names() {
    let fleet = crate::lab_support::fleet(SCENARIO);
    with_state(&fleet, "contoso-ex03", |s| {
        s.url_rewrite = None;
        s.web_proxy = Some("http://proxy.lab.test:8080".into());
    });
    let ex = fleet.host("contoso-ex03").unwrap();
    let request = |proxy: Option<&str>| {
        let mut r = json!({"action": "apply", "mitigations": ["eomt-cve-2021-26855"],
            "rewrite_msi_source": "https://download.lab.test/rewrite_amd64_en-US.msi"});
        if let Some(p) = proxy {
            r["rewrite_msi_proxy"] = json!(p);
        }
        r
    };
    let direct: MitigateAnswer = salve_contract::answer::parse(
        ScriptId::ExchangeMitigate,
        shipped(ex, ScriptId::ExchangeMitigate, request(None))
            .await
            .value,
    )
    .unwrap();
    assert!(!direct.success, "{direct:?}");
    assert!(
        direct
            .reason
            .unwrap_or_default()
            .contains("Unable to connect to the remote server")
    );
    let proxied: MitigateAnswer = salve_contract::answer::parse(
        ScriptId::ExchangeMitigate,
        shipped(
            ex,
            ScriptId::ExchangeMitigate,
            request(Some("http://proxy.lab.test:8080")),
        )
        .await
        .value,
    )
    .unwrap();
    assert!(
        proxied.success && proxied.url_rewrite_installed,
        "{proxied:?}"
    );
}
