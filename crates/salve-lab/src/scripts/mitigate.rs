//! `exchange_mitigate`: EOMT's URL Rewrite mitigations by id (added or removed; the URL Rewrite
//! module installed first when it is missing): the two inbound rules of CVE-2021-26855 on the
//! Default Web Site, and the outbound rule of CVE-2026-42897 on its /owa application, which IIS
//! keeps in a separate collection (`system.webServer/rewrite/outboundRules`, IIS URL Rewrite
//! module reference) and which only exists where the module is installed. The rule list the
//! script reads back (`Get-SalveRulesPresent`) reaches its callers by [`pipeline`]'s rules, as
//! the shipped text hands it over ([`RULES_PRESENT_EMIT`]).

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::installer;
use super::pipeline::{self, Emit};
use crate::command::{EXIT_TERMINATED, Out};
use crate::exchange_config::OWA_CSP_RULE;
use crate::fleet_core::FleetCore;
use crate::log::LabEvent;
use crate::state::{EOMT_RULES, HostState, MARKER_FILE_RENAME};
use salve_contract::contract::{MitigateAction, MitigateRequest, MitigationId, ScriptId};

/// How `Get-SalveRulesPresent` in `scripts/exchange_mitigate.ps1` hands back its list.
pub(super) const RULES_PRESENT_EMIT: Emit = Emit::Items;

/// `Get-SalveRulesPresent`: the EOMT inbound rules on the Default Web Site in the script's order,
/// then the CVE-2026-42897 outbound rule on /owa.
fn rules_present(s: &HostState) -> Vec<String> {
    if s.url_rewrite.is_none() {
        return Vec::new();
    }
    let mut present: Vec<String> = EOMT_RULES
        .iter()
        .filter(|r| s.rewrite_rules.iter().any(|x| x == *r))
        .map(|r| r.to_string())
        .collect();
    if s.config.outbound_rules.iter().any(|r| r == OWA_CSP_RULE) {
        present.push(OWA_CSP_RULE.to_string());
    }
    present
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
            None => act(core, s, req, out),
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

fn act(
    core: &FleetCore,
    s: &mut HostState,
    req: &MitigateRequest,
    out: &Out,
) -> (Printed, Vec<LabEvent>) {
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
                let reached = out
                    .read_file(core, source)
                    .and_then(|()| s.web_reachable(source, req.rewrite_msi_proxy.as_deref()));
                if let Err(e) = reached {
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
            let mut written = Vec::new();
            for id in &req.mitigations {
                match id {
                    MitigationId::EomtCve202126855 => add_inbound(s, out, &mut written),
                    MitigationId::EomtCve202642897 => add_owa_csp(s, out, &mut written),
                }
            }
            changed |= !written.is_empty();
            if !written.is_empty() {
                events.push(LabEvent::MitigationApplied { rules: written });
            }
        }
        MitigateAction::Remove => {
            if s.url_rewrite.is_some() {
                let mut removed = Vec::new();
                for id in &req.mitigations {
                    match id {
                        MitigationId::EomtCve202126855 => remove_inbound(s, out, &mut removed),
                        MitigationId::EomtCve202642897 => remove_owa_csp(s, out, &mut removed),
                    }
                }
                changed |= !removed.is_empty();
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

/// `Add-SalveInboundRules`: `$present = @(Get-SalveRulesPresent)`; a rule not `-contains`ed is
/// (re)written.
fn add_inbound(s: &mut HostState, out: &Out, written: &mut Vec<String>) {
    let present = rules_present(s);
    for rule in EOMT_RULES {
        if pipeline::contains(&present, RULES_PRESENT_EMIT, rule) {
            continue;
        }
        out.line(&format!(
            "Adding rewrite rule '{rule}' to IIS:\\Sites\\Default Web Site"
        ));
        if !s.rewrite_rules.iter().any(|x| x == rule) {
            s.rewrite_rules.push(rule.to_string());
        }
        written.push(rule.to_string());
    }
}

/// `Add-SalveOwaCsp`: the preCondition and the outbound rule, unless the rule is present.
fn add_owa_csp(s: &mut HostState, out: &Out, written: &mut Vec<String>) {
    if pipeline::contains(&rules_present(s), RULES_PRESENT_EMIT, OWA_CSP_RULE) {
        return;
    }
    out.line(&format!(
        "Adding outbound rewrite rule '{OWA_CSP_RULE}' to IIS:\\Sites\\Default Web Site\\owa"
    ));
    s.config.outbound_rules.push(OWA_CSP_RULE.to_string());
    written.push(OWA_CSP_RULE.to_string());
}

/// `Remove-SalveInboundRules`: `foreach ($name in @(Get-SalveRulesPresent))`, inbound names only;
/// Clear-WebConfiguration on `rule[@name='$name']` removes the rule of exactly that name.
fn remove_inbound(s: &mut HostState, out: &Out, removed: &mut Vec<String>) {
    for object in pipeline::objects(rules_present(s), RULES_PRESENT_EMIT) {
        let name = pipeline::as_string(&object);
        if !EOMT_RULES.contains(&name.as_str()) {
            continue;
        }
        out.line(&format!(
            "Removing rewrite rule '{name}' from IIS:\\Sites\\Default Web Site"
        ));
        if let Some(at) = s.rewrite_rules.iter().position(|r| *r == name) {
            removed.push(s.rewrite_rules.remove(at));
        }
    }
}

/// `Remove-SalveOwaCsp`: the outbound rule and its preCondition, when the rule is present.
fn remove_owa_csp(s: &mut HostState, out: &Out, removed: &mut Vec<String>) {
    if !pipeline::contains(&rules_present(s), RULES_PRESENT_EMIT, OWA_CSP_RULE) {
        return;
    }
    out.line(&format!(
        "Removing outbound rewrite rule '{OWA_CSP_RULE}' from IIS:\\Sites\\Default Web Site\\owa"
    ));
    s.config.outbound_rules.retain(|r| r != OWA_CSP_RULE);
    removed.push(OWA_CSP_RULE.to_string());
}
