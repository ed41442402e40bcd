//! `exchange_maintenance`: entering records what the server looks like (on the host, in
//! `C:\salve\maintenance.json`), then drains transport, runs StartDagServerMaintenance,
//! redirects queued mail to a peer and takes the server offline, rolling back the steps it took
//! when one fails; leaving undoes only what is still held and restores the record.
//!
//! Exchange rules modelled here (domain reference §4.4/§4.5):
//! - StartDagServerMaintenance.ps1 sets `DatabaseCopyAutoActivationPolicy` Blocked, pauses the
//!   cluster node and moves the active databases to other copies; a database with no other
//!   copy cannot move, and on failure the script undoes everything except completed moves.
//! - StopDagServerMaintenance.ps1 resumes the node and resets the policy to `Unrestricted` and
//!   every copy's `ActivationSuspended` to false ("Preserving Activation Blocks").
//! - `Redirect-Message` refuses this server as its own target.
//! - A component state set to Active takes effect for transport only after
//!   `Restart-Service MSExchangeTransport` (each restart is logged).
//! - A non-replicated (standalone) database stays mounted through maintenance.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::health::health;
use super::pipeline::{self, Emit};
use crate::command::{EXIT_TERMINATED, Out, sim_sleep};
use crate::fleet_core::FleetCore;
use crate::log::LabEvent;
use crate::state::HostState;
use salve_contract::contract::{
    MaintenanceAction, MaintenanceAnswer, MaintenanceGates, MaintenanceRecord, MaintenanceRequest,
    MovedDatabase, ScriptId,
};

const MAINTENANCE: &str = "Maintenance";

/// How `Get-SalveCopies` in `scripts/exchange_maintenance.ps1` hands back the copy list.
pub(super) const COPIES_EMIT: Emit = Emit::Items;

/// The script's `$activeBefore`: `@(Get-SalveCopies | Where-Object { [string] $_.Status -eq
/// 'Mounted' } | ForEach-Object { [string] $_.DatabaseName })`, the databases it reports as
/// moved. StartDagServerMaintenance.ps1 moves every active database whatever this list holds.
fn active_before(s: &HostState) -> Vec<String> {
    let copies: Vec<(String, String)> = s
        .copies
        .iter()
        .map(|c| (c.status(), c.database.clone()))
        .collect();
    pipeline::objects(copies, COPIES_EMIT)
        .into_iter()
        .filter_map(|object| {
            let (status, name): (Vec<String>, Vec<String>) = object.into_iter().unzip();
            (pipeline::as_string(&status) == "Mounted").then(|| pipeline::as_string(&name))
        })
        .collect()
}

/// Mounted databases here with no copy on another server: they cannot move.
fn unmovable(core: &FleetCore, idx: usize) -> Vec<String> {
    let mounted: Vec<String> = core.with_host(idx, |s| {
        s.copies
            .iter()
            .filter(|c| c.active)
            .map(|c| c.database.clone())
            .collect()
    });
    mounted
        .into_iter()
        .filter(|db| core.copies_of(idx, db) <= 1)
        .collect()
}

fn held(s: &HostState, component: &str) -> bool {
    s.component(component)
        .is_some_and(|c| c.requesters.iter().any(|r| r == MAINTENANCE))
}

fn gates(s: &HostState, action: MaintenanceAction, outage: &[String]) -> MaintenanceGates {
    let health = health(s);
    match action {
        MaintenanceAction::Enter => MaintenanceGates {
            no_active_copies: s
                .copies
                .iter()
                .all(|c| !c.active || outage.contains(&c.database)),
            components_as_expected: s
                .effective_components()
                .iter()
                .filter(|c| c.state == "Active")
                .all(|c| c.component == "Monitoring" || c.component == "RecoveryActionsEnabled"),
            cluster_node_as_expected: s.cluster_node.as_deref().is_none_or(|n| n == "Paused"),
            copies_healthy: health.all_copies_healthy,
        },
        MaintenanceAction::Leave => MaintenanceGates {
            no_active_copies: s.copies.iter().all(|c| !c.active),
            components_as_expected: s.inactive_components().is_empty(),
            cluster_node_as_expected: s.cluster_node.as_deref().is_none_or(|n| n == "Up"),
            copies_healthy: health.all_copies_healthy,
        },
    }
}

