//! Building a plan from a check-mode run: every task that reports it *would* change something
//! becomes a step of its host, keyed by play and task index, with the module's own words as
//! the reason. `apply` later runs exactly those steps (and the read-only tasks around them).
//!
//! Facts come from `exchange_facts` results; risks from those facts and the host's variables;
//! hosts that failed or could not be reached while planning are left out, with the reason.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::document::{HostPlan, LeftOut, Risk, Step};
use crate::events::{Event, TaskStatus};
use crate::model::{Inventory, Playbook};
use crate::report::Reporter;

/// Free space below which a host is flagged (an Exchange CU needs room for its media and logs).
const LOW_DISK_BYTES: u64 = 30 * 1024 * 1024 * 1024;

/// What the collector has seen so far; shared with the caller, who turns it into a plan.
#[derive(Debug, Default)]
pub struct Collected {
    hosts: BTreeMap<String, HostPlan>,
    left_out: BTreeMap<String, LeftOut>,
    sequence: BTreeMap<String, UpdateSequence>,
}

/// Where a host stands in its update path while planning. In check mode every update task
/// sees the same facts, so the n-th would-install task stands for the n-th step of the path,
/// and a restart only belongs in the plan after a planned install (or before the first one,
/// when a restart is already pending).
#[derive(Debug, Default)]
struct UpdateSequence {
    planned: usize,
    last_planned: bool,
    restarted_since: bool,
}

impl Collected {
    /// Hosts with what they would do, and the hosts left out.
    pub fn into_parts(self) -> (Vec<HostPlan>, Vec<LeftOut>) {
        let left: Vec<LeftOut> = self.left_out.into_values().collect();
        let hosts = self
            .hosts
            .into_values()
            .filter(|h| !left.iter().any(|l| l.name == h.name))
            .map(drop_dangling_maintenance)
            .collect();
        (hosts, left)
    }
}

/// Where planning stopped before the work a maintenance window was entered for, entering
/// maintenance would only take the server out of service for nothing: leave it out.
fn drop_dangling_maintenance(mut host: HostPlan) -> HostPlan {
    let enters = host
        .steps
        .iter()
        .filter(|s| s.module == "exchange_maintenance")
        .count();
    let updates = host.steps.iter().any(|s| s.module == "exchange_update");
    if enters % 2 == 1 && !updates {
        host.steps.retain(|s| s.module != "exchange_maintenance");
    }
    host
}

/// A reporter that turns check-mode events into plan entries.
pub struct PlanCollector {
    playbook: Arc<Playbook>,
    inventory: Arc<Inventory>,
    out: Arc<Mutex<Collected>>,
}

impl PlanCollector {
    pub fn new(
        playbook: Arc<Playbook>,
        inventory: Arc<Inventory>,
    ) -> (Self, Arc<Mutex<Collected>>) {
        let out = Arc::new(Mutex::new(Collected::default()));
        (
            PlanCollector {
                playbook,
                inventory,
                out: Arc::clone(&out),
            },
            out,
        )
    }

    fn host_plan<'a>(&self, collected: &'a mut Collected, host: &str) -> &'a mut HostPlan {
        collected.hosts.entry(host.to_string()).or_insert_with(|| {
            let inv = self.inventory.host(host);
            let mut risks = Vec::new();
            if let Some(dag) = inv.and_then(|h| h.settings.dag.clone()) {
                risks.push(Risk::DagMember { dag });
            }
            HostPlan {
                name: host.to_string(),
                tenant: inv.and_then(|h| h.tenant.clone()),
                facts: Value::Null,
                window: inv.map(|h| h.settings.window_texts()).unwrap_or_default(),
                steps: Vec::new(),
                risks,
            }
        })
    }
}

