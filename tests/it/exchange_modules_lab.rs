//! The Exchange modules end to end against the lab, in process: each module runs through a
//! [`HostLink`] whose transport starts the shipped script on a simulated host
//! (`SimHost::spawn`), exactly as the WinRM front end would, with paused tokio time.
//!
//! Shown: facts read the simulated build and assess it; the mitigation goes on and, once the
//! server is fixed, off; a vulnerable 2019 CU8 server gets its SU, restarts (new boot id) and
//! verifies; an SU for another CU is refused before anything runs on the host; the IOC scan
//! flags a compromised server.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use salve::model::{Host, HostSettings};
use salve::modules::{self, HostCtx, HostLink, Outcome, ProbeLink};
use salve::transport::{Cause, OutputChunk, RunRequest, ScriptOutput, Transport, TransportError};
use salve_lab::fleet::{Fleet, LabHost};
use salve_lab::host_api::{ProcessOutput, SimHost};
use salve_lab::log::LabEvent;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const SCENARIO: &str = "\
seed: 7
time_scale: 60
tenants:
  - name: contoso
    hosts: 3
    builds: [15.2.792.3]
hosts:
  contoso-ex01: {url_rewrite: true, pending_reboot: false}
  contoso-ex02: {url_rewrite: true, pending_reboot: false}
  contoso-ex03: {build: 15.2.858.15, compromised: true}
";

const SHA: &str = "5f2b1c0d9e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c";

/// A transport that runs scripts on one lab host, as the WinRM front end would: refused while
/// the host is down, dropped when it restarts under a running command.
struct LabTransport {
    host: Arc<LabHost>,
}

fn unreachable(host: &LabHost) -> TransportError {
    TransportError::Unreachable {
        endpoint: format!("{}:5985", host.name()),
        cause: Cause::text("no route to host (restarting)"),
    }
}

#[async_trait]
impl Transport for LabTransport {
    async fn run(&self, request: RunRequest) -> Result<ScriptOutput, TransportError> {
        if !self.host.accepting() {
            return Err(unreachable(&self.host));
        }
        let mut boots = self.host.boot_watch();
        let mut process = crate::lab_support::spawn_delivered(&*self.host, &request.script);
        let (mut stdout, mut stderr) = (String::new(), String::new());
        let deadline = tokio::time::sleep(request.timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                out = process.output.recv() => match out {
                    Some(ProcessOutput::Stdout(b)) => {
                        let text = String::from_utf8_lossy(&b).into_owned();
                        if let Some(tx) = &request.output {
                            for line in text.lines() {
                                let _ = tx.send(OutputChunk::Stdout(line.to_string()));
                            }
                        }
                        stdout.push_str(&text);
                    }
                    Some(ProcessOutput::Stderr(b)) => stderr.push_str(&String::from_utf8_lossy(&b)),
                    Some(ProcessOutput::Exit(code)) => {
                        return Ok(ScriptOutput {
                            exit_code: code,
                            stdout,
                            stderr: salve::transport::clixml::decode_stderr(&stderr),
                        });
                    }
                    None => return Err(unreachable(&self.host)),
                },
                _ = boots.changed() => {
                    process.kill.cancel();
                    return Err(TransportError::Dropped {
                        endpoint: format!("{}:5985", self.host.name()),
                        cause: Cause::text("the host restarted"),
                    });
                }
                _ = &mut deadline => {
                    process.kill.cancel();
                    return Err(TransportError::Timeout { after: request.timeout });
                }
                _ = request.cancel.cancelled() => {
                    process.kill.cancel();
                    return Err(TransportError::Cancelled);
                }
            }
        }
    }
}

/// The link: refuses to connect while the host is down; counts resets.
struct LabLink {
    host: Arc<LabHost>,
    resets: AtomicUsize,
}

#[async_trait]
impl HostLink for LabLink {
    async fn transport(&self) -> Result<Arc<dyn Transport>, TransportError> {
        if !self.host.accepting() {
            return Err(unreachable(&self.host));
        }
        Ok(Arc::new(LabTransport {
            host: Arc::clone(&self.host),
        }))
    }

