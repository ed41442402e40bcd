//! `exchange_maintenance`: entering drains the transport queues, pauses the cluster node,
//! moves active databases to another DAG member and blocks activation; leaving restores the
//! recorded activation policy. Each answers with the health gates salve checks.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::health::health;
use super::pipeline::{self, Emit};
use crate::command::{EXIT_TERMINATED, Out, sim_sleep};
use crate::fleet_core::FleetCore;
use crate::log::LabEvent;
use crate::state::HostState;
use salve_contract::contract::{
    MaintenanceAction, MaintenanceAnswer, MaintenanceGates, MaintenanceRequest, MovedDatabase,
    ScriptId,
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

fn gates(s: &HostState, action: MaintenanceAction) -> MaintenanceGates {
    let health = health(s);
    match action {
        MaintenanceAction::Enter => MaintenanceGates {
            no_active_copies: s.copies.iter().all(|c| !c.active),
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

fn maintenance_answer(
    s: &HostState,
    action: MaintenanceAction,
    previous: String,
    moved: Vec<MovedDatabase>,
) -> MaintenanceAnswer {
    MaintenanceAnswer {
        changed: false,
        success: true,
        reason: None,
        previous_activation_policy: s.dag.as_ref().map(|_| previous),
        activation_policy: s.dag.as_ref().map(|_| s.activation_policy.clone()),
        component_states: s.effective_components(),
        moved_databases: moved,
        cluster_node_state: s.cluster_node.clone(),
        gates: gates(s, action),
    }
}

/// A DAG peer that can take active databases, preferring `preferred` (name or FQDN).
fn pick_target(core: &FleetCore, idx: usize, preferred: Option<&str>) -> Option<usize> {
    let eligible: Vec<usize> = core
        .dag_peers(idx)
        .into_iter()
        .filter(|&p| {
            core.with_host(p, |s| {
                s.is_up()
                    && !s.faults.unreachable
                    && s.cluster_node.as_deref() != Some("Paused")
                    && s.activation_policy != "Blocked"
            })
        })
        .collect();
    let short = preferred.map(|p| p.split('.').next().unwrap_or(p).to_ascii_lowercase());
    eligible
        .iter()
        .copied()
        .find(|&p| short.as_deref() == Some(core.name(p).to_ascii_lowercase().as_str()))
        .or_else(|| eligible.first().copied())
}

/// Enter or leave maintenance mode; exit 1 when a gate is not met.
pub(super) async fn run(
    core: &FleetCore,
    idx: usize,
    req: &MaintenanceRequest,
    out: &Out,
    kill: &CancellationToken,
) -> i32 {
    let host = core.name(idx).to_string();
    let previous = core.with_host(idx, |s| s.activation_policy.clone());
    let answer = match req.action {
        MaintenanceAction::Enter => {
            let already = core.with_host(idx, |s| {
                s.component("ServerWideOffline")
                    .is_some_and(|c| c.requesters.iter().any(|r| r == MAINTENANCE))
            });
            if already {
                core.with_host(idx, |s| {
                    maintenance_answer(s, req.action, previous, Vec::new())
                })
            } else {
                enter(core, idx, &host, req, previous, out, kill).await
            }
        }
        MaintenanceAction::Leave => {
            out.line("Set-ServerComponentState ServerWideOffline Active; StopDagServerMaintenance.ps1; HubTransport Active");
            let restored = req
                .saved_policy
                .clone()
                .unwrap_or_else(|| "Unrestricted".to_string());
            let mut answer = core.with_host(idx, |s| {
                let was_in = s
                    .components
                    .iter()
                    .any(|c| c.requesters.iter().any(|r| r == MAINTENANCE));
                s.set_component("ServerWideOffline", "Active", MAINTENANCE);
                s.set_component("UMCallRouter", "Active", MAINTENANCE);
                s.set_component("HubTransport", "Active", MAINTENANCE);
                if s.dag.is_some() {
                    s.cluster_node = Some("Up".to_string());
                    s.activation_policy = restored.clone();
                    s.copies
                        .iter_mut()
                        .for_each(|c| c.activation_suspended = false);
                }
                let mut a = maintenance_answer(s, req.action, previous.clone(), Vec::new());
                a.changed = was_in || previous != s.activation_policy;
                a
            });
            if answer.changed {
                core.record(
                    idx,
                    LabEvent::MaintenanceLeft {
                        restored_policy: restored,
                    },
                );
            }
            answer.success =
                answer.gates.components_as_expected && answer.gates.cluster_node_as_expected;
            if !answer.success {
                answer.reason = Some("components or the cluster node did not come back".into());
            }
            answer
        }
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

async fn enter(
    core: &FleetCore,
    idx: usize,
    host: &str,
    req: &MaintenanceRequest,
    previous: String,
    out: &Out,
    kill: &CancellationToken,
) -> MaintenanceAnswer {
    out.line("Set-ServerComponentState HubTransport Draining; Restart-Service MSExchangeTransport");
    let in_dag = core.with_host(idx, |s| {
        s.set_component("HubTransport", "Draining", MAINTENANCE);
        if s.roles.iter().any(|r| r == "UnifiedMessaging") {
            s.set_component("UMCallRouter", "Draining", MAINTENANCE);
        }
        s.dag.is_some()
    });
    let mut moved = Vec::new();
    if in_dag {
        out.line("StartDagServerMaintenance.ps1 -PauseClusterNode");
        let (actives, reported) = core.with_host(idx, |s| {
            let reported = active_before(s);
            s.activation_policy = "Blocked".to_string();
            s.cluster_node = Some("Paused".to_string());
            let actives = s
                .copies
                .iter()
                .filter(|c| c.active)
                .map(|c| c.database.clone())
                .collect::<Vec<_>>();
            (actives, reported)
        });
        // StartDagServerMaintenance can take minutes, silently.
        if !sim_sleep(core, Duration::from_secs(180), kill).await {
            return core.with_host(idx, |s| maintenance_answer(s, req.action, previous, moved));
        }
        for db in actives {
            let Some(target) = pick_target(core, idx, req.redirect_target.as_deref()) else {
                // The script undoes everything except completed moves.
                let mut a = core.with_host(idx, |s| {
                    s.activation_policy = previous.clone();
                    s.cluster_node = Some("Up".to_string());
                    s.set_component("HubTransport", "Active", MAINTENANCE);
                    s.set_component("UMCallRouter", "Active", MAINTENANCE);
                    maintenance_answer(s, req.action, previous.clone(), moved.clone())
                });
                a.success = false;
                a.changed = !moved.is_empty();
                a.reason = Some(format!(
                    "no healthy DAG member can take database {db}; maintenance was rolled back"
                ));
                return a;
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
                    from: host.to_string(),
                    to: to.clone(),
                },
            );
            if reported.contains(&db) {
                moved.push(MovedDatabase {
                    database: db,
                    from: host.to_string(),
                    to,
                });
            }
        }
    }
    if let Some(target) = &req.redirect_target {
        out.line(&format!("Redirect-Message -Target {target}"));
    }
    out.line("Set-ServerComponentState ServerWideOffline Inactive -Requester Maintenance");
    let mut answer = core.with_host(idx, |s| {
        s.set_component("ServerWideOffline", "Inactive", MAINTENANCE);
        maintenance_answer(s, req.action, previous.clone(), moved)
    });
    core.record(
        idx,
        LabEvent::MaintenanceEntered {
            previous_policy: previous,
        },
    );
    answer.changed = true;
    let g = &answer.gates;
    answer.success = g.no_active_copies && g.components_as_expected && g.cluster_node_as_expected;
    answer
}
