//! The journal's tables. Plain SQL that SQLite and PostgreSQL both accept: `TEXT` and `INTEGER`
//! columns only, timestamps as RFC 3339 text (UTC), booleans as 0/1, JSON as text, ids made
//! by salve (no auto-increment), upserts with `ON CONFLICT ... DO UPDATE`.
//!
//! - `runs`: one row per run: `id`, `playbook` (path), `playbook_digest`,
//!   `inventory_digest`, `plan_digest` (the approved plan applied, if any), `check_mode`,
//!   `host_count`, `started_at`, `finished_at`, `status` (`running`, `ok`, `failed`,
//!   `interrupted`; a `running` row that never finished is a run that crashed or is still
//!   going), `exit_code`.
//! - `host_steps`: one row per run, host, play and task: `tenant`, `task`, `state` (`started`,
//!   `intent`, `done`, `failed`, `skipped`, `interrupted`), `started_at`, `finished_at`,
//!   `outcome` (JSON: status, message, module result; secrets redacted), `output` (the last
//!   few KiB of streamed output).
//! - `intents`: a change a module is about to make, written (and synced) *before* it makes
//!   it: `id`, `run_id`, `host`, `play`, `task_index`, `action`, `created_at`, and, once known,
//!   `completed_at` and `outcome` (JSON). An intent without an outcome after a crash means the
//!   change may or may not have happened: resume must look before it acts again.
//! - `run_hosts`: what the run knew of each of its hosts when it started, for reports:
//!   `tenant`, `dag`, `time_zone` (the IANA zone of the host's maintenance window, if any),
//!   for a host the run dropped, `dropped_status`, `dropped_task`, `dropped_msg`; and once the
//!   run finished, the host's `outcome` (`ok`, `failed`, `unreachable`, `interrupted`,
//!   `not_run`, `drifted`) and `left_in` (the task it was in when the run was interrupted).
//! - `run_tasks`: the module each step of the run's playbook calls (`play`, `task_index`,
//!   `module`), so a report reads a step's result by what produced it.
//!
//! There are no foreign keys on purpose: intents are written by modules directly, while run
//! and step rows come through the event stream, so an intent may land first.

/// The schema version this salve writes.
pub const VERSION: i64 = 1;

/// Statements creating every table (idempotent).
pub const CREATE: &str = "
CREATE TABLE IF NOT EXISTS salve_schema (
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    playbook TEXT NOT NULL,
    playbook_digest TEXT,
    inventory_digest TEXT,
    plan_digest TEXT,
    check_mode INTEGER NOT NULL,
    host_count INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    exit_code INTEGER
);
CREATE TABLE IF NOT EXISTS host_steps (
    run_id TEXT NOT NULL,
    host TEXT NOT NULL,
    tenant TEXT,
    play INTEGER NOT NULL,
    task_index INTEGER NOT NULL,
    task TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    outcome TEXT,
    output TEXT,
    PRIMARY KEY (run_id, host, play, task_index)
);
CREATE TABLE IF NOT EXISTS intents (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    host TEXT NOT NULL,
    play INTEGER NOT NULL,
    task_index INTEGER NOT NULL,
    action TEXT NOT NULL,
    created_at TEXT NOT NULL,
    completed_at TEXT,
    outcome TEXT
);
CREATE TABLE IF NOT EXISTS run_hosts (
    run_id TEXT NOT NULL,
    host TEXT NOT NULL,
    tenant TEXT,
    dag TEXT,
    time_zone TEXT,
    dropped_status TEXT,
    dropped_task TEXT,
    dropped_msg TEXT,
    outcome TEXT,
    left_in TEXT,
    PRIMARY KEY (run_id, host)
);
CREATE TABLE IF NOT EXISTS run_tasks (
    run_id TEXT NOT NULL,
    play INTEGER NOT NULL,
    task_index INTEGER NOT NULL,
    module TEXT NOT NULL,
    PRIMARY KEY (run_id, play, task_index)
);
CREATE INDEX IF NOT EXISTS intents_by_run ON intents (run_id, host);
";
