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
use crate::exchange::path::Step as PathStep;
use crate::model::{Inventory, Playbook};
use crate::modules::{self, Counting, Effect, Foresight, ModuleSpec, PairKind, Provides, Reason};
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
/// maintenance would only take the server out of service for nothing: leave it out (every
/// [`PairKind::Bracket`] module opened without its undo and without update work planned).
fn drop_dangling_maintenance(mut host: HostPlan) -> HostPlan {
    if host
        .steps
        .iter()
        .any(|s| counting(&s.module) == Some(Counting::UpdatePath))
    {
        return host;
    }
    for spec in modules::table() {
        let Counting::Paired(pair) = spec.counting else {
            continue;
        };
        let planned = host.steps.iter().filter(|s| s.module == spec.name).count();
        if pair.kind == PairKind::Bracket && planned % 2 == 1 {
            host.steps.retain(|s| s.module != spec.name);
        }
    }
    host
}

/// How the module a plan step names counts.
fn counting(module: &str) -> Option<Counting> {
    modules::spec(module).map(|s| s.counting)
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
        let spec = call.and_then(|c| modules::spec(&c.module));
        let state = call
            .and_then(|c| c.args.get("state"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut collected = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let plan = self.host_plan(&mut collected, host);
        if spec.is_some_and(|s| s.provides == Provides::ExchangeFacts) && plan.facts.is_null() {
            let facts = result.get("exchange").unwrap_or(result);
            plan.facts = summary(facts);
            plan.risks.extend(risks_from(facts));
            plan.risks.sort();
            plan.risks.dedup();
        }
        let msg = msg.clone().unwrap_or_default();
        let at = At {
            play,
            task_index: *task_index,
            task,
        };
        if let Some(spec) = spec {
            if let Some(undo) = undo_step(plan, spec, &at, &state, *status) {
                plan.steps.push(undo);
                return;
            }
            let would_run_script = *status == TaskStatus::Skipped
                && spec.foresight == Foresight::Unpredictable
                && msg.contains("check mode");
            if *status == TaskStatus::Changed || would_run_script {
                let seq = collected.sequence.entry(host.clone()).or_default();
                let steps = counted_steps(seq, spec, &at, &msg, result);
                self.host_plan(&mut collected, host).steps.extend(steps);
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

/// Which task a step comes from.
struct At<'a> {
    play: usize,
    task_index: usize,
    task: &'a str,
}

/// The steps a task that would change something stands for, as its module counts
/// ([`Counting`]): one, or none, or for an update task that walks the path, every step left.
fn counted_steps(
    seq: &mut UpdateSequence,
    spec: &ModuleSpec,
    at: &At<'_>,
    msg: &str,
    result: &Value,
) -> Vec<Step> {
    match spec.counting {
        Counting::UpdatePath => path_steps(seq, spec, at, result),
        Counting::AfterUpdate if seq.planned == 0 || (seq.last_planned && !seq.restarted_since) => {
            seq.restarted_since = seq.planned > 0;
            vec![step(spec, at, msg, None)]
        }
        Counting::AfterUpdate => Vec::new(),
        Counting::Plain | Counting::Paired(_) => vec![step(spec, at, msg, None)],
    }
}

/// The steps of the assessed path that the next would-install task stands for: the next one,
/// or, when the task walks the path (`walk: true` in its result), every one left, each with the
/// restart the walk takes after it.
fn path_steps(
    seq: &mut UpdateSequence,
    spec: &ModuleSpec,
    at: &At<'_>,
    result: &Value,
) -> Vec<Step> {
    let path: Vec<PathStep> = result
        .get("steps")
        .and_then(|steps| serde_json::from_value(steps.clone()).ok())
        .unwrap_or_default();
    let walks = result.get("walk") == Some(&Value::Bool(true));
    let left = path.get(seq.planned..).unwrap_or_default();
    let take = if walks { left.len() } else { left.len().min(1) };
    if take == 0 {
        seq.last_planned = false;
        return Vec::new();
    }
    seq.planned += take;
    seq.last_planned = true;
    // A walk restarts after each of its steps itself.
    seq.restarted_since = walks;
    left[..take]
        .iter()
        .map(|next| Step {
            reboot: walks || spec.reboots,
            ..step(spec, at, &next.reason, Some(next))
        })
        .collect()
}

/// The plan step for a task of module `spec` whose check said `msg`, installing `update`
/// where it is an update-path step.
fn step(spec: &ModuleSpec, at: &At<'_>, msg: &str, update: Option<&PathStep>) -> Step {
    let reason = match spec.reason {
        Reason::Check => msg,
        Reason::Text(text) => text,
    };
    Step {
        play: at.play,
        task_index: at.task_index,
        task: at.task.to_string(),
        module: spec.name.to_string(),
        action: spec.action.text(at.task, update),
        reason: reason.to_string(),
        reboot: spec.reboots,
        estimated_seconds: spec.estimate.seconds(update),
        non_idempotent: spec.effect == Effect::ChangesHosts,
    }
}

/// Check mode cannot see a state the plan itself creates: a planned "enter maintenance" means
/// the later "leave maintenance" will be needed, and a planned mitigation on a server the plan
/// patches will be removed once the server is verified fixed (the module refuses otherwise).
/// Which modules pair up, and how, is their [`Pair`].
fn undo_step(
    plan: &HostPlan,
    spec: &ModuleSpec,
    at: &At<'_>,
    state: &str,
    status: TaskStatus,
) -> Option<Step> {
    let Counting::Paired(pair) = spec.counting else {
        return None;
    };
    if !matches!(status, TaskStatus::Ok | TaskStatus::Skipped) || state != pair.undo_state {
        return None;
    }
    let opened = plan.steps.iter().any(|s| s.module == spec.name);
    let update_work = plan
        .steps
        .iter()
        .any(|s| counting(&s.module) == Some(Counting::UpdatePath));
    let needed = match pair.kind {
        PairKind::Bracket => opened,
        PairKind::StopGap => opened && update_work,
    };
    needed.then(|| Step {
        reason: pair.reason.to_string(),
        ..step(spec, at, "", None)
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