/// What the server looks like now, as entering records it.
fn record_of(s: &HostState, now: jiff::Timestamp) -> MaintenanceRecord {
    MaintenanceRecord {
        already_in_maintenance: held(s, "ServerWideOffline"),
        activation_policy: s.dag.as_ref().map(|_| s.activation_policy.clone()),
        activation_suspended: s
            .copies
            .iter()
            .filter(|c| c.activation_suspended)
            .map(|c| c.database.clone())
            .collect(),
        cluster_node_state: s.cluster_node.clone(),
        component_states: s.effective_components(),
        recorded_at: Some(now.to_string()),
    }
}

/// The answer, before the caller decides success.
struct Answer {
    record: Option<MaintenanceRecord>,
    moved: Vec<MovedDatabase>,
    outage: Vec<String>,
    steps: Vec<String>,
    failure: Option<String>,
}

impl Answer {
    fn new(record: Option<MaintenanceRecord>) -> Self {
        Answer {
            record,
            moved: Vec::new(),
            outage: Vec::new(),
            steps: Vec::new(),
            failure: None,
        }
    }

    fn step(&mut self, out: &Out, what: &str) {
        out.line(what);
        self.steps.push(what.to_string());
    }

    fn finish(self, s: &HostState, action: MaintenanceAction) -> MaintenanceAnswer {
        let gates = gates(s, action, &self.outage);
        let met = match action {
            MaintenanceAction::Enter => {
                gates.no_active_copies
                    && gates.components_as_expected
                    && gates.cluster_node_as_expected
            }
            MaintenanceAction::Leave => {
                gates.components_as_expected && gates.cluster_node_as_expected
            }
        };
        let reason = self.failure.or_else(|| {
            (!met).then(|| "components or the cluster node are not as expected".to_string())
        });
        MaintenanceAnswer {
            changed: !self.steps.is_empty(),
            success: reason.is_none(),
            reason,
            record: self.record,
            activation_policy: s.dag.as_ref().map(|_| s.activation_policy.clone()),
            component_states: s.effective_components(),
            moved_databases: self.moved,
            outage_databases: self.outage,
            steps: self.steps,
            cluster_node_state: s.cluster_node.clone(),
            gates,
        }
    }
}

/// Enter or leave maintenance mode; exit 1 when a step or a gate fails.
pub(super) async fn run(
    core: &FleetCore,
    idx: usize,
    req: &MaintenanceRequest,
    out: &Out,
    kill: &CancellationToken,
    unmanageable: Option<&str>,
) -> i32 {
    // The script loads Exchange before anything else and stops when it cannot.
    if let Some(why) = unmanageable {
        out.error(&[why.to_string()]);
        return 1;
    }
    let answer = match req.action {
        MaintenanceAction::Enter => enter(core, idx, req, out, kill).await,
        MaintenanceAction::Leave => leave(core, idx, req, out),
    };
    if kill.is_cancelled() {
        return EXIT_TERMINATED;
    }
    if let Some(reason) = &answer.reason {
        out.error(std::slice::from_ref(reason));
    }
    super::answer(core, idx, ScriptId::ExchangeMaintenance, out, &answer);
    i32::from(!answer.success)
}

/// `Restart-Service MSExchangeTransport`.
fn restart_transport(core: &FleetCore, idx: usize, a: &mut Answer, out: &Out) {
    a.step(out, "Restart-Service MSExchangeTransport");
    core.record(idx, LabEvent::TransportRestarted);
}

