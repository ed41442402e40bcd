//! `salve apply plan.json`: do exactly what a change board approved. Refused when the plan was
//! edited after approval, lacks the required trusted approvals, or when the playbook or
//! inventory changed since planning. Hosts outside their maintenance window, or whose planned
//! work would overrun it, are deferred. The run then executes only the plan's steps, and a host
//! whose facts drifted since planning is left alone and reported as drifted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::Selection;
use crate::exit;
use crate::plan::Plan;
use crate::queue::enqueue::{Approved, ApprovedHost};
use crate::runner::{PlanGate, RunOptions};
use crate::schedule::{Decision, Schedule};

/// Arguments of `salve apply`.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The approved plan.
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// How many distinct trusted approvals the plan needs (0 applies an unapproved plan).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub require_approvals: usize,
    /// Folder of approvers' `.pub` keys to trust.
    #[arg(long, value_name = "DIR")]
    pub trusted_keys: Option<PathBuf>,
    /// Start work regardless of maintenance windows.
    #[arg(long)]
    pub ignore_windows: bool,
    /// Judge maintenance windows as if it were this time (RFC 3339), for rehearsals.
    #[arg(long, value_name = "TIME")]
    pub at: Option<jiff::Timestamp>,
    /// Hosts worked on at once.
    #[arg(short = 'f', long, default_value_t = 50, value_name = "N")]
    pub forks: usize,
    #[arg(long)]
    pub json: bool,
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
    #[arg(long)]
    pub no_progress: bool,
    /// Enqueue the approved work in this queue database for `salve runner`s and follow it
    /// (`postgres://role@host/db`). Each host waits in the queue for a maintenance-window
    /// opening with room for its planned work, judged by the database's clock.
    #[arg(long, value_name = "URL", conflicts_with = "at")]
    pub queue: Option<String>,
    /// With --queue: enqueue, print the run's id and return (`salve queue follow RUN` later):
    /// hosts may wait days for their windows.
    #[arg(long, requires = "queue")]
    pub detach: bool,
}

pub fn run(args: ApplyArgs) -> u8 {
    let plan = match Plan::load(&args.plan) {
        Ok(p) => p,
        Err(e) => return super::print_error(&e, exit::INVALID_INPUT),
    };
    if let Err(code) = check_approvals(&plan, &args) {
        return code;
    }
    let selection = Selection {
        inventories: plan.inventory.sources.iter().map(PathBuf::from).collect(),
        limit: plan.selection.limit.clone(),
        tenant: plan.selection.tenant.clone(),
        all_tenants: plan.selection.all_tenants,
        extra_vars: Vec::new(),
    };
    let mut prepared = match super::run::prepare(&PathBuf::from(&plan.playbook.path), &selection) {
        Ok(p) => p,
        Err(diags) => {
            eprint!("{}", diags.render());
            return exit::INVALID_INPUT;
        }
    };
    if prepared.input.playbook.digest != plan.playbook.sha256 {
        eprintln!(
            "error: {} changed since the plan was made; plan again and have it approved",
            plan.playbook.path
        );
        return exit::INVALID_INPUT;
    }
    if prepared.input.inventory.digest != plan.inventory.sha256 {
        eprintln!(
            "error: the inventory changed since the plan was made; plan again and have it approved"
        );
        return exit::INVALID_INPUT;
    }
    let now = args.at.unwrap_or_else(jiff::Timestamp::now);
    if args.ignore_windows {
        eprintln!("warning: --ignore-windows: maintenance windows are NOT being respected");
    }
    let work = planned_work(&plan, &prepared.input.inventory, args.ignore_windows);
    let allowed = if args.queue.is_some() {
        work.iter().map(|w| w.planned.name.clone()).collect()
    } else {
        hosts_to_start(&work, now)
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
    let options = RunOptions {
        forks: args.forks.max(1),
        extra_vars: prepared.extra_vars,
        run_id: super::run::run_id(),
        gate: Some(Arc::new(PlanGate::new(steps, facts))),
        plan_digest: Some(plan.digest()),
        ..RunOptions::default()
    };
    let report = crate::report::Options {
        json: args.json,
        no_progress: args.no_progress,
        report_dir: args.report_dir.clone(),
    };
    let runtime = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    if let Some(url) = &args.queue {
        let approved = approved_hosts(&work, now);
        return runtime.block_on(super::queue::run_queued(
            url,
            prepared.input,
            options,
            &report,
            Some(&approved),
            args.detach,
        ));
    }
    runtime.block_on(async move {
        let connector = Arc::new(super::run::standard_connector());
        super::run::execute(prepared.input, options, connector, &report).await
    })
}

fn check_approvals(plan: &Plan, args: &ApplyArgs) -> Result<(), u8> {
    if args.require_approvals == 0 {
        eprintln!("warning: applying without checking approvals (--require-approvals 0)");
        return Ok(());
    }
    let Some(dir) = &args.trusted_keys else {
        eprintln!(
            "error: --trusted-keys DIR is needed to check the plan's approvals (or --require-approvals 0)"
        );
        return Err(exit::INVALID_INPUT);
    };
    match crate::plan::verify(plan, dir, args.require_approvals) {
        Ok(approvers) => {
            let names: Vec<String> = approvers.iter().map(|a| a.name.clone()).collect();
            eprintln!("plan {} approved by {}", plan.digest(), names.join(", "));
            Ok(())
        }
        Err(e) => Err(super::print_error(&e, exit::INVALID_INPUT)),
    }
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
/// work. Deferred hosts are listed.
fn hosts_to_start(work: &[HostWork], now: jiff::Timestamp) -> BTreeSet<String> {
    let mut allowed = BTreeSet::new();
    for w in work {
        let host = &w.planned.name;
        match w.schedule.as_ref().map(|s| s.can_start(now, w.estimate)) {
            None | Some(Decision::Start) => {
                allowed.insert(host.clone());
            }
            Some(Decision::Defer { reason, next }) => {
                eprintln!("deferred: {host}: {reason}; next window opens {next}")
            }
            Some(Decision::NeverFits { reason }) => eprintln!("deferred: {host}: {reason}"),
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
