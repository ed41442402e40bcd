//! `exchange_mitigate`: EOMT's URL Rewrite rules (added or removed; the URL Rewrite module
//! installed first when it is missing). The rule list the script reads back
//! (`Get-SalveRulesPresent`) reaches its callers by [`pipeline`]'s rules, as the shipped text
//! hands it over ([`RULES_PRESENT_EMIT`]).

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::installer;
use super::pipeline::{self, Emit};
use crate::command::{EXIT_TERMINATED, Out};
use crate::fleet_core::FleetCore;
use crate::log::LabEvent;
use crate::state::{EOMT_RULES, HostState, MARKER_FILE_RENAME};
use salve_contract::contract::{MitigateAction, MitigateRequest, ScriptId};

/// How `Get-SalveRulesPresent` in `scripts/exchange_mitigate.ps1` hands back its list.
pub(super) const RULES_PRESENT_EMIT: Emit = Emit::Items;

/// `Get-SalveRulesPresent`: the EOMT rules on the Default Web Site, in the script's order.
fn rules_present(s: &HostState) -> Vec<String> {
    if s.url_rewrite.is_none() {
        return Vec::new();
    }
    EOMT_RULES
        .iter()
        .filter(|r| s.rewrite_rules.iter().any(|x| x == *r))
        .map(|r| r.to_string())
        .collect()
}

/// The msiexec exit codes the script takes as a successful URL Rewrite install: 0, and 3010
/// and 1641 (success, restart required or initiated), which set `reboot_required`.
const MSI_SUCCESS: [i32; 3] = [0, 3010, 1641];

/// What the script's `Write-SalveAnswer` prints.
#[derive(Default)]
struct Printed {
    changed: bool,
    success: bool,
    reason: Option<String>,
    reboot_required: bool,
}

/// Apply or remove the mitigation; exit code as the real script gives it. Installing the URL
/// Rewrite module waits for Windows Installer as `Invoke-SalveMsiexec` does.
pub(super) async fn run(
    core: &FleetCore,
    idx: usize,
    req: &MitigateRequest,
    out: &Out,
    kill: &CancellationToken,
) -> i32 {
    let installs = req.action == MitigateAction::Apply
        && req.rewrite_msi_source.is_some()
        && core.with_host(idx, |s| s.url_rewrite.is_none());
    let busy = if installs {
        installer::claim(core, idx, "IIS URL Rewrite module", out, kill)
            .await
            .err()
    } else {
        None
    };
    if kill.is_cancelled() {
        return EXIT_TERMINATED;
    }
    let (printed, events, answer) = core.with_host(idx, |s| {
        let (printed, events) = match &busy {
            Some(holder) => (
                Printed {
                    reason: Some(installer::still_busy(holder)),
                    ..Printed::default()
                },
                Vec::new(),
            ),
            None => act(s, req, out),
        };
        if installs && busy.is_none() {
            s.installing = None;
        }
        // `rules_present = @(Get-SalveRulesPresent)`
        let present = rules_present(s).into_iter().map(Value::from).collect();
        let answer = serde_json::json!({
            "changed": printed.changed,
            "success": printed.success,
            "reason": printed.reason,
            "url_rewrite_installed": s.url_rewrite.is_some(),
            "rules_present": pipeline::array_subexpression(present, RULES_PRESENT_EMIT),
            "reboot_required": printed.reboot_required,
        });
        (printed, events, answer)
    });
    for e in events {
        core.record(idx, e);
    }
    if let Some(reason) = &printed.reason {
        out.error(std::slice::from_ref(reason));
    }
    super::answer(core, idx, ScriptId::ExchangeMitigate, out, &answer);
    i32::from(!printed.success)
}

fn act(s: &mut HostState, req: &MitigateRequest, out: &Out) -> (Printed, Vec<LabEvent>) {
    let mut events = Vec::new();
    let mut changed = false;
    let mut reboot_required = false;
    match req.action {
        MitigateAction::Apply => {
            if s.url_rewrite.is_none() {
                let Some(source) = &req.rewrite_msi_source else {
                    let printed = Printed {
                        reason: Some(
                            "the IIS URL Rewrite module is not installed and no \
                             rewrite_msi_source was given"
                                .into(),
                        ),
                        ..Printed::default()
                    };
                    return (printed, events);
                };
                if let Err(e) = out.read_file(source) {
                    let printed = Printed {
                        reason: Some(e),
                        ..Printed::default()
                    };
                    return (printed, events);
                }
                out.line(&format!("Installing IIS URL Rewrite module from {source}"));
                s.url_rewrite = Some("7.2.1993".to_string());
                events.push(LabEvent::RewriteModuleInstalled {
                    version: "7.2.1993".into(),
                });
                changed = true;
                let code = s.msi_restart_code.unwrap_or(0);
                if code != 0 {
                    s.add_pending_reboot(MARKER_FILE_RENAME);
                }
                if !MSI_SUCCESS.contains(&code) {
                    let printed = Printed {
                        changed,
                        reason: Some(format!(
                            "msiexec exited with {code} installing URL Rewrite; see \
                             RewriteModuleInstall.log"
                        )),
                        ..Printed::default()
                    };
                    return (printed, events);
                }
                reboot_required = code != 0;
            }
            // `$present = @(Get-SalveRulesPresent)`; a rule not `-contains`ed is (re)written.
            let present = rules_present(s);
            let mut written = Vec::new();
            for rule in EOMT_RULES {
                if pipeline::contains(&present, RULES_PRESENT_EMIT, rule) {
                    continue;
                }
                out.line(&format!(
                    "Adding rewrite rule '{rule}' to IIS:\\Sites\\Default Web Site"
                ));
                if !s.rewrite_rules.iter().any(|x| x == rule) {
                    s.rewrite_rules.push(rule.to_string());
                    written.push(rule.to_string());
                }
                changed = true;
            }
            if !written.is_empty() {
                events.push(LabEvent::MitigationApplied { rules: written });
            }
        }
        MitigateAction::Remove => {
            if s.url_rewrite.is_some() {
                // `foreach ($name in @(Get-SalveRulesPresent))`: Clear-WebConfiguration on
                // `rule[@name='$name']` removes the rule of exactly that name, if any.
                let mut removed = Vec::new();
                for object in pipeline::objects(rules_present(s), RULES_PRESENT_EMIT) {
                    let name = pipeline::as_string(&object);
                    out.line(&format!(
                        "Removing rewrite rule '{name}' from IIS:\\Sites\\Default Web Site"
                    ));
                    if let Some(at) = s.rewrite_rules.iter().position(|r| *r == name) {
                        removed.push(s.rewrite_rules.remove(at));
                    }
                    changed = true;
                }
                if !removed.is_empty() {
                    events.push(LabEvent::MitigationRemoved { rules: removed });
                }
            }
        }
    }
    let printed = Printed {
        changed,
        success: true,
        reason: None,
        reboot_required,
    };
    (printed, events)
}
