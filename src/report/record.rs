//! The whole run kept in memory from its events, for report files: run facts, every task result
//! per play and host, interrupts, warnings and the final summary. Built only from what events
//! carry, so a report can never hold more than the live output did (no secrets).

use serde::Serialize;

use crate::events::{Event, InterruptStage, PlayStop, RunSummary, TaskStatus};

/// Version of the `report.json` layout; bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;

/// `report.json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunRecord {
    pub format: u32,
    pub run_id: Option<String>,
    pub playbook: Option<String>,
    pub check_mode: bool,
    /// Version of the build/CVE catalogue the run's assessments used.
    pub catalogue_version: Option<String>,
    pub started_at: Option<String>,
    /// `started_at` plus the run's duration, once the run has finished.
    pub finished_at: Option<String>,
    pub hosts: Vec<String>,
    pub tenants: Vec<String>,
    pub plays: Vec<PlayRecord>,
    pub interrupts: Vec<InterruptRecord>,
    pub warnings: Vec<String>,
    /// `null` when the run ended without a summary (salve itself stopped).
    pub summary: Option<RunSummary>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PlayRecord {
    pub name: String,
    pub hosts: Vec<String>,
    pub tasks: usize,
    pub batches: Vec<Vec<String>>,
    pub stopped: Option<PlayStop>,
    /// Task results in the order they finished.
    pub results: Vec<TaskRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskRecord {
    pub host: String,
    pub tenant: Option<String>,
    pub task: String,
    pub task_index: usize,
    pub item: Option<serde_json::Value>,
    pub status: TaskStatus,
    pub msg: Option<String>,
    pub duration_ms: u64,
    /// Attempts made (1 unless the task retried).
    pub attempts: u32,
    pub result: JsonText,
}

/// A task's result kept as its compact JSON text until the report is written: a thousand
/// hosts' results held as parsed values cost several times their size (an `exchange_facts`
/// result is 16 KB of JSON and over 100 KB parsed). Written out as the value it holds.
#[derive(Debug, Clone)]
pub struct JsonText(String);

impl JsonText {
    pub fn of(value: &serde_json::Value) -> Self {
        JsonText(value.to_string())
    }

    pub fn is_null(&self) -> bool {
        self.0 == "null"
    }
}

impl Serialize for JsonText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The text is what `Value`'s Display wrote, so it parses; one result at a time.
        let value: serde_json::Value =
            serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        value.serialize(s)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct InterruptRecord {
    pub stage: InterruptStage,
    pub in_flight: Vec<(String, String)>,
}

/// What a host is doing right now (to attach loop items and retries to its result).
#[derive(Debug, Default)]
struct Running {
    item: Option<serde_json::Value>,
    attempts: u32,
}

/// Builds a [`RunRecord`] from events.
#[derive(Debug, Default)]
pub struct Recorder {
    record: RunRecord,
    running: std::collections::HashMap<String, Running>,
}

impl Recorder {
    pub fn new() -> Self {
        Recorder {
            record: RunRecord {
                format: FORMAT_VERSION,
                ..Default::default()
            },
            running: Default::default(),
        }
    }

    pub fn record(&self) -> &RunRecord {
        &self.record
    }

    fn play(&mut self) -> &mut PlayRecord {
        if self.record.plays.is_empty() {
            self.record.plays.push(PlayRecord::default());
        }
        let last = self.record.plays.len() - 1;
        &mut self.record.plays[last]
    }

    pub fn event(&mut self, event: &Event) {
        let r = &mut self.record;
        match event {
            Event::RunStarted {
                run_id,
                playbook,
                hosts,
                tenants,
                check_mode,
                started_at,
            } => {
                r.run_id = Some(run_id.clone());
                r.playbook = Some(playbook.clone());
                r.hosts = hosts.clone();
                r.tenants = tenants.clone();
                r.check_mode = *check_mode;
                r.catalogue_version = crate::exchange::catalogue::catalogue()
                    .ok()
                    .map(|c| c.version.clone());
                r.started_at = Some(started_at.clone());
            }
            Event::PlayStarted {
                play,
                hosts,
                tasks,
                batches,
                ..
            } => r.plays.push(PlayRecord {
                name: play.clone(),
                hosts: hosts.clone(),
                tasks: *tasks,
                batches: batches.clone(),
                ..Default::default()
            }),
            Event::TaskStarted { host, item, .. } => {
                self.running.insert(
                    host.clone(),
                    Running {
                        item: item.clone(),
                        attempts: 1,
                    },
                );
            }
            Event::TaskRetry { host, .. } => {
                self.running.entry(host.clone()).or_default().attempts += 1;
            }
            Event::TaskFinished {
                host,
                tenant,
                task,
                task_index,
                status,
                msg,
                duration_ms,
                result,
                ..
            } => {
                let running = self.running.remove(host).unwrap_or_default();
                self.play().results.push(TaskRecord {
                    host: host.clone(),
                    tenant: tenant.clone(),
                    task: task.clone(),
                    task_index: *task_index,
                    item: running.item,
                    status: *status,
                    msg: msg.clone(),
                    duration_ms: *duration_ms,
                    attempts: running.attempts.max(1),
                    result: JsonText::of(result),
                });
            }
            Event::PlayFinished { stopped, .. } => self.play().stopped = stopped.clone(),
            Event::Interrupt { stage, in_flight } => r.interrupts.push(InterruptRecord {
                stage: *stage,
                in_flight: in_flight.clone(),
            }),
            Event::Warning { message } => r.warnings.push(message.clone()),
            Event::RunFinished { summary } => {
                r.finished_at = r
                    .started_at
                    .as_deref()
                    .and_then(|s| end_time(s, summary.duration_ms));
                r.summary = Some(summary.clone());
            }
            Event::BatchStarted { .. }
            | Event::TaskOutput { .. }
            | Event::LoopItem { .. }
            | Event::SlowStep { .. }
            | Event::HostDropped { .. }
            | Event::HostFinished { .. } => {}
        }
    }
}

/// `started_at` (RFC 3339) plus `ms`, or `None` if `started_at` is not a timestamp.
fn end_time(started_at: &str, ms: u64) -> Option<String> {
    let start: jiff::Timestamp = started_at.parse().ok()?;
    let ms = i64::try_from(ms).ok()?;
    Some(
        start
            .checked_add(jiff::SignedDuration::from_millis(ms))
            .ok()?
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_time_adds_duration() {
        assert_eq!(
            end_time("2024-03-01T10:00:00Z", 61_500).as_deref(),
            Some("2024-03-01T10:01:01.5Z")
        );
        assert_eq!(end_time("yesterday", 1), None);
    }
}
