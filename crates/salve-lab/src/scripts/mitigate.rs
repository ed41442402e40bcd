//! `exchange_mitigate`: EOMT's URL Rewrite rules (added or removed; the URL Rewrite module
//! installed first when it is missing).

use crate::command::Out;
use crate::fleet_core::FleetCore;
use crate::log::LabEvent;
use crate::state::EOMT_RULES;
use salve_contract::contract::{MitigateAction, MitigateAnswer, MitigateRequest};

/// Apply or remove the mitigation; exit code as the real script gives it.
pub(super) fn run(core: &FleetCore, idx: usize, req: &MitigateRequest, out: &Out) -> i32 {
    let (answer, events) = core.with_host(idx, |s| {
        let mut events = Vec::new();
        let mut changed = false;
        match req.action {
            MitigateAction::Apply => {
                if s.url_rewrite.is_none() {
                    let Some(source) = &req.rewrite_msi_source else {
                        let answer = MitigateAnswer {
                            changed: false,
                            success: false,
                            reason: Some("the IIS URL Rewrite module is not installed and no rewrite_msi_source was given".into()),
                            url_rewrite_installed: false,
                            rules_present: s.rewrite_rules.clone(),
                        };
                        return (answer, events);
                    };
                    out.line(&format!("Installing IIS URL Rewrite module from {source}"));
                    s.url_rewrite = Some("7.2.1993".to_string());
                    events.push(LabEvent::RewriteModuleInstalled { version: "7.2.1993".into() });
                    changed = true;
                }
                let missing: Vec<String> =
                    EOMT_RULES.iter().filter(|r| !s.rewrite_rules.iter().any(|x| x == *r)).map(|r| r.to_string()).collect();
                if !missing.is_empty() {
                    out.line("Applying URL Rewrite mitigation to IIS:\\Sites\\Default Web Site");
                    s.rewrite_rules.extend(missing.iter().cloned());
                    events.push(LabEvent::MitigationApplied { rules: missing });
                    changed = true;
                }
            }
            MitigateAction::Remove => {
                let present: Vec<String> =
                    s.rewrite_rules.iter().filter(|r| EOMT_RULES.contains(&r.as_str())).cloned().collect();
                if !present.is_empty() {
                    out.line("Rolling back URL Rewrite mitigation");
                    s.rewrite_rules.retain(|r| !EOMT_RULES.contains(&r.as_str()));
                    events.push(LabEvent::MitigationRemoved { rules: present });
                    changed = true;
                }
            }
        }
        let answer = MitigateAnswer {
            changed,
            success: true,
            reason: None,
            url_rewrite_installed: s.url_rewrite.is_some(),
            rules_present: s.rewrite_rules.iter().filter(|r| EOMT_RULES.contains(&r.as_str())).cloned().collect(),
        };
        (answer, events)
    });
    for e in events {
        core.record(idx, e);
    }
    if let Some(reason) = &answer.reason {
        out.error(std::slice::from_ref(reason));
    }
    out.result(&answer);
    i32::from(!answer.success)
}
