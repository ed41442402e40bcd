//! The run journal: every run, every host step and every intended change, written to a local
//! SQLite database as the run goes, so a crash of the controller (or the VPN, or the laptop)
//! leaves a record of what was done, what was in flight, and what may have half-happened.
//!
//! Location ([`state_dir`]): `$SALVE_STATE_DIR`, else `$XDG_STATE_HOME/salve`, else
//! `~/.local/state/salve`; the database is `journal.sqlite` there. The directory is created
//! owner-only (0700) and the file is created owner-only (0600) before SQLite opens it (SQLite
//! gives its `-wal` and `-shm` files the same mode). The database runs in WAL mode with
//! `synchronous=FULL`, so a committed write survives a power cut.
//!
//! Run events reach the journal through [`reporter::JournalReporter`] (a
//! [`crate::report::Reporter`]); before a module makes a change the runner records an intent
//! through [`JournalIntents`], which returns only once the intent is on disk (intents of
//! hosts announced at the same moment share one commit), and its outcome afterwards. The tables are described in [`schema`].

mod context;
mod intents;
pub mod reporter;
pub mod schema;
mod store;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use context::{Dropped, HostContext, RunContext, TaskContext};
pub use intents::JournalIntents;
pub use reporter::JournalReporter;
pub use store::EventRecorder;

/// File name of the database inside the state directory.
pub const FILE_NAME: &str = "journal.sqlite";

/// Why the journal could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("no state directory: set SALVE_STATE_DIR, XDG_STATE_HOME or HOME")]
    NoStateDir,
    #[error("cannot prepare the journal at {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("journal database error ({})", path.display())]
    Db {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "{} was written by a newer salve (schema {found}, this salve knows {})",
        path.display(), schema::VERSION
    )]
    NewerSchema { path: PathBuf, found: i64 },
    #[error("no intent `{0}` in the journal")]
    NoSuchIntent(String),
    #[error("no run `{0}` in the journal")]
    NoSuchRun(String),
    #[error("`{prefix}` matches several runs: {}", matches.join(", "))]
    AmbiguousRun {
        prefix: String,
        matches: Vec<String>,
    },
    #[error("the run has no id; journal rows need one")]
    NoRunId,
    /// The batch this write was committed with failed (every write of it gets this error).
    #[error("the batch of intents written with this one failed")]
    Batch(#[source] std::sync::Arc<JournalError>),
    #[error("the journal's intent writer has stopped")]
    IntentWriterStopped,
}

/// Where salve keeps its state, from the environment (see [`crate::state`]).
pub fn state_dir() -> Result<PathBuf, JournalError> {
    crate::state::dir().ok_or(JournalError::NoStateDir)
}

/// An open journal. Cheap to clone (the connection is shared).
#[derive(Debug, Clone)]
pub struct Journal {
    pool: SqlitePool,
    path: PathBuf,
}

/// Identifies one step of a run on a host: play index and task index within the play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct StepKey {
    pub play: usize,
    pub task_index: usize,
}

/// The id of an intent row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct IntentId(pub String);

/// Where a host step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Started,
    /// A change was announced with [`Journal::begin_intent`] and the step has not finished.
    Intent,
    Done,
    Failed,
    Skipped,
    Interrupted,
}

impl StepState {
    /// How a step that finished with `status` is recorded (the local journal and the queue).
    pub fn finished(status: crate::events::TaskStatus) -> StepState {
        use crate::events::TaskStatus;
        match status {
            TaskStatus::Ok | TaskStatus::Changed => StepState::Done,
            TaskStatus::Failed | TaskStatus::Unreachable | TaskStatus::Ignored => StepState::Failed,
            TaskStatus::Skipped => StepState::Skipped,
            TaskStatus::Interrupted => StepState::Interrupted,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Started => "started",
            StepState::Intent => "intent",
            StepState::Done => "done",
            StepState::Failed => "failed",
            StepState::Skipped => "skipped",
            StepState::Interrupted => "interrupted",
        }
    }