    async fn reset(&self) {
        self.resets.fetch_add(1, Ordering::SeqCst);
    }
}

struct Lab {
    fleet: Fleet,
}

impl Lab {
    fn new() -> Lab {
        Lab::from(SCENARIO)
    }

    fn from(text: &str) -> Lab {
        Lab {
            fleet: crate::lab_support::fleet(text),
        }
    }

    fn link(&self, name: &str) -> LabLink {
        LabLink {
            host: Arc::clone(self.fleet.host(name).unwrap()),
            resets: AtomicUsize::new(0),
        }
    }

    /// Run `module` with `args` on host `name` (apply, or check when `check`).
    async fn run(
        &self,
        name: &str,
        module: &str,
        args: Value,
        vars: &Value,
        check: bool,
    ) -> Outcome {
        modules::validate_args(module, &args).unwrap();
        let link = self.link(name);
        // Detached steps run under the lab's account, whose password logon reads its shares.
        let (user, _) = self.fleet.core().credentials();
        let host_vars: salve::model::Vars = [
            ("ansible_become_user".to_string(), json!(user)),
            (
                "ansible_become_password".to_string(),
                json!(crate::lab_support::PASSWORD),
            ),
        ]
        .into_iter()
        .collect();
        let host = Host {
            name: name.into(),
            groups: vec!["all".into()],
            tenant: None,
            settings: HostSettings::read(name, &host_vars).unwrap(),
            vars: host_vars.into(),
            location: None,
        };
        let (tx, _rx) = mpsc::unbounded_channel();
        let vars = salve::template::Context::from(vars.clone());
        let exclusive = modules::exclusive::InProcess::default();
        let ctx = HostCtx {
            host: &host,
            run_as: host.settings.run_as.as_ref(),
            link: &link,
            exclusive: &exclusive,
            vars: &vars,
            timeout: Duration::from_secs(2 * 3600),
            poll: None,
            cancel: CancellationToken::new(),
            output: tx,
            base_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        };
        let m = modules::spec(module).unwrap().module;
        if check {
            let probe = ProbeLink::new(&link);
            m.check(&args, &ctx.read_only(&probe)).await.unwrap()
        } else {
            m.apply(&args, &ctx).await.unwrap()
        }
    }

    async fn apply(&self, name: &str, module: &str, args: Value) -> Outcome {
        self.run(name, module, args, &json!({}), false).await
    }

    /// Shipped scripts started on `name`, in order.
    /// The shipped scripts run on host `name`, in the session or as a detached task (by the
    /// task's script; the task's own `job_control`/`job_poll` calls are left out).
    fn scripts_run(&self, name: &str) -> Vec<String> {
        self.fleet
            .log()
            .entries()
            .into_iter()
            .filter(|e| e.host == name)
            .filter_map(|e| match e.event {
                LabEvent::ScriptStarted { id } if id != "job_control" && id != "job_poll" => {
                    Some(id)
                }
                LabEvent::JobStarted { script_id, .. } => Some(script_id),
                _ => None,
            })
            .collect()
    }
}

fn sources() -> Value {
    json!({"2019 CU8 KB5003435": {"unc": "\\\\fs01\\exchange\\Exchange2019-CU8-KB5003435.msp", "sha256": SHA},
           "KB5004780": {"unc": "\\\\fs01\\exchange\\Exchange2019-CU9-KB5004780.msp", "sha256": SHA}})
}

