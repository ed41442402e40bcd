//! What a run knew of its hosts and steps when it started (tenant, DAG, the window's time zone,
//! the module behind each step) and which hosts it left out and why: the `run_hosts` and
//! `run_tasks` tables. Written by [`super::EventRecorder`] from [`super::RunMeta`] and the
//! `host_dropped` events; read back by [`Journal::run_context`] for the run reports, so a
//! report rendered later from the journal says the same as the one written at the end of the
//! run.

use serde::Serialize;
use sqlx::Row as _;

use super::{Journal, JournalError};
use crate::events::HostSummary;

/// The name a unit enum value serialises to (`not_run`), empty if it has none.
pub(super) fn name(value: &impl Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// One host of a run, as the run saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostContext {
    pub host: String,
    pub tenant: Option<String>,
    pub dag: Option<String>,
    /// IANA time zone of the host's maintenance window, if it has one.
    pub time_zone: Option<String>,
    /// Set when the run dropped the host: how (`failed`, `skipped`...), at which task, why.
    pub dropped: Option<Dropped>,
    /// How the host ended (`ok`, `failed`, `unreachable`, `interrupted`, `not_run`,
    /// `drifted`), once the run finished.
    pub outcome: Option<String>,
    /// The task the host was in when the run was interrupted.
    pub left_in: Option<String>,
}

/// Why a run dropped a host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Dropped {
    pub status: String,
    pub task: String,
    pub msg: String,
}

/// The module a step of the playbook calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskContext {
    pub play: usize,
    pub task_index: usize,
    pub module: String,
}

/// A run's hosts (by name) and steps (by play and task index).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunContext {
    pub hosts: Vec<HostContext>,
    pub tasks: Vec<TaskContext>,
}

impl Journal {
    /// Record the hosts and steps of `run` as it starts.
    pub(super) async fn record_context(
        &self,
        run: &str,
        hosts: &[HostContext],
        tasks: &[TaskContext],
    ) -> Result<(), JournalError> {
        let mut tx = self.pool.begin().await.map_err(self.db_err())?;
        for h in hosts {
            sqlx::query(
                "INSERT INTO run_hosts (run_id, host, tenant, dag, time_zone)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (run_id, host) DO UPDATE SET tenant = excluded.tenant,
                     dag = excluded.dag, time_zone = excluded.time_zone",
            )
            .bind(run)
            .bind(&h.host)
            .bind(&h.tenant)
            .bind(&h.dag)
            .bind(&h.time_zone)
            .execute(&mut *tx)
            .await
            .map_err(self.db_err())?;
        }
        for t in tasks {
            sqlx::query(
                "INSERT INTO run_tasks (run_id, play, task_index, module) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (run_id, play, task_index) DO UPDATE SET module = excluded.module",
            )
            .bind(run)
            .bind(t.play as i64)
            .bind(t.task_index as i64)
            .bind(&t.module)
            .execute(&mut *tx)
            .await
            .map_err(self.db_err())?;
        }
        tx.commit().await.map_err(self.db_err())
    }

    /// Record that `run` left `host` out.
    pub(super) async fn record_dropped(
        &self,
        run: &str,
        host: &str,
        tenant: Option<&str>,
        dropped: &Dropped,
    ) -> Result<(), JournalError> {
        sqlx::query(
            "INSERT INTO run_hosts (run_id, host, tenant, dropped_status, dropped_task, dropped_msg)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (run_id, host) DO UPDATE SET dropped_status = excluded.dropped_status,
                 dropped_task = excluded.dropped_task, dropped_msg = excluded.dropped_msg",
        )
        .bind(run)
        .bind(host)
        .bind(tenant)
        .bind(&dropped.status)
        .bind(&dropped.task)
        .bind(&dropped.msg)
        .execute(&self.pool)
        .await
        .map_err(self.db_err())?;
        Ok(())
    }

    /// Record how each host of `run` ended.
    pub(super) async fn record_outcomes(
        &self,
        run: &str,
        hosts: &[HostSummary],
    ) -> Result<(), JournalError> {
        let mut tx = self.pool.begin().await.map_err(self.db_err())?;
        for h in hosts {
            sqlx::query(
                "INSERT INTO run_hosts (run_id, host, tenant, outcome, left_in)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (run_id, host) DO UPDATE SET outcome = excluded.outcome,
                     left_in = excluded.left_in",
            )
            .bind(run)
            .bind(&h.host)
            .bind(&h.tenant)
            .bind(name(&h.outcome))
            .bind(&h.left_in)
            .execute(&mut *tx)
            .await
            .map_err(self.db_err())?;
        }
        tx.commit().await.map_err(self.db_err())
    }

