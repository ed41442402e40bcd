//! The shared state of a simulated fleet: every host's state behind its own lock, the
//! simulated clock and the state log. Hosts, front ends and the script simulations hold it
//! through an `Arc` (`fleet` builds it).
//!
//! Reading or changing a host goes through [`FleetCore::with_host`], which first applies the
//! transitions that are due at the current simulated time (a reboot finishing, an install
//! completing), logs them and bumps the host's boot watch.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::SignedDuration;
use tokio::sync::watch;

use crate::clock::SimClock;
use crate::log::{LabEvent, LogEntry, StateLog};
use crate::shares::Shares;
use crate::state::{Durations, HostState, Power};

struct Slot {
    name: String,
    state: Mutex<HostState>,
    boot: watch::Sender<u64>,
    /// WinRM service restarts (not reboots) on the host.
    winrm: watch::Sender<u64>,
    address: SocketAddr,
}

/// Shared core of a fleet; hosts and scripts hold it through an `Arc`.
pub struct FleetCore {
    pub clock: SimClock,
    pub durations: Durations,
    user: String,
    password: String,
    /// The fleet's file shares and who may read them.
    pub shares: Shares,
    slots: Vec<Slot>,
    pub log: StateLog,
}

impl FleetCore {
    /// Hosts with their loopback addresses (same order), and the log so far.
    pub(crate) fn new(
        clock: SimClock,
        durations: Durations,
        (user, password): (&str, &str),
        shares: Shares,
        hosts: Vec<HostState>,
        addresses: Vec<SocketAddr>,
        log: Vec<LogEntry>,
    ) -> Self {
        let slots = hosts
            .into_iter()
            .zip(addresses)
            .map(|(state, address)| Slot {
                name: state.name.clone(),
                boot: watch::channel(state.boot_count).0,
                winrm: watch::channel(0).0,
                state: Mutex::new(state),
                address,
            })
            .collect();
        FleetCore {
            clock,
            durations,
            user: user.to_string(),
            password: password.to_string(),
            shares,
            slots,
            log: StateLog::from_entries(log),
        }
    }

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

    /// Servers holding a copy of `database` (host `idx` and its DAG peers): what
    /// `(Get-MailboxDatabase <db>).DatabaseCopies` counts.
    pub fn copies_of(&self, idx: usize, database: &str) -> u32 {
        let here = u32::from(self.lock(idx).copies.iter().any(|c| c.database == database));
        let peers = self
            .dag_peers(idx)
            .into_iter()
            .filter(|&p| self.lock(p).copies.iter().any(|c| c.database == database))
            .count();
        here + peers as u32
    }

    pub fn credentials(&self) -> (&str, &str) {
        (&self.user, &self.password)
    }

    pub fn address(&self, idx: usize) -> SocketAddr {
        self.slots[idx].address
    }

    /// Changes whenever the WinRM service of host `idx` restarts without a reboot.
    pub fn winrm_watch(&self, idx: usize) -> watch::Receiver<u64> {
        self.slots[idx].winrm.subscribe()
    }

    /// The WinRM service of host `idx` stops for `down` (simulated) and starts again, as
    /// Exchange Setup does mid-install (ExchangeDsc runs Setup from a scheduled task for this
    /// reason): every WinRM shell on the host ends, and the processes running in them with it
    /// (they belong to the shell's job object); new connections are refused until it is back.
    /// SSH sessions (sshd is another service) and scheduled tasks are not affected.
    pub fn restart_winrm(&self, idx: usize, down: Duration) {
        let now = self.clock.now();
        let until = now
            .saturating_add(SignedDuration::try_from(down).unwrap_or(SignedDuration::ZERO))
            .unwrap_or(now);
        self.with_host(idx, |s| s.winrm_down_until = Some(until));
        self.record(
            idx,
            LabEvent::WinRmRestarted {
                down_seconds: down.as_secs(),
            },
        );
        self.slots[idx].winrm.send_modify(|n| *n += 1);
    }

    /// Changes whenever host `idx` boots (its boot count).
    pub fn boot_watch(&self, idx: usize) -> watch::Receiver<u64> {
        self.slots[idx].boot.subscribe()
    }

    /// A copy of one host's state (settled).
    pub fn state(&self, idx: usize) -> HostState {
        self.with_host(idx, |s| s.clone())
    }
}
