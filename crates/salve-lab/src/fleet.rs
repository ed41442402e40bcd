//! The simulated fleet: every host's state, the shared clock and state log, DAG membership,
//! loopback addresses, and the [`SimHost`] handles the protocol front ends serve.
//!
//! A [`Fleet`] is built from a resolved scenario ([`FleetSpec`]). It can be turned into a
//! [`FleetSnapshot`] (plain data) and back, which is how `salve lab shell` keeps state between
//! SSH commands.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::clock::{ClockRecord, SimClock};
use crate::fleet_core::FleetCore;
use crate::host_api::{LabProcess, NetFaults, ProtocolEvent, SimHost};
use crate::log::{LabEvent, LogEntry, StateLog};
use crate::scenario::FleetSpec;
use crate::shares::Shares;
use crate::state::{Durations, HostState};

/// The lab's WinRM port on every host address.
pub const WINRM_PORT: u16 = 5985;

/// Loopback address of the host with this index: 127.0.x.y with x, y from the index, never
/// 127.0.0.1.
pub fn address_for(index: usize) -> Ipv4Addr {
    address_in(0, index)
}

/// The same in block `block`: 127.block.x.y, so several fleets (tests, two labs) can run side
/// by side without sharing an address.
pub fn address_in(block: u8, index: usize) -> Ipv4Addr {
    let x = 1 + index / 250;
    let y = 1 + index % 250;
    Ipv4Addr::new(
        127,
        block,
        u8::try_from(x).unwrap_or(u8::MAX),
        u8::try_from(y).unwrap_or(u8::MAX),
    )
}

/// A DAG as the fleet knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DagInfo {
    pub name: String,
    pub members: Vec<String>,
}

/// Plain-data form of a whole fleet (for the state dir and the admin endpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetSnapshot {
    pub clock: ClockRecord,
    pub durations: Durations,
    pub user: String,
    pub password: String,
    #[serde(default)]
    pub shares: Shares,
    pub hosts: Vec<HostState>,
    pub addresses: Vec<SocketAddr>,
    pub log: Vec<LogEntry>,
}

/// One host as the front ends see it.
pub struct LabHost {
    core: Arc<FleetCore>,
    idx: usize,
    name: String,
}

impl SimHost for LabHost {
    fn name(&self) -> &str {
        &self.name
    }

    fn credentials(&self) -> (&str, &str) {
        self.core.credentials()
    }

    fn spawn(&self, command: &str, arguments: &[String]) -> LabProcess {
        crate::process::spawn(Arc::clone(&self.core), self.idx, command, arguments, None)
    }

    fn spawn_in_shell(
        &self,
        command: &str,
        arguments: &[String],
        max_memory_mb: u64,
    ) -> LabProcess {
        let quota = Some(max_memory_mb);
        crate::process::spawn(Arc::clone(&self.core), self.idx, command, arguments, quota)
    }

    fn accepting(&self) -> bool {
        self.core
            .with_host(self.idx, |s| s.is_up() && !s.faults.unreachable)
    }

    fn winrm_accepting(&self) -> bool {
        self.core.with_host(self.idx, |s| {
            s.is_up() && !s.faults.unreachable && s.winrm_down_until.is_none()
        })
    }

    fn winrm_restarts(&self) -> Option<watch::Receiver<u64>> {
        Some(self.core.winrm_watch(self.idx))
    }

    fn boot_watch(&self) -> watch::Receiver<u64> {
        self.core.boot_watch(self.idx)
    }

    fn faults(&self) -> NetFaults {
        self.core.with_host(self.idx, |s| s.faults.net())
    }

    fn record(&self, event: ProtocolEvent) {
        self.core.record(self.idx, LabEvent::Protocol { event });
    }
}

/// A whole simulated fleet.
pub struct Fleet {
    core: Arc<FleetCore>,
    hosts: Vec<Arc<LabHost>>,
    dags: Vec<DagInfo>,
    tenants: Vec<String>,
}

impl Fleet {
    /// Build every host of a resolved scenario; the clock starts now (tokio time).
    pub fn new(spec: &FleetSpec) -> Self {
        Self::new_in_block(spec, 0)
    }