async fn enter(
    core: &FleetCore,
    idx: usize,
    req: &MaintenanceRequest,
    out: &Out,
    kill: &CancellationToken,
) -> MaintenanceAnswer {
    let now = core.clock.now();
    let (kept, record) = core.with_host(idx, |s| (s.ha.record.clone(), record_of(s, now)));
    let outage = unmovable(core, idx);
    if let Some(kept) = kept {
        out.line("already in maintenance: entered by salve, its record kept");
        let mut a = Answer::new(Some(kept));
        a.outage = outage;
        return core.with_host(idx, |s| a.finish(s, req.action));
    }
    core.with_host(idx, |s| s.ha.record = Some(record.clone()));
    let mut a = Answer::new(Some(record.clone()));
    a.outage = outage;
    if record.already_in_maintenance {
        out.line("already in maintenance before salve: recorded so, nothing changed");
        return core.with_host(idx, |s| a.finish(s, req.action));
    }
    for db in &a.outage {
        out.line(&format!(
            "{db} has no other copy: it stays mounted here (planned outage)"
        ));
    }
    a.step(out, "Set-ServerComponentState HubTransport Draining");
    let (in_dag, um) = core.with_host(idx, |s| {
        s.set_component("HubTransport", "Draining", MAINTENANCE);
        (
            s.dag.is_some(),
            s.roles.iter().any(|r| r == "UnifiedMessaging"),
        )
    });
    restart_transport(core, idx, &mut a, out);
    if um {
        a.step(out, "Set-ServerComponentState UMCallRouter Draining");
        core.with_host(idx, |s| {
            s.set_component("UMCallRouter", "Draining", MAINTENANCE)
        });
    }
    if in_dag && let Err(why) = start_dag_maintenance(core, idx, &mut a, out, kill).await {
        a.failure = Some(why);
        return rollback(core, idx, a, &record, out);
    }
    if kill.is_cancelled() {
        return core.with_host(idx, |s| a.finish(s, req.action));
    }
    if let Err(why) = redirect(core, idx, req, &mut a, out) {
        a.failure = Some(why);
        return rollback(core, idx, a, &record, out);
    }
    a.step(
        out,
        "Set-ServerComponentState ServerWideOffline Inactive -Requester Maintenance",
    );
    core.with_host(idx, |s| {
        s.set_component("ServerWideOffline", "Inactive", MAINTENANCE)
    });
    core.record(
        idx,
        LabEvent::MaintenanceEntered {
            previous_policy: record.activation_policy.clone().unwrap_or_default(),
        },
    );
    core.with_host(idx, |s| a.finish(s, req.action))
}

/// StartDagServerMaintenance.ps1 -PauseClusterNode: on failure it has undone its own changes
/// except completed moves.
async fn start_dag_maintenance(
    core: &FleetCore,
    idx: usize,
    a: &mut Answer,
    out: &Out,
    kill: &CancellationToken,
) -> Result<(), String> {
    a.step(out, "StartDagServerMaintenance.ps1 -PauseClusterNode");
    let host = core.name(idx).to_string();
    let outage = a.outage.clone();
    let (actives, reported, before) = core.with_host(idx, |s| {
        let before = (s.activation_policy.clone(), s.cluster_node.clone());
        s.activation_policy = "Blocked".to_string();
        s.cluster_node = Some("Paused".to_string());
        // A single-copy database has nowhere to go: it stays mounted (the planned outage).
        // Unverified on Windows: that StartDagServerMaintenance leaves it mounted and goes on.
        let actives: Vec<String> = s
            .copies
            .iter()
            .filter(|c| c.active && !outage.contains(&c.database))
            .map(|c| c.database.clone())
            .collect();
        (actives, active_before(s), before)
    });
    // StartDagServerMaintenance can take minutes, silently.
    if !sim_sleep(core, Duration::from_secs(180), kill).await {
        return Ok(());
    }
    for db in actives {
        let Some(target) = move_target(core, idx, &db) else {
            core.with_host(idx, |s| {
                (s.activation_policy, s.cluster_node) = before.clone();
            });
            return Err(format!(
                "StartDagServerMaintenance: no healthy DAG member can take database {db}"
            ));
        };
        let to = core.name(target).to_string();
        core.with_host(target, |s| {
            s.copies
                .iter_mut()
                .filter(|c| c.database == db)
                .for_each(|c| c.active = true)
        });
        core.with_host(idx, |s| {
            s.copies
                .iter_mut()
                .filter(|c| c.database == db)
                .for_each(|c| c.active = false)
        });
        out.line(&format!("Moved {db} to {to}"));
        core.record(
            idx,
            LabEvent::DatabaseMoved {
                database: db.clone(),
                from: host.clone(),
                to: to.clone(),
            },
        );
        if reported.contains(&db) {
            a.moved.push(MovedDatabase {
                database: db,
                from: host.clone(),
                to,
            });
        }
    }
    Ok(())
}