#[tokio::test(start_paused = true)]
async fn a_vulnerable_2019_cu8_server_is_mitigated_patched_restarted_verified_and_unmitigated() {
    let lab = Lab::new();
    let ex = "contoso-ex01";

    // Facts: the simulated build, assessed.
    let facts = lab.apply(ex, "exchange_facts", json!({})).await;
    assert!(
        !facts.status.failed() && !facts.status.changed(),
        "{facts:?}"
    );
    let fact = &facts.facts.as_ref().unwrap()["exchange"];
    assert_eq!(fact["build"], "15.2.792.3");
    assert_eq!(fact["assessment"]["proxylogon_vulnerable"], true);
    assert_eq!(
        fact["assessment"]["path_display"],
        "2019 CU8 → CU15 (needs .NET 4.8 or 4.8.1) → KB5121574"
    );
    assert_eq!(fact["mitigated"], false);
    let boot_before = fact["boot_id"].clone();

    // Mitigation: check changes nothing, apply puts both rules on.
    let would = lab
        .run(
            ex,
            "exchange_mitigate",
            json!({"state": "present"}),
            &json!({}),
            true,
        )
        .await;
    assert!(
        would.status.changed() && !would.status.failed(),
        "{would:?}"
    );
    assert!(lab.fleet.state(ex).unwrap().rewrite_rules.is_empty());
    let on = lab
        .apply(ex, "exchange_mitigate", json!({"state": "present"}))
        .await;
    assert!(on.status.changed() && !on.status.failed(), "{on:?}");
    assert_eq!(lab.fleet.state(ex).unwrap().rewrite_rules.len(), 2);
    // Not removable while the build is vulnerable.
    let refused = lab
        .apply(ex, "exchange_mitigate", json!({"state": "absent"}))
        .await;
    assert!(refused.status.failed(), "{refused:?}");

    // CU8's last SU (the ProxyLogon/ProxyShell fix; the path's CU upgrade comes later): check
    // lists it, apply installs it, the build changes at restart.
    let update = json!({"kb": "KB5003435", "sources": sources()});
    let plan = lab
        .run(ex, "exchange_update", update.clone(), &json!({}), true)
        .await;
    assert!(plan.status.changed() && !plan.status.failed(), "{plan:?}");
    assert!(plan.msg.unwrap().starts_with("would install KB5003435"));
    assert!(!lab.scripts_run(ex).contains(&"exchange_update".to_string()));
    let installed = lab.apply(ex, "exchange_update", update.clone()).await;
    assert!(
        installed.status.changed() && !installed.status.failed(),
        "{installed:?}"
    );
    assert_eq!(installed.data["reboot_required"], true);
    assert_eq!(installed.data["exit_code"], 3010);
    assert_eq!(installed.data["remaining"], 0);
    // A second call before the restart does not reinstall: it asks for the pending restart.
    let again = lab.apply(ex, "exchange_update", update.clone()).await;
    assert!(
        !again.status.failed() && !again.status.changed(),
        "{again:?}"
    );
    assert_eq!(again.data["reboot_required"], true);
    assert!(again.msg.unwrap().contains("restart is pending"));

    let rebooted = lab
        .apply(
            ex,
            "reboot",
            json!({"poll_interval": 5, "probe_timeout": 10}),
        )
        .await;
    assert!(
        rebooted.status.changed() && !rebooted.status.failed(),
        "{rebooted:?}"
    );
    assert_eq!(rebooted.data["boot_id_before"], boot_before);
    assert_ne!(rebooted.data["boot_id_after"], boot_before);
    let state = lab.fleet.state(ex).unwrap();
    assert_eq!(state.build.unwrap().to_string(), "15.2.792.15");

    // Verified, then nothing left to install from that KB, and the mitigation comes off: the
    // ProxyLogon CVE it covers is fixed (later CVEs still need the CU upgrade).
    let verified = lab
        .apply(
            ex,
            "exchange_verify",
            json!({"expected_build": "15.2.792.15", "expected_kb": "KB5003435"}),
        )
        .await;
    assert!(!verified.status.failed(), "{verified:?}");
    let nothing = lab.apply(ex, "exchange_update", update).await;
    assert!(
        !nothing.status.failed() && !nothing.status.changed(),
        "{nothing:?}"
    );
    let off = lab
        .apply(ex, "exchange_mitigate", json!({"state": "absent"}))
        .await;
    assert!(off.status.changed() && !off.status.failed(), "{off:?}");
    assert!(lab.fleet.state(ex).unwrap().rewrite_rules.is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_su_for_another_cu_is_refused_before_anything_runs_on_the_host() {
    let lab = Lab::new();
    let ex = "contoso-ex02";
    let o = lab
        .apply(
            ex,
            "exchange_update",
            json!({"kb": "KB5004780", "sources": sources()}),
        )
        .await;
    assert!(o.status.failed(), "{o:?}");
    let msg = o.msg.unwrap();
    assert!(msg.contains("runs 2019 CU8 (15.2.792.3)"), "{msg}");
    assert!(msg.contains("only for CU9"), "{msg}");
    assert_eq!(
        lab.scripts_run(ex),
        ["exchange_facts"],
        "only facts were read"
    );
    assert_eq!(
        lab.fleet.state(ex).unwrap().build.unwrap().to_string(),
        "15.2.792.3"
    );
}

#[tokio::test(start_paused = true)]
async fn the_ioc_scan_flags_a_compromised_server_even_when_patched() {
    let lab = Lab::new();
    let bad = lab
        .apply("contoso-ex03", "exchange_ioc_scan", json!({}))
        .await;
    assert!(
        !bad.status.failed(),
        "the playbook decides with failed_when: {bad:?}"
    );
    assert_eq!(bad.data["compromised"], true);
    assert!(bad.msg.unwrap().starts_with("COMPROMISED"));
    let findings = bad.data["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["cve"] == "CVE-2021-26855"),
        "{findings:?}"
    );
    let facts = lab.apply("contoso-ex03", "exchange_facts", json!({})).await;
    assert_eq!(
        facts.data["exchange"]["assessment"]["proxylogon_vulnerable"],
        false
    );
    let clean = lab
        .apply("contoso-ex01", "exchange_ioc_scan", json!({}))
        .await;
    assert_eq!(clean.data["compromised"], false);
    assert!(clean.msg.unwrap().starts_with("nothing suspicious"));
}

#[tokio::test(start_paused = true)]
async fn dag_maintenance_moves_databases_away_and_restores_the_recorded_policy() {
    let lab = Lab::from(
        "\
seed: 3
time_scale: 60
tenants:
  - name: fabrikam
    hosts: 3
    builds: [15.2.858.5]
    dags:
      - {name: fabrikam-dag1, members: 3, databases: 3}
",
    );
    let ex = "fabrikam-ex01";
    let core = lab.fleet.core();
    let idx = core.index(ex).unwrap();
    core.with_host(idx, |s| s.activation_policy = "IntrasiteOnly".into());
    let active_before = lab
        .fleet
        .state(ex)
        .unwrap()
        .copies
        .iter()
        .filter(|c| c.active)
        .count();

    assert!(
        active_before > 0,
        "the scenario gives this member active copies"
    );
    let would = lab
        .run(
            ex,
            "exchange_maintenance",
            json!({"state": "enter"}),
            &json!({}),
            true,
        )
        .await;
    assert!(would.status.changed() && would.msg.unwrap().contains("IntrasiteOnly"));
    let entered = lab
        .apply(ex, "exchange_maintenance", json!({"state": "enter"}))
        .await;
    assert!(
        entered.status.changed() && !entered.status.failed(),
        "{entered:?}"
    );
    assert_eq!(entered.data["record"]["activation_policy"], "IntrasiteOnly");
    assert_eq!(
        entered.data["moved_databases"].as_array().unwrap().len(),
        active_before
    );
    let state = lab.fleet.state(ex).unwrap();
    assert_eq!(state.activation_policy, "Blocked");
    assert_eq!(state.cluster_node.as_deref(), Some("Paused"));
    assert!(state.copies.iter().all(|c| !c.active));

    // Leave with the fact the enter task set: the recorded policy comes back.
    let vars = Value::Object(entered.facts.clone().unwrap());
    let left = lab
        .run(
            ex,
            "exchange_maintenance",
            json!({"state": "leave"}),
            &vars,
            false,
        )
        .await;
    assert!(!left.status.failed(), "{left:?}");
    let state = lab.fleet.state(ex).unwrap();
    assert_eq!(state.activation_policy, "IntrasiteOnly");
    assert_eq!(state.cluster_node.as_deref(), Some("Up"));
}

/// Entering fails half way (StartDagServerMaintenance finds no member that may take the active
/// database: the only peer's policy is Blocked) and is rolled back step by step: components
/// Active again with transport restarted once more, the recorded IntrasiteOnly policy and the
/// copy's activation suspension back, the host's record removed.
#[tokio::test(start_paused = true)]
async fn a_failed_entry_is_rolled_back_to_the_recorded_state() {
    let lab = Lab::from(
        "seed: 3\ntime_scale: 60\ntenants:\n  - name: r\n    hosts: 2\n    builds: [15.2.858.5]\n    \
         dags: [{name: r-dag1, members: 2, databases: 2}]\nhosts:\n  \
         r-ex01: {ha: {activation_policy: IntrasiteOnly, activation_suspended: [R-DAG1-DB02]}}\n  \
         r-ex02: {ha: {activation_policy: Blocked}}\n",
    );
    let o = lab
        .apply("r-ex01", "exchange_maintenance", json!({"state": "enter"}))
        .await;
    assert!(o.status.failed(), "{o:?}");
    let msg = o.msg.clone().unwrap();
    assert!(
        msg.contains("no healthy DAG member can take database R-DAG1-DB01"),
        "{msg}"
    );
    let steps: Vec<&str> = o.data["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        steps.contains(&"rollback: Set-ServerComponentState HubTransport Active")
            && steps.contains(&"rollback: Restart-Service MSExchangeTransport"),
        "{steps:?}"
    );
    let s = lab.fleet.state("r-ex01").unwrap();
    assert_eq!(s.activation_policy, "IntrasiteOnly");
    assert_eq!(s.cluster_node.as_deref(), Some("Up"));
    assert!(s.inactive_components().is_empty());
    assert!(
        s.copies
            .iter()
            .any(|c| c.database == "R-DAG1-DB02" && c.activation_suspended)
    );
    assert!(s.ha.record.is_none());
    assert!(
        s.copies
            .iter()
            .any(|c| c.database == "R-DAG1-DB01" && c.active)
    );
}

/// The facts read the configuration fixes depend on: a SettingOverride that switches a fix off
/// re-opens its CVE with the override named, and the Emergency Mitigation service's applied
/// CVE-2026-42897 mitigation (M2.1.0, its outbound OWA rule) counts as mitigating it.
#[tokio::test(start_paused = true)]
async fn facts_read_setting_overrides_and_the_emergency_mitigation_service() {
    let lab = Lab::from(
        "seed: 3\ntenants:\n  - name: t\n    hosts: 2\n    builds: [15.2.1748.43]\nhosts:\n  \
         t-ex01:\n    setting_overrides:\n      - {name: Audience check off, component: OAuth, \
         section: AppIdBasedAudienceValidation, parameters: [Enabled=False]}\n  \
         t-ex02:\n    build: 15.2.2562.37\n    eems_applied: [M2.1.0]\n",
    );
    let facts = lab.apply("t-ex01", "exchange_facts", json!({})).await;
    let a = &facts.facts.as_ref().unwrap()["exchange"]["assessment"];
    assert!(
        a["open_cves"]
            .as_array()
            .unwrap()
            .contains(&json!("CVE-2025-25005")),
        "{a}"
    );
    let p = a["protections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["cve"] == "CVE-2025-25005")
        .unwrap();
    assert_eq!(p["state"], "off");
    assert!(
        p["reason"].as_str().unwrap().contains("Audience check off"),
        "{p}"
    );
    assert!(
        p["fix"]
            .as_str()
            .unwrap()
            .contains("Remove-SettingOverride"),
        "{p}"
    );
    // Extended Protection is on by default from 2019 CU14 Setup: its CVEs are judged on.
    let ep = a["protections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["cve"] == "CVE-2022-24516")
        .unwrap();
    assert_eq!(ep["state"], "on");

    let facts = lab.apply("t-ex02", "exchange_facts", json!({})).await;
    let a = &facts.facts.as_ref().unwrap()["exchange"]["assessment"];
    assert_eq!(a["mitigated_cves"], json!(["CVE-2026-42897"]), "{a}");
    let m = &a["mitigations"][0];
    assert_eq!(m["eems_id"], "M2.1.0");
    assert_eq!(m["applied"], "eems");
    assert_eq!(m["rules_present"], true);
    assert_eq!(
        a["eems"]["receives_new"], false,
        "Feb26SU is below the Jun26SU cut-off"
    );
}

/// `exchange_mitigate` never fights the Emergency Mitigation service: a mitigation EEMS applied
/// is already in place for `present`, and `absent` refuses to take it off (EEMS would put it
/// back) and says to block it first.
#[tokio::test(start_paused = true)]
async fn exchange_mitigate_leaves_an_eems_applied_mitigation_alone() {
    let lab = Lab::from(
        "seed: 4\ntenants:\n  - name: t\n    hosts: 1\n    builds: [15.2.1748.43]\nhosts:\n  \
         t-ex01: {eems_applied: [M1.1.0, M2.1.0]}\n",
    );
    let on = lab
        .apply("t-ex01", "exchange_mitigate", json!({"state": "present"}))
        .await;
    assert!(!on.status.changed() && !on.status.failed(), "{on:?}");
    let off = lab
        .apply("t-ex01", "exchange_mitigate", json!({"state": "absent"}))
        .await;
    assert!(off.status.failed(), "{off:?}");
    let msg = off.msg.unwrap();
    assert!(
        msg.contains("Emergency Mitigation service applied M1.1.0"),
        "{msg}"
    );
    assert!(msg.contains("MitigationsBlocked"), "{msg}");
    assert_eq!(lab.fleet.state("t-ex01").unwrap().rewrite_rules.len(), 2);
    assert!(
        !lab.scripts_run("t-ex01")
            .contains(&"exchange_mitigate".to_string()),
        "nothing ran on the host"
    );
}

/// CVE-2026-42897 on a server the Emergency Mitigation service did not protect (2019 CU14 with
/// the October 2025 SU): `present` writes EOMT's OWA outbound rule, which the facts then read
/// back as the mitigation in place; the ProxyLogon rules are not written (that CVE is fixed by
/// build); and `absent` leaves the OWA rule, which Microsoft asks to keep.
#[tokio::test(start_paused = true)]
async fn exchange_mitigate_writes_the_owa_rule_where_cve_2026_42897_is_open() {
    let lab =
        Lab::from("seed: 4\ntenants:\n  - name: t\n    hosts: 1\n    builds: [15.2.1544.36]\n");
    let before = lab.apply("t-ex01", "exchange_facts", json!({})).await;
    let state = |outcome: &salve::modules::Outcome| {
        outcome.facts.as_ref().unwrap()["exchange"]["assessment"]["mitigations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == "eomt-cve-2026-42897")
            .cloned()
            .unwrap()
    };
    assert_eq!(state(&before)["needed"], true, "{before:?}");
    let on = lab
        .apply("t-ex01", "exchange_mitigate", json!({"state": "present"}))
        .await;
    assert!(on.status.changed() && !on.status.failed(), "{on:?}");
    assert_eq!(on.data["mitigations"], json!(["eomt-cve-2026-42897"]));
    let host = lab.fleet.state("t-ex01").unwrap();
    assert_eq!(host.config.outbound_rules, ["EOMT OWA CSP - outbound"]);
    assert!(
        host.rewrite_rules.is_empty(),
        "no ProxyLogon rules on a fixed build"
    );
    let after = lab.apply("t-ex01", "exchange_facts", json!({})).await;
    assert_eq!(state(&after)["applied"], "rules", "{after:?}");
    assert_eq!(state(&after)["needed"], false);
    let off = lab
        .apply("t-ex01", "exchange_mitigate", json!({"state": "absent"}))
        .await;
    assert!(!off.status.changed() && !off.status.failed(), "{off:?}");
    assert!(off.msg.unwrap().contains("eomt-cve-2026-42897 kept"));
    assert_eq!(
        lab.fleet
            .state("t-ex01")
            .unwrap()
            .config
            .outbound_rules
            .len(),
        1
    );
}
