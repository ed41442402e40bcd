//! `exchange_health`: DAG copy health, queue lengths, cluster node state and activation
//! policy, for salve's gates around maintenance.

use super::facts::copies;
use crate::command::Out;
use crate::fleet_core::FleetCore;
use crate::state::HostState;
use salve_contract::contract::{HealthAnswer, ScriptId};

/// Answer with the host's DAG health; always succeeds.
pub(super) fn run(core: &FleetCore, idx: usize, out: &Out) -> i32 {
    let answer = core.with_host(idx, |s| health(s));
    super::answer(core, idx, ScriptId::ExchangeHealth, out, &answer);
    0
}

/// The DAG health answer for a host (also the gates' view in `exchange_maintenance`).
pub(super) fn health(s: &HostState) -> HealthAnswer {
    let copies = copies(s);
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
        copies,
        cluster_node_state: s.cluster_node.clone(),
        activation_policy: s.dag.as_ref().map(|_| s.activation_policy.clone()),
    }
}