/// A DAG peer holding a copy of `db` that can take it: up, not paused, activation not blocked
/// for the server or for that copy.
fn move_target(core: &FleetCore, idx: usize, db: &str) -> Option<usize> {
    core.dag_peers(idx).into_iter().find(|&p| {
        core.with_host(p, |s| {
            s.is_up()
                && !s.faults.unreachable
                && s.cluster_node.as_deref() != Some("Paused")
                && s.activation_policy != "Blocked"
                && s.copies
                    .iter()
                    .any(|c| c.database == db && !c.activation_suspended)
        })
    })
}

/// The script's redirect: the given target unless it is this server, else a peer in the same
/// site (the lab's tenant), DAG members first, that is not in maintenance and has HubTransport
/// Active. Exchange refuses this server as the target.
fn redirect(
    core: &FleetCore,
    idx: usize,
    req: &MaintenanceRequest,
    a: &mut Answer,
    out: &Out,
) -> Result<(), String> {
    let me = core.name(idx).to_ascii_lowercase();
    let short = |t: &str| t.split('.').next().unwrap_or(t).to_ascii_lowercase();
    let given = req.redirect_target.as_deref().filter(|t| short(t) != me);
    if req.redirect_target.is_some() && given.is_none() {
        out.line("the redirect target given is this server: choosing a peer instead");
    }
    let target = match given {
        Some(t) => (0..core.len()).find(|&p| core.name(p).eq_ignore_ascii_case(&short(t))),
        None => pick_peer(core, idx),
    };
    let Some(target) = target else {
        out.line("No other transport server found: queued mail stays on this server");
        return Ok(());
    };
    let name = core.name(target).to_string();
    a.step(out, &format!("Redirect-Message -Target {name}"));
    if target == idx {
        return Err("Redirect-Message: the target cannot be the server itself".to_string());
    }
    let queued = core.with_host(idx, |s| std::mem::take(&mut s.ha.transport_queue));
    core.with_host(target, |s| s.ha.transport_queue += queued);
    Ok(())
}

fn pick_peer(core: &FleetCore, idx: usize) -> Option<usize> {
    let tenant = core.with_host(idx, |s| s.tenant.clone());
    let eligible = |p: usize| {
        core.with_host(p, |s| {
            s.tenant == tenant
                && s.is_up()
                && !held(s, "ServerWideOffline")
                && s.component("HubTransport")
                    .is_some_and(|c| c.state == "Active")
        })
    };
    let dag = core.dag_peers(idx);
    dag.iter()
        .copied()
        .find(|&p| eligible(p))
        .or_else(|| (0..core.len()).find(|&p| p != idx && eligible(p)))
}

/// Undo the steps entering took, last first, and restore the record.
fn rollback(
    core: &FleetCore,
    idx: usize,
    mut a: Answer,
    record: &MaintenanceRecord,
    out: &Out,
) -> MaintenanceAnswer {
    out.line("entering failed: rolling back the steps taken");
    undo(core, idx, record, &mut a, out, "rollback: ");
    core.with_host(idx, |s| a.finish(s, MaintenanceAction::Enter))
}