    fn parse(text: &str) -> StepState {
        match text {
            "intent" => StepState::Intent,
            "done" => StepState::Done,
            "failed" => StepState::Failed,
            "skipped" => StepState::Skipped,
            "interrupted" => StepState::Interrupted,
            // Anything else was written as `started` or by a newer salve: treat as unfinished.
            _ => StepState::Started,
        }
    }
}

/// What is recorded of a finished step (the local journal and the queue): its status, message,
/// duration and module result, secrets redacted. `salve queue follow` reads it back.
#[derive(Debug, Serialize)]
pub struct StepOutcome<'a> {
    pub status: crate::events::TaskStatus,
    pub msg: Option<&'a str>,
    pub duration_ms: u64,
    pub result: crate::secret::Redacted<'a>,
}

/// A finished step's [`StepOutcome`]; `result` is redacted as it is written, not copied.
pub fn step_outcome<'a>(
    status: crate::events::TaskStatus,
    msg: Option<&'a str>,
    duration_ms: u64,
    result: &'a serde_json::Value,
) -> StepOutcome<'a> {
    StepOutcome {
        status,
        msg,
        duration_ms,
        result: crate::secret::Redacted(result),
    }
}

impl StepOutcome<'_> {
    /// As a JSON value (the queue binds it as `jsonb`).
    pub fn to_value(&self) -> serde_json::Value {
        // Plain data with string keys always serialises.
        serde_json::to_value(self).unwrap_or_default()
    }

    /// As JSON text (the local journal's column).
    pub fn to_text(&self) -> String {
        // Plain data with string keys always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What the events do not carry, given to the journal when a run starts: digests, and the
/// hosts' and steps' context for reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunMeta {
    pub playbook_digest: Option<String>,
    pub inventory_digest: Option<String>,
    pub plan_digest: Option<String>,
    pub hosts: Vec<HostContext>,
    pub tasks: Vec<TaskContext>,
}

/// One run, as listed by `salve runs list`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub id: String,
    pub playbook: String,
    pub playbook_digest: Option<String>,
    pub inventory_digest: Option<String>,
    pub plan_digest: Option<String>,
    pub check_mode: bool,
    pub hosts: u64,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// `running`, `ok`, `failed` or `interrupted`.
    pub status: String,
    pub exit_code: Option<i64>,
}

/// One step of one host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRecord {
    pub host: String,
    pub tenant: Option<String>,
    pub play: usize,
    pub task_index: usize,
    pub task: String,
    pub state: StepState,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub outcome: Option<serde_json::Value>,
    pub output: Option<String>,
}

/// One write to the intents table (see [`Journal::write_intents`]).
#[derive(Debug, Clone, PartialEq)]
pub enum IntentWrite {
    /// `action` is about to be done for `step` of `run` on `host`.
    Begin {
        id: IntentId,
        run: String,
        host: String,
        step: StepKey,
        action: String,
    },
    /// The intended change `id` ended with `outcome` (secrets are redacted when written).
    Complete {
        id: IntentId,
        outcome: serde_json::Value,
    },
}

impl IntentWrite {
    /// A new intent, with a fresh id.
    pub fn begin(run: &str, host: &str, step: StepKey, action: &str) -> IntentWrite {
        IntentWrite::Begin {
            id: IntentId(uuid::Uuid::new_v4().to_string()),
            run: run.to_string(),
            host: host.to_string(),
            step,
            action: action.to_string(),
        }
    }

    /// The intent written.
    pub fn id(&self) -> &IntentId {
        match self {
            IntentWrite::Begin { id, .. } | IntentWrite::Complete { id, .. } => id,
        }
    }
}

/// An intended change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Intent {
    pub id: IntentId,
    pub run_id: String,
    pub host: String,
    pub play: usize,
    pub task_index: usize,
    pub action: String,
    pub created_at: String,
    pub completed_at: Option<String>,
    pub outcome: Option<serde_json::Value>,
}

/// A run with its steps (host, play, task order) and intents (creation order).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunDetail {
    pub run: RunRecord,
    pub steps: Vec<StepRecord>,
    pub intents: Vec<Intent>,
}