    /// The hosts (by name) and steps (in order) recorded for `run`; empty for a run recorded
    /// before this table existed.
    pub async fn run_context(&self, run: &str) -> Result<RunContext, JournalError> {
        let rows = sqlx::query(
            "SELECT host, tenant, dag, time_zone, dropped_status, dropped_task, dropped_msg,
                    outcome, left_in
             FROM run_hosts WHERE run_id = $1 ORDER BY host",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await
        .map_err(self.db_err())?;
        let hosts = rows
            .iter()
            .map(|r| {
                let status: Option<String> = r.try_get("dropped_status")?;
                Ok(HostContext {
                    host: r.try_get("host")?,
                    tenant: r.try_get("tenant")?,
                    dag: r.try_get("dag")?,
                    time_zone: r.try_get("time_zone")?,
                    dropped: match status {
                        Some(status) => Some(Dropped {
                            status,
                            task: r
                                .try_get::<Option<String>, _>("dropped_task")?
                                .unwrap_or_default(),
                            msg: r
                                .try_get::<Option<String>, _>("dropped_msg")?
                                .unwrap_or_default(),
                        }),
                        None => None,
                    },
                    outcome: r.try_get("outcome")?,
                    left_in: r.try_get("left_in")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(self.db_err())?;
        let rows = sqlx::query(
            "SELECT play, task_index, module FROM run_tasks WHERE run_id = $1
             ORDER BY play, task_index",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await
        .map_err(self.db_err())?;
        let tasks = rows
            .iter()
            .map(|r| {
                Ok(TaskContext {
                    play: usize::try_from(r.try_get::<i64, _>("play")?).unwrap_or_default(),
                    task_index: usize::try_from(r.try_get::<i64, _>("task_index")?)
                        .unwrap_or_default(),
                    module: r.try_get("module")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(self.db_err())?;
        Ok(RunContext { hosts, tasks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, HostCounts, HostOutcome, RunSummary, TaskStatus};
    use crate::journal::RunMeta;

    #[tokio::test]
    async fn a_run_keeps_its_hosts_steps_drops_and_ends() {
        let tmp = tempfile::tempdir().unwrap();
        let journal = Journal::open(tmp.path()).await.unwrap();
        let host = |name: &str, zone: Option<&str>| HostContext {
            host: name.into(),
            tenant: Some("contoso".into()),
            dag: Some("dag1".into()),
            time_zone: zone.map(String::from),
            ..HostContext::default()
        };
        let meta = RunMeta {
            hosts: vec![host("ex01", Some("Europe/Brussels")), host("ex02", None)],
            tasks: vec![TaskContext {
                play: 0,
                task_index: 0,
                module: "exchange_facts".into(),
            }],
            ..RunMeta::default()
        };
        let mut recorder = journal.recorder(meta);
        let summary = |host: &str, outcome| crate::events::HostSummary {
            host: host.into(),
            tenant: Some("contoso".into()),
            counts: HostCounts::default(),
            outcome,
            left_in: None,
        };
        for event in [
            Event::RunStarted {
                run_id: "r1".into(),
                playbook: "p.yml".into(),
                hosts: vec!["ex01".into(), "ex02".into()],
                tenants: vec!["contoso".into()],
                check_mode: false,
                started_at: "2026-12-07T04:00:00Z".into(),
            },
            Event::HostDropped {
                host: "ex02".into(),
                tenant: Some("contoso".into()),
                status: TaskStatus::Skipped,
                task: "Read facts".into(),
                msg: "the build changed since the plan".into(),
            },
            Event::RunFinished {
                summary: RunSummary {
                    hosts: vec![
                        summary("ex01", HostOutcome::Ok),
                        summary("ex02", HostOutcome::Drifted),
                    ],
                    tenants: Default::default(),
                    interrupted: false,
                    duration_ms: 1000,
                    exit_code: 2,
                },
            },
        ] {
            recorder.record_event(&event).await.unwrap();
        }
        let context = journal.run_context("r1").await.unwrap();
        assert_eq!(context.hosts.len(), 2);
        let (ex01, ex02) = (&context.hosts[0], &context.hosts[1]);
        assert_eq!(
            (
                ex01.time_zone.as_deref(),
                ex01.dag.as_deref(),
                ex01.outcome.as_deref()
            ),
            (Some("Europe/Brussels"), Some("dag1"), Some("ok"))
        );
        assert_eq!(ex02.outcome.as_deref(), Some("drifted"));
        assert_eq!(
            ex02.dropped,
            Some(Dropped {
                status: "skipped".into(),
                task: "Read facts".into(),
                msg: "the build changed since the plan".into(),
            })
        );
        assert_eq!(context.tasks[0].module, "exchange_facts");
        assert_eq!(
            journal.run_context("other").await.unwrap(),
            RunContext::default()
        );
    }
}
