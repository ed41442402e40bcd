//! The simulated fleet: every host's state, the shared clock and state log, DAG membership,
//! loopback addresses, and the [`SimHost`] handles the protocol front ends serve.
//!
//! A [`Fleet`] is built from a resolved scenario ([`FleetSpec`]). It can be turned into a
//! [`FleetSnapshot`] (plain data) and back, which is how `salve lab shell` keeps state between
//! SSH commands.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::clock::{ClockRecord, SimClock};
use crate::host_api::{LabProcess, NetFaults, ProtocolEvent, SimHost};
use crate::log::{LabEvent, LogEntry, StateLog};
use crate::scenario::FleetSpec;
use crate::state::{Durations, HostState, Power};

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

struct Slot {
    name: String,
    state: Mutex<HostState>,
    boot: watch::Sender<u64>,
    address: SocketAddr,
}

/// Shared core of a fleet; hosts and scripts hold it through an `Arc`.
pub struct FleetCore {
    pub clock: SimClock,
    pub durations: Durations,
    user: String,
    password: String,
    slots: Vec<Slot>,
    pub log: StateLog,
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
    pub hosts: Vec<HostState>,
    pub addresses: Vec<SocketAddr>,
    pub log: Vec<LogEntry>,
}

impl FleetCore {
    fn lock(&self, idx: usize) -> MutexGuard<'_, HostState> {
        // A poisoned lock means a panic mid-update elsewhere; the lab keeps serving the state.
        self.slots[idx]
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.name == name)
    }

    pub fn name(&self, idx: usize) -> &str {
        &self.slots[idx].name
    }

    /// Run `f` on a host's state after applying due transitions (logged, boot watch bumped).
    pub fn with_host<R>(&self, idx: usize, f: impl FnOnce(&mut HostState) -> R) -> R {
        let now = self.clock.now();
        let mut state = self.lock(idx);
        let boots = state.boot_count;
        let happened = state.settle(now, &self.durations);
        for (at, event) in happened {
            self.log.push(&state.name, at, event);
        }
        if state.boot_count != boots {
            self.slots[idx].boot.send_replace(state.boot_count);
        }
        f(&mut state)
    }

    /// Record a change on a host at the current simulated time.
    pub fn record(&self, idx: usize, event: LabEvent) {
        self.log.push(self.name(idx), self.clock.now(), event);
    }

    /// Schedule a restart `delay` (simulated) from now. In a running lab a task applies the
    /// transitions on time, so front ends see the boot watch change promptly.
    pub fn schedule_reboot(self: &Arc<Self>, idx: usize, delay: Duration) {
        let now = self.clock.now();
        let at = now
            .saturating_add(SignedDuration::try_from(delay).unwrap_or(SignedDuration::ZERO))
            .unwrap_or(now);
        self.with_host(idx, |s| s.power = Power::ShuttingDown { at });
        self.record(idx, LabEvent::RebootScheduled { at });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let core = Arc::clone(self);
            rt.spawn(async move {
                core.clock.sleep_until(at).await;
                let until = core.with_host(idx, |s| match s.power {
                    Power::Down { until } => until,
                    _ => None,
                });
                if let Some(until) = until {
                    core.clock.sleep_until(until).await;
                    core.with_host(idx, |_| ());
                }
            });
        }
    }

    /// Hosts in the same DAG as `idx` (excluding it), in fleet order.
    pub fn dag_peers(&self, idx: usize) -> Vec<usize> {
        let Some(dag) = self.lock(idx).dag.clone() else {
            return Vec::new();
        };
        (0..self.slots.len())
            .filter(|&i| i != idx && self.lock(i).dag.as_deref() == Some(dag.as_str()))
            .collect()
    }

    pub fn credentials(&self) -> (&str, &str) {
        (&self.user, &self.password)
    }

    pub fn address(&self, idx: usize) -> SocketAddr {
        self.slots[idx].address
    }

    /// A copy of one host's state (settled).
    pub fn state(&self, idx: usize) -> HostState {
        self.with_host(idx, |s| s.clone())
    }
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
        crate::process::spawn(Arc::clone(&self.core), self.idx, command, arguments)
    }

    fn accepting(&self) -> bool {
        self.core
            .with_host(self.idx, |s| s.is_up() && !s.faults.unreachable)
    }

    fn boot_watch(&self) -> watch::Receiver<u64> {
        self.core.slots[self.idx].boot.subscribe()
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
            &spec.user,
            &spec.password,
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
            &snap.user,
            &snap.password,
            snap.hosts,
            snap.addresses,
            snap.log,
        )
    }

    fn assemble(
        clock: SimClock,
        durations: Durations,
        user: &str,
        password: &str,
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
        let slots = hosts
            .into_iter()
            .zip(addresses)
            .map(|(state, address)| Slot {
                name: state.name.clone(),
                boot: watch::channel(state.boot_count).0,
                state: Mutex::new(state),
                address,
            })
            .collect();
        let core = Arc::new(FleetCore {
            clock,
            durations,
            user: user.to_string(),
            password: password.to_string(),
            slots,
            log: StateLog::from_entries(log),
        });
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
            user: self.core.user.clone(),
            password: self.core.password.clone(),
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
