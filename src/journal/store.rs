//! Reading and writing journal rows: the schema check, run events turned into rows
//! ([`EventRecorder`]), intents, and the queries behind `salve runs`.

use std::collections::HashMap;

use serde_json::Value;
use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;

use super::{
    Intent, IntentId, IntentWrite, Journal, JournalError, RunDetail, RunMeta, RunRecord, StepKey,
    StepRecord, StepState, now, schema,
};
use crate::events::Event;

/// Streamed output kept per step: the last this many bytes.
const OUTPUT_TAIL: usize = 4096;

impl Journal {
    /// Create the tables, or check that an existing journal is one this salve understands.
    pub(super) async fn migrate(&self) -> Result<(), JournalError> {
        sqlx::raw_sql(schema::CREATE)
            .execute(&self.pool)
            .await
            .map_err(self.db_err())?;
        let found: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM salve_schema")
            .fetch_one(&self.pool)
            .await
            .map_err(self.db_err())?;
        match found {
            None => {
                sqlx::query("INSERT INTO salve_schema (version) VALUES ($1)")
                    .bind(schema::VERSION)
                    .execute(&self.pool)
                    .await
                    .map_err(self.db_err())?;
            }
            Some(found) if found > schema::VERSION => {
                return Err(JournalError::NewerSchema {
                    path: self.path.clone(),
                    found,
                });
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Record that `action` is about to be done for `step` of `run` on `host`. Returns once
    /// the row is committed (and, with `synchronous=FULL`, on disk); the step is marked
    /// `intent` until it finishes.
    pub async fn begin_intent(
        &self,
        run: &str,
        host: &str,
        step: StepKey,
        action: &str,
    ) -> Result<IntentId, JournalError> {
        let begin = IntentWrite::begin(run, host, step, action);
        let id = begin.id().clone();
        self.write_intents(std::slice::from_ref(&begin)).await?;
        Ok(id)
    }

    /// Record how an intended change ended.
    pub async fn complete_intent(
        &self,
        id: &IntentId,
        outcome: &Value,
    ) -> Result<(), JournalError> {
        let complete = IntentWrite::Complete {
            id: id.clone(),
            outcome: outcome.clone(),
        };
        match self.write_intents(std::slice::from_ref(&complete)).await?[..] {
            [] => Ok(()),
            _ => Err(JournalError::NoSuchIntent(id.0.clone())),
        }
    }

    /// Write `writes` in order in one transaction: one commit (one disk flush) however many
    /// hosts announced or finished a change meanwhile ([`super::JournalIntents`] gathers
    /// them). Returns the completions whose intent does not exist; any database error fails
    /// the whole batch, and nothing of it is written.
    pub async fn write_intents(
        &self,
        writes: &[IntentWrite],
    ) -> Result<Vec<IntentId>, JournalError> {
        let mut missing = Vec::new();
        let mut tx = self.pool.begin().await.map_err(self.db_err())?;
        for write in writes {
            match write {
                IntentWrite::Begin {
                    id,
                    run,
                    host,
                    step,
                    action,
                } => {
                    let at = now();
                    sqlx::query(
                        "INSERT INTO intents (id, run_id, host, play, task_index, action, created_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&id.0)
                    .bind(run)
                    .bind(host)
                    .bind(step.play as i64)
                    .bind(step.task_index as i64)
                    .bind(action)
                    .bind(&at)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.db_err())?;
                    sqlx::query(
                        "INSERT INTO host_steps (run_id, host, play, task_index, task, state, started_at)
                         VALUES ($1, $2, $3, $4, '', 'intent', $5)
                         ON CONFLICT (run_id, host, play, task_index) DO UPDATE SET state = 'intent'",
                    )
                    .bind(run)
                    .bind(host)
                    .bind(step.play as i64)
                    .bind(step.task_index as i64)
                    .bind(&at)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.db_err())?;
                }
                IntentWrite::Complete { id, outcome } => {
                    let done = sqlx::query(
                        "UPDATE intents SET completed_at = $1, outcome = $2 WHERE id = $3",
                    )
                    .bind(now())
                    .bind(crate::secret::Redacted(outcome).to_text())
                    .bind(&id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.db_err())?;
                    if done.rows_affected() == 0 {
                        missing.push(id.clone());
                    }
                }
            }
        }
        tx.commit().await.map_err(self.db_err())?;
        Ok(missing)
    }

    /// Intents of `run` that never got an outcome: changes that may have half-happened.
    pub async fn open_intents(&self, run: &str) -> Result<Vec<Intent>, JournalError> {
        Ok(self
            .intents(run)
            .await?
            .into_iter()
            .filter(|i| i.outcome.is_none())
            .collect())
    }

    pub(super) async fn intents(&self, run: &str) -> Result<Vec<Intent>, JournalError> {
        let rows = sqlx::query(
            "SELECT id, run_id, host, play, task_index, action, created_at, completed_at, outcome
             FROM intents WHERE run_id = $1 ORDER BY created_at, id",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await
        .map_err(self.db_err())?;
        rows.iter()
            .map(|r| {
                Ok(Intent {
                    id: IntentId(r.try_get("id")?),
                    run_id: r.try_get("run_id")?,
                    host: r.try_get("host")?,
                    play: index(r, "play")?,
                    task_index: index(r, "task_index")?,
                    action: r.try_get("action")?,
                    created_at: r.try_get("created_at")?,
                    completed_at: r.try_get("completed_at")?,
                    outcome: json(r, "outcome")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(self.db_err())
    }

    /// Every run, newest first.
    pub async fn runs(&self) -> Result<Vec<RunRecord>, JournalError> {
        // Built from constants only: nothing from outside reaches the SQL text.
        let sql = sqlx::AssertSqlSafe(format!("{RUN_COLUMNS} ORDER BY r.started_at DESC, r.id"));
        let rows = sqlx::query(sql)
            .fetch_all(&self.pool)
            .await
            .map_err(self.db_err())?;
        rows.iter()
            .map(run_record)
            .collect::<Result<_, _>>()
            .map_err(self.db_err())
    }

    /// The full id of the run named by `id_or_prefix` (an exact id or a unique prefix).
    pub async fn resolve_run(&self, id_or_prefix: &str) -> Result<String, JournalError> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM runs ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(self.db_err())?;
        if ids.iter().any(|id| id == id_or_prefix) {
            return Ok(id_or_prefix.to_string());
        }
        let matches: Vec<String> = ids
            .into_iter()
            .filter(|id| id.starts_with(id_or_prefix))
            .collect();
        match matches.len() {
            1 => Ok(matches.into_iter().next().unwrap_or_default()),
            0 => Err(JournalError::NoSuchRun(id_or_prefix.to_string())),
            _ => Err(JournalError::AmbiguousRun {
                prefix: id_or_prefix.to_string(),
                matches,
            }),
        }
    }

    /// One run with every host step and intent.
    pub async fn run(&self, id: &str) -> Result<RunDetail, JournalError> {
        let run = self.run_record(id).await?;
        let steps = self.steps(id, None).await?;
        let intents = self.intents(id).await?;
        Ok(RunDetail {
            run,
            steps,
            intents,
        })
    }

    /// One run's record, without its steps and intents.
    pub async fn run_record(&self, id: &str) -> Result<RunRecord, JournalError> {
        // Built from constants only; the id is a bound parameter.
        let sql = sqlx::AssertSqlSafe(format!("{RUN_COLUMNS} WHERE r.id = $1"));
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.db_err())?
            .ok_or_else(|| JournalError::NoSuchRun(id.to_string()))?;
        run_record(&row).map_err(self.db_err())
    }

    /// The hosts with steps in `run`, in name order: with [`Self::host_steps`], a reader that
    /// needs one host's steps at a time (the run report) holds no more than that.
    pub async fn step_hosts(&self, run: &str) -> Result<Vec<String>, JournalError> {
        sqlx::query_scalar("SELECT DISTINCT host FROM host_steps WHERE run_id = $1 ORDER BY host")
            .bind(run)
            .fetch_all(&self.pool)
            .await
            .map_err(self.db_err())
    }

    /// `host`'s steps in `run`, in play and task order.
    pub async fn host_steps(&self, run: &str, host: &str) -> Result<Vec<StepRecord>, JournalError> {
        self.steps(run, Some(host)).await
    }

    /// The steps of `run`, or of its `host` only, by host, play and task.
    async fn steps(&self, run: &str, host: Option<&str>) -> Result<Vec<StepRecord>, JournalError> {
        let filter = if host.is_some() { "AND host = $2" } else { "" };
        // Built from constants only; the run and host are bound parameters.
        let sql = sqlx::AssertSqlSafe(format!(
            "{STEP_COLUMNS} WHERE run_id = $1 {filter} ORDER BY host, play, task_index"
        ));
        let query = sqlx::query(sql).bind(run);
        let query = match host {
            Some(host) => query.bind(host),
            None => query,
        };
        let rows = query.fetch_all(&self.pool).await.map_err(self.db_err())?;
        rows.iter()
            .map(step_record)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(self.db_err())
    }

    /// The results of `run`'s finished steps that called `module`, as `(host, result)` in the
    /// order they finished.
    pub async fn module_results(
        &self,
        run: &str,
        module: &str,
    ) -> Result<Vec<(String, Value)>, JournalError> {
        let rows = sqlx::query(
            "SELECT s.host, s.outcome FROM host_steps s JOIN run_tasks t
               ON t.run_id = s.run_id AND t.play = s.play AND t.task_index = s.task_index
             WHERE s.run_id = $1 AND t.module = $2 AND s.state = 'done'
             ORDER BY s.finished_at, s.host",
        )
        .bind(run)
        .bind(module)
        .fetch_all(&self.pool)
        .await
        .map_err(self.db_err())?;
        rows.iter()
            .map(|r| {
                let outcome = json(r, "outcome")?.unwrap_or(Value::Null);
                Ok((r.try_get("host")?, outcome["result"].clone()))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(self.db_err())
    }

    /// Steps of `run` that finished on `host` (done or skipped): a resumed run need not do
    /// them again.
    pub async fn completed_steps(
        &self,
        run: &str,
        host: &str,
    ) -> Result<Vec<StepKey>, JournalError> {
        let rows = sqlx::query(
            "SELECT play, task_index FROM host_steps
             WHERE run_id = $1 AND host = $2 AND state IN ('done', 'skipped')
             ORDER BY play, task_index",
        )
        .bind(run)
        .bind(host)
        .fetch_all(&self.pool)
        .await
        .map_err(self.db_err())?;
        rows.iter()
            .map(|r| {
                Ok(StepKey {
                    play: index(r, "play")?,
                    task_index: index(r, "task_index")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(self.db_err())
    }
}

const STEP_COLUMNS: &str = "SELECT host, tenant, play, task_index, task, state, started_at,
    finished_at, outcome, output FROM host_steps";

fn step_record(r: &SqliteRow) -> Result<StepRecord, sqlx::Error> {
    Ok(StepRecord {
        host: r.try_get("host")?,
        tenant: r.try_get("tenant")?,
        play: index(r, "play")?,
        task_index: index(r, "task_index")?,
        task: r.try_get("task")?,
        state: StepState::parse(r.try_get("state")?),
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        outcome: json(r, "outcome")?,
        output: r.try_get("output")?,
    })
}

const RUN_COLUMNS: &str = "SELECT r.id, r.playbook, r.playbook_digest, r.inventory_digest,
    r.plan_digest, r.check_mode, r.host_count, r.started_at, r.finished_at, r.status,
    r.exit_code FROM runs r";

fn run_record(r: &SqliteRow) -> Result<RunRecord, sqlx::Error> {
    Ok(RunRecord {
        id: r.try_get("id")?,
        playbook: r.try_get("playbook")?,
        playbook_digest: r.try_get("playbook_digest")?,
        inventory_digest: r.try_get("inventory_digest")?,
        plan_digest: r.try_get("plan_digest")?,
        check_mode: r.try_get::<i64, _>("check_mode")? != 0,
        hosts: u64::try_from(r.try_get::<i64, _>("host_count")?).unwrap_or_default(),
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        status: r.try_get("status")?,
        exit_code: r.try_get("exit_code")?,
    })
}

fn index(r: &SqliteRow, column: &str) -> Result<usize, sqlx::Error> {
    Ok(usize::try_from(r.try_get::<i64, _>(column)?).unwrap_or_default())
}

fn json(r: &SqliteRow, column: &str) -> Result<Option<Value>, sqlx::Error> {
    let text: Option<String> = r.try_get(column)?;
    Ok(text.map(|t| serde_json::from_str(&t).unwrap_or(Value::String(t))))
}

/// Turns one run's events into journal rows, in order, keyed by the step identity the events
/// carry (play index, task index); streamed output is kept per step and written with the
/// step's end. Times are those at which the events are recorded.
pub struct EventRecorder {
    journal: Journal,
    meta: RunMeta,
    run_id: Option<String>,
    output: HashMap<(String, String), String>,
}

impl EventRecorder {
    pub(super) fn new(journal: Journal, meta: RunMeta) -> EventRecorder {
        EventRecorder {
            journal,
            meta,
            run_id: None,
            output: HashMap::new(),
        }
    }

    fn run_id(&self) -> Result<&str, JournalError> {
        self.run_id.as_deref().ok_or(JournalError::NoRunId)
    }

    /// Write what `event` changes.
    pub async fn record_event(&mut self, event: &Event) -> Result<(), JournalError> {
        let j = &self.journal;
        match event {
            Event::RunStarted {
                run_id,
                playbook,
                hosts,
                check_mode,
                started_at,
                ..
            } => {
                if run_id.is_empty() {
                    return Err(JournalError::NoRunId);
                }
                self.run_id = Some(run_id.clone());
                sqlx::query(
                    "INSERT INTO runs (id, playbook, playbook_digest, inventory_digest,
                         plan_digest, check_mode, host_count, started_at, status)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'running')",
                )
                .bind(run_id)
                .bind(playbook)
                .bind(&self.meta.playbook_digest)
                .bind(&self.meta.inventory_digest)
                .bind(&self.meta.plan_digest)
                .bind(i64::from(*check_mode))
                .bind(hosts.len() as i64)
                .bind(started_at)
                .execute(&j.pool)
                .await
                .map_err(j.db_err())?;
                j.record_context(run_id, &self.meta.hosts, &self.meta.tasks)
                    .await?;
            }
            Event::HostDropped {
                host,
                tenant,
                status,
                task,
                msg,
            } => {
                let dropped = super::Dropped {
                    status: super::context::name(status),
                    task: task.clone(),
                    msg: msg.clone(),
                };
                j.record_dropped(self.run_id()?, host, tenant.as_deref(), &dropped)
                    .await?;
            }
            Event::TaskStarted { .. } | Event::TaskOutput { .. } | Event::TaskFinished { .. } => {
                let pool = j.pool.clone();
                let mut conn = pool.acquire().await.map_err(j.db_err())?;
                self.record_step(event, &mut conn).await?;
            }
            Event::RunFinished { summary } => {
                let run = self.run_id()?;
                let status = if summary.interrupted {
                    "interrupted"
                } else if summary.exit_code == crate::exit::OK {
                    "ok"
                } else {
                    "failed"
                };
                sqlx::query(
                    "UPDATE runs SET finished_at = $1, status = $2, exit_code = $3 WHERE id = $4",
                )
                .bind(now())
                .bind(status)
                .bind(i64::from(summary.exit_code))
                .bind(run)
                .execute(&j.pool)
                .await
                .map_err(j.db_err())?;
                j.record_outcomes(run, &summary.hosts).await?;
            }
            Event::PlayStarted { .. }
            | Event::PlayFinished { .. }
            | Event::BatchStarted { .. }
            | Event::SlowStep { .. }
            | Event::LoopItem { .. }
            | Event::TaskRetry { .. }
            | Event::HostFinished { .. }
            | Event::Interrupt { .. }
            | Event::Warning { .. } => {}
        }
        Ok(())
    }

    /// Write `events` in order, the step rows among them (a task's start, output and end:
    /// most of a run's events) in one transaction per run of consecutive ones. The journal is
    /// `synchronous=FULL`, so a commit per event cost the controller a disk flush per event:
    /// at 1,000 hosts that writer thread took more than a third of the controller's CPU time.
    /// Intents do not go through here: they are still committed one by one, before the change.
    pub async fn record_events(&mut self, events: &[Event]) -> Result<(), JournalError> {
        let mut rest = events;
        while let Some((first, _)) = rest.split_first() {
            let steps = rest.iter().take_while(|e| is_step_row(e)).count();
            if steps == 0 {
                self.record_event(first).await?;
                rest = &rest[1..];
                continue;
            }
            let (batch, after) = rest.split_at(steps);
            let pool = self.journal.pool.clone();
            let mut tx = pool.begin().await.map_err(self.journal.db_err())?;
            for event in batch {
                self.record_step(event, &mut tx).await?;
            }
            tx.commit().await.map_err(self.journal.db_err())?;
            rest = after;
        }
        Ok(())
    }

    /// The row of a step's start or end (output is kept until the end) on `conn`.
    async fn record_step(
        &mut self,
        event: &Event,
        conn: &mut sqlx::SqliteConnection,
    ) -> Result<(), JournalError> {
        let j = &self.journal;
        match event {
            Event::TaskStarted {
                host,
                tenant,
                task,
                play_index,
                task_index,
                ..
            } => {
                let run = self.run_id()?;
                sqlx::query(
                    "INSERT INTO host_steps (run_id, host, tenant, play, task_index, task, state,
                             started_at)
                         VALUES ($1, $2, $3, $4, $5, $6, 'started', $7)
                         ON CONFLICT (run_id, host, play, task_index) DO UPDATE SET
                             tenant = excluded.tenant, task = excluded.task,
                             state = CASE WHEN host_steps.state = 'intent' THEN 'intent'
                                          ELSE 'started' END",
                )
                .bind(run)
                .bind(host)
                .bind(tenant)
                .bind(*play_index as i64)
                .bind(*task_index as i64)
                .bind(task)
                .bind(now())
                .execute(&mut *conn)
                .await
                .map_err(j.db_err())?;
            }
            Event::TaskOutput {
                host, task, text, ..
            } => {
                let tail = self.output.entry((host.clone(), task.clone())).or_default();
                tail.push_str(text);
                if tail.len() > OUTPUT_TAIL {
                    let mut cut = tail.len() - OUTPUT_TAIL;
                    while !tail.is_char_boundary(cut) {
                        cut += 1;
                    }
                    tail.drain(..cut);
                }
            }
            Event::TaskFinished {
                host,
                tenant,
                task,
                play_index,
                task_index,
                status,
                msg,
                duration_ms,
                result,
            } => {
                let output = self.output.remove(&(host.clone(), task.clone()));
                let run = self.run_id()?;
                let state = StepState::finished(*status);
                let outcome =
                    super::step_outcome(*status, msg.as_deref(), *duration_ms, result).to_text();
                let at = now();
                sqlx::query(
                    "INSERT INTO host_steps (run_id, host, tenant, play, task_index, task, state,
                             started_at, finished_at, outcome, output)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10)
                         ON CONFLICT (run_id, host, play, task_index) DO UPDATE SET
                             tenant = excluded.tenant, task = excluded.task, state = excluded.state,
                             finished_at = excluded.finished_at, outcome = excluded.outcome,
                             output = excluded.output",
                )
                .bind(run)
                .bind(host)
                .bind(tenant)
                .bind(*play_index as i64)
                .bind(*task_index as i64)
                .bind(task)
                .bind(state.as_str())
                .bind(&at)
                .bind(outcome)
                .bind(output)
                .execute(&mut *conn)
                .await
                .map_err(j.db_err())?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// A step's start, output or end: what [`EventRecorder::record_events`] batches.
fn is_step_row(event: &Event) -> bool {
    matches!(
        event,
        Event::TaskStarted { .. } | Event::TaskOutput { .. } | Event::TaskFinished { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{RunSummary, Stream, TaskStatus};

    /// A batch mixing step rows with other events is written in order: the step rows of a
    /// run of consecutive ones in one transaction, the others around them.
    #[tokio::test]
    async fn a_batch_of_events_is_written_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let journal = Journal::open(tmp.path()).await.unwrap();
        let mut recorder = journal.recorder(RunMeta::default());
        let started = |host: &str| Event::TaskStarted {
            host: host.into(),
            tenant: None,
            task: "t".into(),
            play_index: 0,
            task_index: 0,
            item: None,
        };
        let events = [
            Event::RunStarted {
                run_id: "r1".into(),
                playbook: "p.yml".into(),
                hosts: vec!["ex01".into(), "ex02".into()],
                tenants: Vec::new(),
                check_mode: false,
                started_at: "2026-12-07T04:00:00Z".into(),
            },
            started("ex01"),
            Event::TaskOutput {
                host: "ex01".into(),
                task: "t".into(),
                stream: Stream::Stdout,
                text: "hello".into(),
            },
            started("ex02"),
            Event::TaskFinished {
                host: "ex01".into(),
                tenant: None,
                task: "t".into(),
                play_index: 0,
                task_index: 0,
                status: TaskStatus::Ok,
                msg: None,
                duration_ms: 5,
                result: serde_json::json!({}),
            },
            Event::RunFinished {
                summary: RunSummary {
                    hosts: Vec::new(),
                    tenants: Default::default(),
                    interrupted: false,
                    duration_ms: 5,
                    exit_code: 0,
                },
            },
        ];
        recorder.record_events(&events).await.unwrap();
        let run = journal.run("r1").await.unwrap();
        assert_eq!(run.run.status, "ok");
        let steps: Vec<(&str, StepState, Option<&str>)> = (run.steps.iter())
            .map(|s| (s.host.as_str(), s.state, s.output.as_deref()))
            .collect();
        assert_eq!(
            steps,
            [
                ("ex01", StepState::Done, Some("hello")),
                ("ex02", StepState::Started, None)
            ]
        );
    }
}