    /// Build a fleet whose hosts live on 127.`block`.x.y (see [`address_in`]).
    pub fn new_in_block(spec: &FleetSpec, block: u8) -> Self {
        let clock = SimClock::start(spec.epoch, spec.time_scale);
        let hosts = spec.hosts.clone();
        let addresses = (0..spec.hosts.len())
            .map(|i| SocketAddr::from((address_in(block, i), WINRM_PORT)))
            .collect();
        Self::assemble(
            clock,
            spec.durations,
            (&spec.user, &spec.password),
            spec.shares.clone(),
            hosts,
            addresses,
            Vec::new(),
        )
    }

    /// Continue a fleet from a snapshot on the wall clock (process-per-command mode).
    pub fn from_snapshot(snap: FleetSnapshot) -> Self {
        let clock = SimClock::resume(&snap.clock);
        Self::assemble(
            clock,
            snap.durations,
            (&snap.user, &snap.password),
            snap.shares,
            snap.hosts,
            snap.addresses,
            snap.log,
        )
    }

    fn assemble(
        clock: SimClock,
        durations: Durations,
        (user, password): (&str, &str),
        shares: Shares,
        hosts: Vec<HostState>,
        addresses: Vec<SocketAddr>,
        log: Vec<LogEntry>,
    ) -> Self {
        let mut dags: Vec<DagInfo> = Vec::new();
        let mut tenants: Vec<String> = Vec::new();
        for h in &hosts {
            if !tenants.contains(&h.tenant) {
                tenants.push(h.tenant.clone());
            }
            if let Some(d) = &h.dag {
                match dags.iter_mut().find(|x| &x.name == d) {
                    Some(x) => x.members.push(h.name.clone()),
                    None => dags.push(DagInfo {
                        name: d.clone(),
                        members: vec![h.name.clone()],
                    }),
                }
            }
        }
        let names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
        let core = Arc::new(FleetCore::new(
            clock,
            durations,
            (user, password),
            shares,
            hosts,
            addresses,
            log,
        ));
        let hosts = names
            .into_iter()
            .enumerate()
            .map(|(idx, name)| {
                Arc::new(LabHost {
                    core: Arc::clone(&core),
                    idx,
                    name,
                })
            })
            .collect();
        Fleet {
            core,
            hosts,
            dags,
            tenants,
        }
    }

    pub fn core(&self) -> &Arc<FleetCore> {
        &self.core
    }

    pub fn hosts(&self) -> &[Arc<LabHost>] {
        &self.hosts
    }

    pub fn host(&self, name: &str) -> Option<&Arc<LabHost>> {
        self.hosts.iter().find(|h| h.name == name)
    }

    pub fn dags(&self) -> &[DagInfo] {
        &self.dags
    }

    pub fn tenants(&self) -> &[String] {
        &self.tenants
    }

    /// The fleet-wide state log.
    pub fn log(&self) -> &StateLog {
        &self.core.log
    }

    /// Current (settled) state of one host.
    pub fn state(&self, name: &str) -> Option<HostState> {
        self.host(name).map(|h| self.core.state(h.idx))
    }

    pub fn snapshot(&self) -> FleetSnapshot {
        FleetSnapshot {
            clock: self.core.clock.record(),
            durations: self.core.durations,
            user: self.core.credentials().0.to_string(),
            password: self.core.credentials().1.to_string(),
            shares: self.core.shares.clone(),
            hosts: (0..self.core.len()).map(|i| self.core.state(i)).collect(),
            addresses: (0..self.core.len()).map(|i| self.core.address(i)).collect(),
            log: self.core.log.entries(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_skip_127_0_0_1_and_are_unique() {
        assert_eq!(address_for(0), Ipv4Addr::new(127, 0, 1, 1));
        assert_eq!(address_for(249), Ipv4Addr::new(127, 0, 1, 250));
        assert_eq!(address_for(250), Ipv4Addr::new(127, 0, 2, 1));
        let all: std::collections::HashSet<_> = (0..2000).map(address_for).collect();
        assert_eq!(all.len(), 2000);
    }
}