impl Journal {
    /// Open (creating if needed) `DIR/journal.sqlite`.
    pub async fn open(dir: &Path) -> Result<Journal, JournalError> {
        let path = dir.join(FILE_NAME);
        prepare_file(dir, &path)?;
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(false)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30));
        // One connection: journal writes are small and must stay in order.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|source| JournalError::Db {
                path: path.clone(),
                source,
            })?;
        let journal = Journal { pool, path };
        journal.migrate().await?;
        Ok(journal)
    }

    /// Open the journal in [`state_dir`].
    pub async fn open_default() -> Result<Journal, JournalError> {
        Journal::open(&state_dir()?).await
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A recorder for one run's events.
    pub fn recorder(&self, meta: RunMeta) -> EventRecorder {
        EventRecorder::new(self.clone(), meta)
    }

    /// Close the connection (waits for it to finish).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn db_err(&self) -> impl Fn(sqlx::Error) -> JournalError + '_ {
        |source| JournalError::Db {
            path: self.path.clone(),
            source,
        }
    }
}

/// Create the directory (0700) and the file (0600) if missing; tighten the file's mode if it
/// exists with a wider one.
fn prepare_file(dir: &Path, path: &Path) -> Result<(), JournalError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| JournalError::Io { path: p, source }
    };
    if !dir.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt as _;
            builder.mode(0o700);
        }
        builder.create(dir).map_err(io(dir))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path).map_err(io(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .map_err(io(path))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(io(path))?;
        }
    }
    Ok(())
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_steps_are_recorded_by_outcome() {
        use crate::events::TaskStatus;
        let cases = [
            (TaskStatus::Ok, "done"),
            (TaskStatus::Changed, "done"),
            (TaskStatus::Failed, "failed"),
            (TaskStatus::Unreachable, "failed"),
            (TaskStatus::Ignored, "failed"),
            (TaskStatus::Skipped, "skipped"),
            (TaskStatus::Interrupted, "interrupted"),
        ];
        for (status, state) in cases {
            let recorded = StepState::finished(status);
            assert_eq!(recorded.as_str(), state);
            assert_eq!(StepState::parse(state), recorded, "round trip");
        }
    }

    async fn pragma(journal: &Journal, name: &str) -> String {
        let sql = sqlx::AssertSqlSafe(format!("PRAGMA {name}"));
        let row = sqlx::query(sql).fetch_one(&journal.pool).await.unwrap();
        use sqlx::Row as _;
        row.try_get::<String, _>(0)
            .or_else(|_| row.try_get::<i64, _>(0).map(|n| n.to_string()))
            .unwrap()
    }

    #[tokio::test]
    async fn wal_full_sync_and_owner_only_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state/salve");
        let journal = Journal::open(&dir).await.unwrap();
        assert_eq!(pragma(&journal, "journal_mode").await, "wal");
        assert_eq!(pragma(&journal, "synchronous").await, "2", "2 is FULL");
        journal
            .begin_intent(
                "r1",
                "ex01",
                StepKey {
                    play: 0,
                    task_index: 0,
                },
                "reboot",
            )
            .await
            .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(mode(&dir.join(FILE_NAME)), 0o600);
            assert_eq!(mode(&dir.join("journal.sqlite-wal")), 0o600);
        }
        journal.close().await;
        // A journal file someone made world-readable is tightened on open.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let file = dir.join(FILE_NAME);
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            let again = Journal::open(&dir).await.unwrap();
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            assert_eq!(again.open_intents("r1").await.unwrap().len(), 1);
        }
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let journal = Journal::open(tmp.path()).await.unwrap();
        sqlx::query("INSERT INTO salve_schema (version) VALUES (99)")
            .execute(&journal.pool)
            .await
            .unwrap();
        journal.close().await;
        let err = Journal::open(tmp.path()).await.unwrap_err();
        assert!(
            matches!(err, JournalError::NewerSchema { found: 99, .. }),
            "{err}"
        );
    }
}
