//! `--json`: every [`Event`] as one JSON object per line on stdout, flushed as it happens, so
//! another program can follow a run live (`salve run --json ... | jq`). The serde form of
//! [`Event`] *is* the format; this reporter adds nothing and leaves nothing out. Every object has
//! an `"event"` key naming its kind; the other keys are always present (`null` when empty).
//!
//! ## Schema
//!
//! Notation: `string`, `integer` (unsigned), `number`, `bool`, `json` (any JSON value), `T?`
//! (`T` or `null`), `[T]` (array of `T`), `(A, B)` (two-element array), `map<T>` (object with
//! free keys), `"a" | "b"` (one of these strings), `{ k: T }` (object with exactly these keys;
//! `k?:` marks a key present only in some forms). Lower-case names are events (the value of
//! `"event"`), capitalised names are types used by them. The integration test
//! `report_json::documented_schema_matches_output` checks every event against this block.
//!
//! ```text
//! run_started = { run_id: string, playbook: string, hosts: [string], tenants: [string],
//!     check_mode: bool, started_at: string }
//! play_started = { play: string, play_index: integer, hosts: [string], tasks: integer,
//!     batches: [[string]] }
//! batch_started = { play: string, batch: integer, hosts: [string] }
//! task_started = { host: string, tenant: string?, task: string, play_index: integer,
//!     task_index: integer, item: json }
//! task_output = { host: string, task: string, stream: "stdout" | "stderr", text: string }
//! slow_step = { host: string, task: string, elapsed_ms: integer }
//! task_retry = { host: string, task: string, attempt: integer, of: integer, msg: string }
//! loop_item = { host: string, tenant: string?, task: string, play_index: integer,
//!     task_index: integer, item: json, status: TaskStatus, msg: string? }
//! task_finished = { host: string, tenant: string?, task: string, play_index: integer,
//!     task_index: integer, status: TaskStatus, msg: string?, duration_ms: integer, result: json }
//! host_dropped = { host: string, tenant: string?, status: TaskStatus, task: string,
//!     msg: string }
//! play_finished = { play: string, play_index: integer, stopped: PlayStop? }
//! host_finished = { host: string, tenant: string?, outcome: HostOutcome, msg: string? }
//! interrupt = { stage: "draining" | "aborting", in_flight: [(string, string)] }
//! warning = { message: string }
//! run_finished = { summary: RunSummary }
//!
//! TaskStatus = "ok" | "changed" | "failed" | "unreachable" | "skipped" | "ignored" | "interrupted"
//! HostOutcome = "ok" | "failed" | "unreachable" | "interrupted" | "not_run" | "drifted"
//! PlayStop = { reason: "max_fail_percentage" | "all_hosts_failed" | "interrupted",
//!     batch?: integer, failed?: integer, hosts?: integer, limit?: number }
//! RunSummary = { hosts: [HostSummary], tenants: map<map<integer>>, interrupted: bool,
//!     duration_ms: integer, exit_code: integer }
//! HostSummary = { host: string, tenant: string?, counts: HostCounts, outcome: HostOutcome,
//!     left_in: string? }
//! HostCounts = { ok: integer, changed: integer, failed: integer, unreachable: integer,
//!     skipped: integer, ignored: integer, interrupted: integer }
//! ```
//!
//! Meanings: `in_flight` lists `(host, task)` pairs running when Ctrl-C came; `tenants` in
//! `RunSummary` maps tenant (`""` for none) to host outcome counts; `item` is the loop item or
//! `null` (in `loop_item`, the item or its `loop_control.label`); `result` is the module's registered result with secrets already redacted.

use std::io::{self, Write};

use crate::events::Event;

use super::Reporter;
use super::write_guard::Guarded;

/// Writes each event as one line of JSON.
pub struct JsonLinesReporter<W: Write> {
    out: Guarded<W>,
}

impl<W: Write> JsonLinesReporter<W> {
    pub fn new(out: W) -> Self {
        JsonLinesReporter {
            out: Guarded::new(out),
        }
    }

    pub fn into_inner(self) -> W {
        self.out.into_inner()
    }
}

impl<W: Write> Reporter for JsonLinesReporter<W> {
    fn event(&mut self, event: &Event) {
        self.out.with(|w| {
            serde_json::to_writer(&mut *w, event)?;
            w.write_all(b"\n")?;
            w.flush()
        });
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.finish()
    }
}
