//! `exchange_health`: DAG copy health, queue lengths, content indexes, replication and service
//! checks, components and the transport queue, for salve's health gate around maintenance.
//!
//! `Test-ReplicationHealth` fails its `ClusterService`/`ReplayService` checks while the
//! cluster node is not Up, and `DBCopySuspended`/`DBCopyFailed` while a copy is Failed or
//! Suspended; `Test-ServiceHealth` lists a role's required services that are not running.

use super::facts::copies;
use crate::command::Out;
use crate::fleet_core::FleetCore;
use crate::state::HostState;
use salve_contract::contract::{HealthAnswer, ScriptId};

/// Services `Test-ServiceHealth` requires for the Mailbox role (a subset the lab runs).
const REQUIRED: [&str; 4] = [
    "MSExchangeIS",
    "MSExchangeRepl",
    "MSExchangeTransport",
    "W3SVC",
];

/// Answer with the host's health. Where this process cannot load Exchange's cmdlets
/// (`unmanageable`, see [`super::exchange_shell`]) the script writes the error and exits 1
/// before it answers.
pub(super) fn run(core: &FleetCore, idx: usize, out: &Out, unmanageable: Option<&str>) -> i32 {
    if let Some(why) = unmanageable {
        out.error(&[why.to_string()]);
        return 1;
    }
    let answer = core.with_host(idx, |s| health(s));
    super::answer(core, idx, ScriptId::ExchangeHealth, out, &answer);
    0
}

/// The health answer for a host (also the gates' view in `exchange_maintenance`).
pub(super) fn health(s: &HostState) -> HealthAnswer {
    let copies = copies(s);
    let mut failed_checks = Vec::new();
    if s.dag.is_some() {
        if s.cluster_node.as_deref() != Some("Up") {
            failed_checks.push("ClusterService: Failed".to_string());
        }
        if copies
            .iter()
            .any(|c| c.status == "Failed" || c.status == "Suspended")
        {
            failed_checks.push("DBCopySuspended: Failed".to_string());
        }
    }
    failed_checks.extend(
        s.services
            .iter()
            .filter(|v| REQUIRED.contains(&v.name.as_str()) && v.status != "Running")
            .map(|v| format!("Mailbox: {} not running", v.name)),
    );
    HealthAnswer {
        dag: s.dag.clone(),
        all_copies_healthy: copies
            .iter()
            .all(|c| c.status == "Mounted" || c.status == "Healthy"),
        max_copy_queue_length: copies
            .iter()
            .map(|c| c.copy_queue_length)
            .max()
            .unwrap_or(0),
        max_replay_queue_length: copies
            .iter()
            .map(|c| c.replay_queue_length)
            .max()
            .unwrap_or(0),
        unhealthy_content_indexes: s
            .copies
            .iter()
            .filter(|c| s.ha.content_index_failed.contains(&c.database))
            .map(|c| c.database.clone())
            .collect(),
        copies,
        cluster_node_state: s.cluster_node.clone(),
        activation_policy: s.dag.as_ref().map(|_| s.activation_policy.clone()),
        failed_checks,
        inactive_components: s.inactive_components(),
        transport_queue_length: Some(s.ha.transport_queue),
    }
}
