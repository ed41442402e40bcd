//! Typed run events. The runner never prints: it emits [`Event`]s, and reporters (terminal,
//! JSON lines, report files, later the journal) consume them. The JSON form of an event is the
//! documented `--json` schema: one object per line with an `"event"` tag.

use std::collections::BTreeMap;

use serde::Serialize;

/// How a task ended on one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Ok,
    Changed,
    Failed,
    Unreachable,
    Skipped,
    /// Failed, but the task has `ignore_errors: true`: the host carries on.
    Ignored,
    /// Stopped by Ctrl-C before it finished.
    Interrupted,
}

/// Output stream of a streamed chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Why a play stopped early.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum PlayStop {
    /// A batch exceeded `max_fail_percentage`.
    MaxFailPercentage {
        batch: usize,
        failed: usize,
        hosts: usize,
        limit: f64,
    },
    /// Every host in the play failed or was unreachable.
    AllHostsFailed,
    Interrupted,
}

/// Which Ctrl-C this was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InterruptStage {
    /// First Ctrl-C: no new steps start; running steps finish.
    Draining,
    /// Second Ctrl-C: running steps are cancelled on their hosts.
    Aborting,
}

/// Per-host counts, like Ansible's recap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostCounts {
    pub ok: usize,
    pub changed: usize,
    pub failed: usize,
    pub unreachable: usize,
    pub skipped: usize,
    pub ignored: usize,
    pub interrupted: usize,
}

impl HostCounts {
    pub fn add(&mut self, status: TaskStatus) {
        match status {
            TaskStatus::Ok => self.ok += 1,
            TaskStatus::Changed => self.changed += 1,
            TaskStatus::Failed => self.failed += 1,
            TaskStatus::Unreachable => self.unreachable += 1,
            TaskStatus::Skipped => self.skipped += 1,
            TaskStatus::Ignored => self.ignored += 1,
            TaskStatus::Interrupted => self.interrupted += 1,
        }
    }
}

/// Final state of one host in the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostSummary {
    pub host: String,
    pub tenant: Option<String>,
    pub counts: HostCounts,
    /// `ok`, `failed`, `unreachable`, `interrupted`, `not_run` or `drifted`.
    pub outcome: HostOutcome,
    /// Task the host was in when the run was interrupted.
    pub left_in: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostOutcome {
    Ok,
    Failed,
    Unreachable,
    Interrupted,
    /// Never started: the run stopped (max_fail_percentage, interrupt) before its batch.
    NotRun,
    /// Left alone by `apply`: its facts changed since the plan was made.
    Drifted,
}

/// The whole run's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    pub hosts: Vec<HostSummary>,
    /// Host outcome counts per tenant (`""` for hosts without a tenant).
    pub tenants: BTreeMap<String, BTreeMap<HostOutcome, usize>>,
    pub interrupted: bool,
    pub duration_ms: u64,
    pub exit_code: u8,
}

/// One thing that happened during a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_id: String,
        playbook: String,
        /// Hosts selected for the run.
        hosts: Vec<String>,
        tenants: Vec<String>,
        check_mode: bool,
        started_at: String,
    },
    PlayStarted {
        play: String,
        /// Position of the play in the playbook, from 0: with `task_index`, a step's identity.
        play_index: usize,
        hosts: Vec<String>,
        tasks: usize,
        /// Host names per batch, in order.
        batches: Vec<Vec<String>>,
    },
    BatchStarted {
        play: String,
        batch: usize,
        hosts: Vec<String>,
    },
    TaskStarted {
        host: String,
        tenant: Option<String>,
        task: String,
        play_index: usize,
        /// The task's position in its play: tasks, then handlers, then rescue tasks
        /// ([`crate::model::Play::task_at`]).
        task_index: usize,
        /// Loop item, when the task loops.
        item: Option<serde_json::Value>,
    },
    /// Output as it arrives from a long step: one event per line, without the line break.
    TaskOutput {
        host: String,
        task: String,
        stream: Stream,
        text: String,
    },
    /// A step has been running longer than its slow-step threshold.
    SlowStep {
        host: String,
        task: String,
        elapsed_ms: u64,
    },
    /// A retry of a failed attempt (`retries`/`until`).
    TaskRetry {
        host: String,
        task: String,
        attempt: u32,
        of: u32,
        msg: String,
    },
    /// One item of a looping task has finished (`ok: [h1] => (item=DB01)`); the task's own
    /// `task_finished`, with every item's result, follows the last item.
    LoopItem {
        host: String,
        tenant: Option<String>,
        task: String,
        play_index: usize,
        task_index: usize,
        /// The item, or its `loop_control.label`.
        item: serde_json::Value,
        status: TaskStatus,
        msg: Option<String>,
    },
    TaskFinished {
        host: String,
        tenant: Option<String>,
        task: String,
        play_index: usize,
        task_index: usize,
        status: TaskStatus,
        /// One-line human message (error, skip reason, debug text).
        msg: Option<String>,
        duration_ms: u64,
        /// Module result, as registered (secrets redacted).
        result: serde_json::Value,
    },
    /// A host has dropped out of the play (failed or unreachable); later tasks skip it.
    HostDropped {
        host: String,
        tenant: Option<String>,
        status: TaskStatus,
        task: String,
        msg: String,
    },
    PlayFinished {
        play: String,
        play_index: usize,
        stopped: Option<PlayStop>,
    },
    /// A host's work ended in a queued run (`salve run|apply --queue`), as a runner reported
    /// it; `msg` says why a host did not end ok.
    HostFinished {
        host: String,
        tenant: Option<String>,
        outcome: HostOutcome,
        msg: Option<String>,
    },
    Interrupt {
        stage: InterruptStage,
        /// `(host, task)` pairs running at the moment of the interrupt.
        in_flight: Vec<(String, String)>,
    },
    Warning {
        message: String,
    },
    RunFinished {
        summary: RunSummary,
    },
}
