//! `salve apply plan.json`: do exactly what a change board approved. Refused when the plan was
//! edited after approval, lacks the required trusted approvals, or when the playbook or
//! inventory changed since planning. Hosts outside their maintenance window, or whose planned
//! work would overrun it, are deferred. The run then executes only the plan's steps, and a host
//! whose facts drifted since planning is left alone and reported as drifted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::run::RunEnd;
use super::{AppError, Console, Selection};
use crate::launch::RunBuilder;
use crate::plan::Plan;
use crate::queue::enqueue::{Approved, ApprovedHost};
use crate::runner::PlanGate;
use crate::schedule::{Decision, Schedule};

/// What `salve apply` was asked to do.
#[derive(Debug, Clone)]
pub struct ApplyRequest {
    pub plan: PathBuf,
    /// Distinct trusted approvals needed (0 applies an unapproved plan).
    pub require_approvals: usize,
    /// Folder of approvers' `.pub` keys to trust.
    pub trusted_keys: Option<PathBuf>,
    pub ignore_windows: bool,
    /// Judge windows as if it were this time (rehearsals).
    pub at: Option<jiff::Timestamp>,
    pub forks: usize,
    pub report: crate::report::Options,
    pub queue: Option<String>,
    pub detach: bool,
}

/// Apply an approved plan.
pub fn apply(request: ApplyRequest, console: &dyn Console) -> Result<RunEnd, AppError> {
    let plan = Plan::load(&request.plan).map_err(|e| AppError::Refused(Box::new(e)))?;
    check_approvals(&plan, &request, console)?;
    let selection = Selection {
        inventories: plan.inventory.sources.iter().map(PathBuf::from).collect(),
        limit: plan.selection.limit.clone(),
        tenant: plan.selection.tenant.clone(),
        all_tenants: plan.selection.all_tenants,
        extra_vars: Vec::new(),
    };
    let mut prepared = super::prepare(&PathBuf::from(&plan.playbook.path), &selection, console)?;
    if prepared.input.playbook.digest != plan.playbook.sha256 {
        return Err(AppError::refused(format!(
            "{} changed since the plan was made; plan again and have it approved",
            plan.playbook.path
        )));
    }
    if prepared.input.inventory.digest != plan.inventory.sha256 {
        return Err(AppError::refused(
            "the inventory changed since the plan was made; plan again and have it approved",
        ));
    }
    let catalogue = crate::exchange::catalogue::catalogue()
        .map(|c| c.version.as_str())
        .unwrap_or_default();
    if plan.catalogue_version != catalogue {
        return Err(AppError::refused(format!(
            "the plan was made with build catalogue `{}` and salve now uses `{catalogue}`: the \
             assessed paths may differ; plan again and have it approved",
            plan.catalogue_version
        )));
    }
    let now = request.at.unwrap_or_else(jiff::Timestamp::now);
    if request.ignore_windows {
        console.notice("warning: --ignore-windows: maintenance windows are NOT being respected");
    }
    let work = planned_work(&plan, &prepared.input.inventory, request.ignore_windows);
    let allowed = if request.queue.is_some() {
        work.iter().map(|w| w.planned.name.clone()).collect()
    } else {
        hosts_to_start(&work, now, console)
    };
    for hosts in &mut prepared.input.play_hosts {
        hosts.retain(|h| allowed.contains(h));
    }
    let steps: BTreeMap<String, BTreeSet<(usize, usize)>> = plan
        .hosts
        .iter()
        .map(|h| (h.name.clone(), planned_steps(h)))
        .collect();
    let facts = plan
        .hosts
        .iter()
        .map(|h| (h.name.clone(), h.facts.clone()))
        .collect();
    let builder = RunBuilder::new(prepared.input, prepared.extra_vars)
        .forks(request.forks)
        .approved(PlanGate::new(steps, facts), Some(plan.digest()));
    let runtime = super::runtime()?;
    if let Some(url) = &request.queue {
        let approved = approved_hosts(&work, now);
        let queued = runtime.block_on(super::queued::run_queued(
            url,
            builder,
            &request.report,
            Some(&approved),
            request.detach,
            console,
        ))?;
        return Ok(queued.into());
    }
    let summary = runtime.block_on(builder.execute(
        Arc::new(crate::launch::standard_connector()),
        &request.report,
    ))?;
    Ok(RunEnd::Ran(summary.exit_code))
}