/// The script's `Invoke-SalveUndo`: undo what maintenance still holds, each step only when
/// needed, then restore the recorded policy and per-copy suspension and drop the record.
fn undo(
    core: &FleetCore,
    idx: usize,
    record: &MaintenanceRecord,
    a: &mut Answer,
    out: &Out,
    prefix: &str,
) {
    let (swo, um, stop_dag) = core.with_host(idx, |s| {
        let paused_by_us = s.cluster_node.as_deref() == Some("Paused")
            && record.cluster_node_state.as_deref() != Some("Paused");
        let blocked_by_us = s.activation_policy == "Blocked"
            && record.activation_policy.as_deref() != Some("Blocked");
        (
            held(s, "ServerWideOffline"),
            held(s, "UMCallRouter"),
            s.dag.is_some() && (paused_by_us || blocked_by_us),
        )
    });
    if swo {
        a.step(
            out,
            &format!("{prefix}Set-ServerComponentState ServerWideOffline Active"),
        );
        core.with_host(idx, |s| {
            s.set_component("ServerWideOffline", "Active", MAINTENANCE)
        });
    }
    if um {
        a.step(
            out,
            &format!("{prefix}Set-ServerComponentState UMCallRouter Active"),
        );
        core.with_host(idx, |s| {
            s.set_component("UMCallRouter", "Active", MAINTENANCE)
        });
    }
    if stop_dag {
        a.step(out, &format!("{prefix}StopDagServerMaintenance.ps1"));
        core.with_host(idx, |s| {
            s.cluster_node = Some("Up".to_string());
            s.activation_policy = "Unrestricted".to_string();
            s.copies
                .iter_mut()
                .for_each(|c| c.activation_suspended = false);
        });
    }
    if core.with_host(idx, |s| held(s, "HubTransport")) {
        a.step(
            out,
            &format!("{prefix}Set-ServerComponentState HubTransport Active"),
        );
        core.with_host(idx, |s| {
            s.set_component("HubTransport", "Active", MAINTENANCE)
        });
        a.step(out, &format!("{prefix}Restart-Service MSExchangeTransport"));
        core.record(idx, LabEvent::TransportRestarted);
    }
    let (policy, unsuspended) = core.with_host(idx, |s| {
        let policy = record
            .activation_policy
            .clone()
            .filter(|p| s.dag.is_some() && *p != s.activation_policy);
        let unsuspended: Vec<String> = s
            .copies
            .iter()
            .filter(|c| {
                !c.activation_suspended && record.activation_suspended.contains(&c.database)
            })
            .map(|c| c.database.clone())
            .collect();
        (policy, unsuspended)
    });
    if let Some(p) = policy {
        a.step(
            out,
            &format!("{prefix}Set-MailboxServer -DatabaseCopyAutoActivationPolicy {p}"),
        );
        core.with_host(idx, |s| s.activation_policy = p);
    }
    for db in unsuspended {
        a.step(
            out,
            &format!("{prefix}Suspend-MailboxDatabaseCopy {db} -ActivationOnly"),
        );
        core.with_host(idx, |s| {
            s.copies
                .iter_mut()
                .filter(|c| c.database == db)
                .for_each(|c| c.activation_suspended = true)
        });
    }
    core.with_host(idx, |s| s.ha.record = None);
}

fn leave(core: &FleetCore, idx: usize, req: &MaintenanceRequest, out: &Out) -> MaintenanceAnswer {
    let kept = core.with_host(idx, |s| s.ha.record.clone());
    let Some(record) = req.record.clone().or(kept) else {
        let held = core.with_host(idx, |s| held(s, "ServerWideOffline"));
        out.line(if held {
            "in maintenance, but not by salve (nothing recorded): left as it is"
        } else {
            "not in maintenance and nothing recorded: nothing to undo"
        });
        return core.with_host(idx, |s| {
            let mut a = Answer::new(None).finish(s, req.action);
            a.success = true;
            a.reason = None;
            a
        });
    };
    let mut a = Answer::new(Some(record.clone()));
    if record.already_in_maintenance {
        out.line("in maintenance before salve came: left in maintenance");
        core.with_host(idx, |s| s.ha.record = None);
        return core.with_host(idx, |s| {
            let mut a = a.finish(s, req.action);
            a.success = true;
            a.reason = None;
            a
        });
    }
    undo(core, idx, &record, &mut a, out, "");
    if !a.steps.is_empty() {
        core.record(
            idx,
            LabEvent::MaintenanceLeft {
                restored_policy: core.with_host(idx, |s| s.activation_policy.clone()),
            },
        );
    } else {
        out.line("nothing left to undo: already out of maintenance");
    }
    core.with_host(idx, |s| a.finish(s, req.action))
}