impl Reporter for PlanCollector {
    fn event(&mut self, event: &Event) {
        let Event::TaskFinished {
            host,
            task,
            play_index,
            task_index,
            status,
            msg,
            result,
            ..
        } = event
        else {
            return;
        };
        let play = *play_index;
        let call = self
            .playbook
            .plays
            .get(play)
            .and_then(|p| p.task_at(*task_index))
            .map(|(_, t)| &t.call);
        let module = call.map(|c| c.module.clone()).unwrap_or_default();
        let state = call
            .and_then(|c| c.args.get("state"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut collected = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let plan = self.host_plan(&mut collected, host);
        if module == "exchange_facts" && plan.facts.is_null() {
            let facts = result.get("exchange").unwrap_or(result);
            plan.facts = summary(facts);
            plan.risks.extend(risks_from(facts));
            plan.risks.sort();
            plan.risks.dedup();
        }
        let msg = msg.clone().unwrap_or_default();
        if let Some(undo) = undo_step(plan, play, *task_index, task, &module, &state, *status) {
            plan.steps.push(undo);
            return;
        }
        let would_run_script =
            *status == TaskStatus::Skipped && module == "powershell" && msg.contains("check mode");
        if *status == TaskStatus::Changed || would_run_script {
            let seq = collected.sequence.entry(host.clone()).or_default();
            let planned = match module.as_str() {
                "exchange_update" => path_step(seq, play, *task_index, task, result),
                "reboot" if seq.planned == 0 || (seq.last_planned && !seq.restarted_since) => {
                    seq.restarted_since = seq.planned > 0;
                    Some(step(play, *task_index, task, &module, &msg, result))
                }
                "reboot" => None,
                _ => Some(step(play, *task_index, task, &module, &msg, result)),
            };
            if let Some(step) = planned {
                self.host_plan(&mut collected, host).steps.push(step);
            }
        }
        if matches!(status, TaskStatus::Failed | TaskStatus::Unreachable) {
            let plan = self.host_plan(&mut collected, host);
            let what = if *status == TaskStatus::Failed {
                "failed"
            } else {
                "unreachable"
            };
            let reason = format!("{what} while planning `{task}`: {msg}");
            if *status == TaskStatus::Failed && !plan.steps.is_empty() {
                // The steps before it stand; later ones could not be predicted.
                plan.risks.push(Risk::Other {
                    text: format!("planning stopped: {reason}"),
                });
            } else {
                let tenant = plan.tenant.clone();
                collected.left_out.insert(
                    host.clone(),
                    LeftOut {
                        name: host.clone(),
                        tenant,
                        reason,
                    },
                );
            }
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The step of the assessed path that the next would-install task stands for, if any.
fn path_step(
    seq: &mut UpdateSequence,
    play: usize,
    task_index: usize,
    task: &str,
    result: &Value,
) -> Option<Step> {
    let path = result
        .get("steps")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(next) = path.get(seq.planned) else {
        seq.last_planned = false;
        return None;
    };
    seq.planned += 1;
    seq.last_planned = true;
    seq.restarted_since = false;
    let text = |k: &str| {
        next.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let kind = text("kind");
    let target = text("target");
    let label = text("label");
    let what = match next.get("kb").and_then(Value::as_str) {
        Some(kb) if kb != label => format!("{label} ({kb})"),
        _ => label,
    };
    Some(Step {
        play,
        task_index,
        task: task.to_string(),
        module: "exchange_update".into(),
        action: if target.is_empty() {
            format!("install {what}")
        } else {
            format!("install {what} (to build {target})")
        },
        reason: text("reason"),
        reboot: false,
        estimated_seconds: if kind.eq_ignore_ascii_case("cu") {
            3600
        } else {
            1800
        },
        non_idempotent: true,
    })
}

fn step(
    play: usize,
    task_index: usize,
    task: &str,
    module: &str,
    msg: &str,
    result: &Value,
) -> Step {
    let first_kind = result
        .pointer("/steps/0/kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let estimated_seconds = match module {
        "exchange_update" if first_kind.eq_ignore_ascii_case("cu") => 3600,
        "exchange_update" => 1800,
        "reboot" => 600,
        "exchange_maintenance" => 900,
        "exchange_mitigate" => 300,
        "powershell" => 60,
        _ => 30,
    };
    let reboot = module == "reboot";
    let action = match module {
        "powershell" => "run a user script (its effects cannot be predicted)".to_string(),
        _ => task.to_string(),
    };
    // A restart's check names the host's uptime, which changes by the minute; the plan keeps
    // only what the same fleet always says, so the same inputs give the same plan.
    let msg = if reboot {
        "restart the host and wait for it to come back with a new boot id"
    } else {
        msg
    };
    Step {
        play,
        task_index,
        task: task.to_string(),
        module: module.to_string(),
        action,
        reason: msg.to_string(),
        reboot,
        estimated_seconds,
        non_idempotent: crate::modules::changes_hosts(module),
    }
}

/// Check mode cannot see a state the plan itself creates: a planned "enter maintenance" means
/// the later "leave maintenance" will be needed, and a planned mitigation on a server the plan
/// patches will be removed once the server is verified fixed (the module refuses otherwise).
fn undo_step(
    plan: &HostPlan,
    play: usize,
    task_index: usize,
    task: &str,
    module: &str,
    state: &str,
    status: TaskStatus,
) -> Option<Step> {
    if !matches!(status, TaskStatus::Ok | TaskStatus::Skipped) {
        return None;
    }
    let planned = |m: &str| plan.steps.iter().any(|s| s.module == m);
    let reason = match (module, state) {
        ("exchange_maintenance", "leave") if planned("exchange_maintenance") => {
            "leave maintenance after the steps above, restoring the recorded activation policy"
        }
        ("exchange_mitigate", "absent")
            if planned("exchange_mitigate") && planned("exchange_update") =>
        {
            "remove the mitigation once the server is verified fixed (refused otherwise)"
        }
        _ => return None,
    };
    Some(Step {
        play,
        task_index,
        task: task.to_string(),
        module: module.to_string(),
        action: task.to_string(),
        reason: reason.to_string(),
        reboot: false,
        estimated_seconds: if module == "exchange_maintenance" {
            900
        } else {
            300
        },
        non_idempotent: true,
    })
}

/// The facts a reviewer needs, and that `apply` compares: a stable subset of what the host
/// reported (no boot id or timestamps, so the same fleet gives the same plan).
fn summary(facts: &Value) -> Value {
    let pick = |k: &str| facts.get(k).cloned().unwrap_or(Value::Null);
    let assessment = facts.get("assessment").cloned().unwrap_or(Value::Null);
    serde_json::json!({
        "build": pick("build"),
        "family": pick("family"),
        "cu": assessment.get("cu").cloned().unwrap_or(Value::Null),
        "installed_kbs": pick("installed_kbs"),
        "dag": pick("dag"),
        "pending_reboot": pick("pending_reboot"),
        "free_disk_bytes": pick("free_disk_bytes"),
        "dotnet_release": pick("dotnet_release"),
        "mitigated": pick("mitigated"),
        "in_maintenance": pick("in_maintenance"),
        "open_cves": assessment.get("open_cves").cloned().unwrap_or(Value::Null),
        "path": assessment.get("path_display").cloned().unwrap_or(Value::Null),
    })
}

/// Risks a reviewer should see, from the facts a host reported.
fn risks_from(facts: &Value) -> Vec<Risk> {
    let mut risks = Vec::new();
    if let Some(dag) = facts.get("dag").and_then(Value::as_str) {
        risks.push(Risk::DagMember {
            dag: dag.to_string(),
        });
    }
    if facts
        .get("pending_reboot")
        .and_then(Value::as_array)
        .is_some_and(|p| !p.is_empty())
    {
        risks.push(Risk::PendingReboot);
    }
    if let Some(free) = facts.get("free_disk_bytes").and_then(Value::as_u64)
        && free < LOW_DISK_BYTES
    {
        risks.push(Risk::LowDisk {
            drive: "C:".into(),
            free_mb: free / 1_048_576,
            needed_mb: LOW_DISK_BYTES / 1_048_576,
        });
    }
    if facts.get("mitigated").and_then(Value::as_bool) == Some(true) {
        risks.push(Risk::Mitigation {
            name: "EOMT URL Rewrite rules".into(),
        });
    }
    risks
}

/// The facts `apply` compares with the plan before touching a host: what the steps were
/// decided from. Takes an `exchange` fact as reported live, or a plan's facts.
pub fn fingerprint(facts: &Value) -> Value {
    let facts = if facts.get("assessment").is_some() {
        summary(facts)
    } else {
        facts.clone()
    };
    let pick = |k: &str| facts.get(k).cloned().unwrap_or(Value::Null);
    serde_json::json!({
        "build": pick("build"),
        "installed_kbs": pick("installed_kbs"),
        "pending_reboot": pick("pending_reboot"),
        "mitigated": pick("mitigated"),
        "in_maintenance": pick("in_maintenance"),
    })
}