fn check_approvals(
    plan: &Plan,
    request: &ApplyRequest,
    console: &dyn Console,
) -> Result<(), AppError> {
    if request.require_approvals == 0 {
        console.notice("warning: applying without checking approvals (--require-approvals 0)");
        return Ok(());
    }
    let Some(dir) = &request.trusted_keys else {
        return Err(AppError::refused(
            "--trusted-keys DIR is needed to check the plan's approvals (or --require-approvals 0)",
        ));
    };
    let approvers = crate::plan::verify(plan, dir, request.require_approvals)
        .map_err(|e| AppError::Refused(Box::new(e)))?;
    let names: Vec<String> = approvers.iter().map(|a| a.name.clone()).collect();
    console.notice(&format!(
        "plan {} approved by {}",
        plan.digest(),
        names.join(", ")
    ));
    Ok(())
}

/// `(play, task index)` of a planned host's steps.
fn planned_steps(host: &crate::plan::HostPlan) -> BTreeSet<(usize, usize)> {
    host.steps.iter().map(|s| (s.play, s.task_index)).collect()
}

/// A planned host with work to do: its windows (`None`: any time, or windows ignored) and
/// the estimated length of its planned steps.
struct HostWork<'a> {
    planned: &'a crate::plan::HostPlan,
    schedule: Option<Schedule>,
    estimate: Duration,
}

/// The plan's hosts with steps, each with its windows from the inventory and its estimate.
fn planned_work<'a>(
    plan: &'a Plan,
    inventory: &crate::model::Inventory,
    ignore_windows: bool,
) -> Vec<HostWork<'a>> {
    (plan.hosts.iter().filter(|h| !h.steps.is_empty()))
        .map(|host| HostWork {
            planned: host,
            schedule: (inventory.host(&host.name))
                .and_then(|h| h.settings.schedule.clone())
                .filter(|_| !ignore_windows),
            estimate: Duration::from_secs(host.steps.iter().map(|s| s.estimated_seconds).sum()),
        })
        .collect()
}

/// The hosts that may start now: inside a maintenance window long enough for their planned
/// work. Deferred hosts are told to the console.
fn hosts_to_start(
    work: &[HostWork],
    now: jiff::Timestamp,
    console: &dyn Console,
) -> BTreeSet<String> {
    let mut allowed = BTreeSet::new();
    for w in work {
        let host = &w.planned.name;
        match w.schedule.as_ref().map(|s| s.can_start(now, w.estimate)) {
            None | Some(Decision::Start) => {
                allowed.insert(host.clone());
            }
            Some(Decision::Defer { reason, next }) => console.notice(&format!(
                "deferred: {host}: {reason}; next window opens {next}"
            )),
            Some(Decision::NeverFits { reason }) => {
                console.notice(&format!("deferred: {host}: {reason}"))
            }
        }
    }
    allowed
}

/// What each queued host's work item carries: planned steps and facts, window openings from
/// `now` on, and the estimate. The database decides when each may start.
fn approved_hosts(work: &[HostWork], now: jiff::Timestamp) -> Approved {
    let hosts = work
        .iter()
        .map(|w| {
            let host = ApprovedHost {
                steps: planned_steps(w.planned),
                facts: w.planned.facts.clone(),
                openings: w.schedule.as_ref().map(|s| s.openings(now)),
                estimate: w.estimate,
            };
            (w.planned.name.clone(), host)
        })
        .collect();
    Approved { hosts }
}
