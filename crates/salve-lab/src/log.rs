//! The fleet-wide state log: every change the simulation makes (installs, reboots, build
//! changes, mitigations, maintenance transitions, database moves) and every protocol event a
//! front end reports, with simulated and real timestamps.
//!
//! Tests read it to prove what happened on the "servers", e.g. that an update was installed
//! exactly once ([`StateLog::count`]); `salve lab state` and the admin endpoint show it.

use std::sync::Mutex;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::host_api::ProtocolEvent;
use salve_contract::contract::{ScriptId, UpdateKind};

/// What changed on a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LabEvent {
    /// A shipped script (by id) or a raw command (`raw`) started.
    ScriptStarted {
        id: String,
    },
    /// `powershell.exe -Command -` reached the end of its input inside a multi-line statement
    /// and dropped it (see `typed_input`).
    InputDropped {
        lines: usize,
    },
    /// `job_control` registered and started a detached task.
    JobStarted {
        job: String,
        script_id: String,
        run_as: String,
    },
    /// A detached task's process ended (`exit_code` is the task's last result).
    JobFinished {
        job: String,
        script_id: String,
        exit_code: i32,
    },
    JobRemoved {
        job: String,
        script_id: String,
    },
    /// A process in a WinRM shell grew past the shell's MaxMemoryPerShellMB and was stopped.
    ShellMemoryQuotaExceeded {
        quota_mb: u64,
        used_mb: u64,
    },
    /// cmd.exe refused a command line over 8,191 characters.
    CommandLineTooLong {
        length: usize,
    },
    InstallStarted {
        update: UpdateKind,
        kb: String,
        target: String,
    },
    /// The installer finished successfully; the build changes at the next reboot.
    Installed {
        update: UpdateKind,
        kb: String,
        target: String,
    },
    InstallFailed {
        update: UpdateKind,
        kb: String,
        exit_code: i32,
        reason: String,
    },
    /// `/PrepareSchema` and `/PrepareAD` raised the forest's Exchange versions.
    AdPrepared {
        forest: String,
        schema: u32,
        org: u32,
    },
    /// The running build changed (at a reboot, after an install).
    BuildChanged {
        from: String,
        to: String,
    },
    RebootScheduled {
        at: Timestamp,
    },
    /// The host went down; it comes back as `boot_id` (or never).
    RebootStarted {
        boot_id: String,
    },
    RebootCompleted {
        boot_id: String,
    },
    RewriteModuleInstalled {
        version: String,
    },
    /// The WinRM service restarted without a reboot (Exchange Setup mid-install): every WinRM
    /// shell on the host ended, with its processes.
    WinRmRestarted {
        down_seconds: u64,
    },
    MitigationApplied {
        rules: Vec<String>,
    },
    MitigationRemoved {
        rules: Vec<String>,
    },
    MaintenanceEntered {
        previous_policy: String,
    },
    MaintenanceLeft {
        restored_policy: String,
    },
    /// `Restart-Service MSExchangeTransport` (mail flow through the server stops meanwhile).
    TransportRestarted,
    DatabaseMoved {
        database: String,
        from: String,
        to: String,
    },
    ServicesDisabled {
        services: Vec<String>,
    },
    /// A shipped script's answer broke its contract (see `salve_contract::answer`); the
    /// answer line was printed as the script printed it.
    AnswerBroken {
        script: String,
        /// The field at fault (`pending_reboot`, `services[3].start_type`).
        field: String,
        problem: String,
    },
    /// Recorded by a protocol front end.
    Protocol {
        event: ProtocolEvent,
    },
}

impl LabEvent {
    /// Whether this changed the server, as an administrator would count it: not a script
    /// starting, a protocol event or a broken answer, and not the scheduled task of a script
    /// that only reads (salve reads Exchange from a task under its `become` account: the task
    /// and its folder come and go, nothing of the server's changes).
    pub fn changes_the_server(&self) -> bool {
        let reads =
            |script_id: &str| ScriptId::parse(script_id).is_some_and(ScriptId::is_read_only);
        match self {
            LabEvent::ScriptStarted { .. }
            | LabEvent::Protocol { .. }
            | LabEvent::AnswerBroken { .. }
            | LabEvent::InputDropped { .. }
            | LabEvent::CommandLineTooLong { .. } => false,
            LabEvent::JobStarted { script_id, .. }
            | LabEvent::JobFinished { script_id, .. }
            | LabEvent::JobRemoved { script_id, .. } => !reads(script_id),
            _ => true,
        }
    }
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub seq: u64,
    pub host: String,
    /// Simulated time of the change.
    pub sim_time: Timestamp,
    /// Wall-clock time it was recorded.
    pub real_time: Timestamp,
    pub event: LabEvent,
}

/// The log itself; cheap to append to from any task.
#[derive(Debug, Default)]
pub struct StateLog {
    entries: Mutex<Vec<LogEntry>>,
}

impl StateLog {
    pub fn from_entries(entries: Vec<LogEntry>) -> Self {
        Self {
            entries: Mutex::new(entries),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<LogEntry>> {
        // A poisoned log only means a panic elsewhere; its entries are still whole.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn push(&self, host: &str, sim_time: Timestamp, event: LabEvent) {
        let mut entries = self.lock();
        let seq = entries.len() as u64 + 1;
        entries.push(LogEntry {
            seq,
            host: host.to_string(),
            sim_time,
            real_time: Timestamp::now(),
            event,
        });
    }

    /// A copy of every entry, oldest first.
    pub fn entries(&self) -> Vec<LogEntry> {
        self.lock().clone()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// How many entries of `host` match `pred`.
    pub fn count(&self, host: &str, pred: impl Fn(&LabEvent) -> bool) -> usize {
        self.lock()
            .iter()
            .filter(|e| e.host == host && pred(&e.event))
            .count()
    }

    /// How many times `kb` was installed successfully on `host`.
    pub fn installs(&self, host: &str, kb: &str) -> usize {
        self.count(
            host,
            |e| matches!(e, LabEvent::Installed { kb: k, .. } if k == kb),
        )
    }

    /// How many reboots `host` started.
    pub fn reboots(&self, host: &str) -> usize {
        self.count(host, |e| matches!(e, LabEvent::RebootStarted { .. }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_host_and_kind() {
        let log = StateLog::default();
        let t = Timestamp::UNIX_EPOCH;
        let installed = |kb: &str| LabEvent::Installed {
            update: UpdateKind::Su,
            kb: kb.into(),
            target: "15.2.792.10".into(),
        };
        log.push("ex1", t, installed("KB5000871"));
        log.push("ex2", t, installed("KB5000871"));
        log.push(
            "ex1",
            t,
            LabEvent::RebootStarted {
                boot_id: "b".into(),
            },
        );
        assert_eq!(log.installs("ex1", "KB5000871"), 1);
        assert_eq!(log.installs("ex1", "KB5001779"), 0);
        assert_eq!(log.reboots("ex1"), 1);
        assert_eq!(log.len(), 3);
        let json = serde_json::to_string(&log.entries()).unwrap();
        let back: Vec<LogEntry> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, log.entries());
    }
}
