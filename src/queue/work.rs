//! A runner's side of one work item: claim it (lease + fence), renew the lease, mark it running,
//! write its step transitions and intents, and finish or release it. Every write after the
//! claim carries the claim's fencing token; the database rejects it once another runner has
//! claimed the item ([`QueueError::Stale`]).
//!
//! Leases are computed from the transaction's `now()` (a claim that waited for the tenant's
//! lock gets a slightly shorter lease, never a longer one); the item's `claimed_at`,
//! `started_at` and `finished_at` are `clock_timestamp()`, the moment of the write, so their
//! intervals show what really overlapped.

use std::time::Duration;

use sqlx::Row as _;

use super::{Queue, QueueError};

/// A claimed work item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub work_id: i64,
    pub fence: i64,
    pub run_id: String,
    pub host: String,
    pub tenant: String,
    pub dag: Option<String>,
    /// Indices of the plays the host is in.
    pub plays: Vec<i32>,
    /// A previous owner's lease expired with a change announced and not finished: the host may
    /// be half-changed. Re-running is safe only because salve's modules re-read live facts
    /// before acting (see the README's failure-handling section).
    pub needs_recheck: bool,
    pub attempts: i32,
    /// The host's approved plan (`work.plan`, from `salve apply --queue`), if any.
    pub plan: Option<serde_json::Value>,
}

/// One step transition, as written to `host_steps`.
#[derive(Debug, Clone, PartialEq)]
pub struct StepWrite<'a> {
    pub play: i32,
    pub task_index: i32,
    pub task: &'a str,
    /// `started`, `done`, `failed`, `skipped` or `interrupted` (as in the local journal).
    pub state: &'a str,
    pub outcome: Option<&'a serde_json::Value>,
    pub output: Option<&'a str>,
}

const CLAIM: &str = "
WITH candidate AS (
    SELECT w.id FROM salve.work w JOIN salve.tenants t ON t.name = w.tenant
    WHERE w.tenant = $1 AND w.site IS NOT DISTINCT FROM $2
      AND (w.state = 'queued'
           OR (w.state IN ('claimed', 'running') AND w.lease_until < now()))
      -- Windows gate the start of work; a takeover finishes what began inside one.
      AND (w.state <> 'queued' OR w.windows IS NULL
           OR w.windows @> tstzrange(now(), now() + w.estimate, '[]'))
      AND (w.dag IS NULL OR NOT EXISTS (
            SELECT 1 FROM salve.work o
            WHERE o.tenant = w.tenant AND o.dag = w.dag AND o.id <> w.id
              AND o.state IN ('claimed', 'running')))
      AND (SELECT count(*) FROM salve.work a
           WHERE a.tenant = w.tenant AND a.id <> w.id
             AND a.state IN ('claimed', 'running')) < t.max_concurrency
    ORDER BY w.id
    LIMIT 1
    FOR UPDATE OF w SKIP LOCKED
)
UPDATE salve.work w SET
    state = 'claimed', owner = $3, lease_until = now() + make_interval(secs => $4),
    fence = w.fence + 1, attempts = w.attempts + 1, claimed_at = clock_timestamp(),
    started_at = NULL,
    needs_recheck = w.needs_recheck OR EXISTS (
        SELECT 1 FROM salve.intents i WHERE i.work_id = w.id AND i.completed_at IS NULL)
FROM candidate c WHERE w.id = c.id
RETURNING w.id, w.fence, w.run_id, w.host, w.tenant, w.dag, w.plays, w.needs_recheck,
    w.attempts, w.plan";

/// Queued items none of whose remaining window openings has room for the estimate.
const MISS: &str = "
UPDATE salve.work SET state = 'missed', outcome = 'not_run', finished_at = clock_timestamp(),
    message = 'no maintenance window opening left with room for the planned work (about '
        || estimate || '); plan, approve and apply again'
WHERE tenant = $1 AND state = 'queued' AND windows IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM unnest(windows) r
                  WHERE upper(r) - greatest(lower(r), now()) > estimate)";

impl Queue {
    /// Claim the next item of `tenant` at `site` (`None`: items without a site) for `owner`,
    /// or `None` when nothing may start now. A queued item with maintenance windows is claimed
    /// only inside an opening with room for its estimate (an expired lease is taken over at
    /// any time: the work began inside a window and the host may be half-changed). Items whose lease expired after
    /// `max_attempts` claims are marked `abandoned` instead of being claimed again, and queued
    /// items with no opening left long enough are marked `missed`.
    pub async fn claim(
        &self,
        tenant: &str,
        site: Option<&str>,
        owner: &str,
        lease: Duration,
        max_attempts: i32,
    ) -> Result<Option<Claim>, QueueError> {
        let err = |doing| QueueError::db(doing, None);
        let mut tx = self.pool.begin().await.map_err(err("starting a claim"))?;
        // Claims of one tenant are serialised so the DAG rule and the concurrency cap see
        // every committed claim (READ COMMITTED takes a fresh snapshot per statement).
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('salve.claim:' || $1, 0))")
            .bind(tenant)
            .execute(&mut *tx)
            .await
            .map_err(err("locking the tenant's claims"))?;
        sqlx::query(
            "UPDATE salve.work SET state = 'abandoned', finished_at = clock_timestamp(),
                 lease_until = NULL,
                 message = 'lease expired ' || attempts || ' times; abandoned for an operator'
             WHERE tenant = $1 AND state IN ('claimed', 'running') AND lease_until < now()
               AND attempts >= $2",
        )
        .bind(tenant)
        .bind(max_attempts)
        .execute(&mut *tx)
        .await
        .map_err(err("abandoning exhausted items"))?;
        sqlx::query(MISS)
            .bind(tenant)
            .execute(&mut *tx)
            .await
            .map_err(err("ending items whose windows have passed"))?;
        let row = sqlx::query(CLAIM)
            .bind(tenant)
            .bind(site)
            .bind(owner)
            .bind(lease.as_secs_f64())
            .fetch_optional(&mut *tx)
            .await
            .map_err(err("claiming work"))?;
        tx.commit().await.map_err(err("committing a claim"))?;
        let Some(r) = row else { return Ok(None) };
        let claim = (|| {
            Ok::<_, sqlx::Error>(Claim {
                work_id: r.try_get("id")?,
                fence: r.try_get("fence")?,
                run_id: r.try_get("run_id")?,
                host: r.try_get("host")?,
                tenant: r.try_get("tenant")?,
                dag: r.try_get("dag")?,
                plays: r.try_get("plays")?,
                needs_recheck: r.try_get("needs_recheck")?,
                attempts: r.try_get("attempts")?,
                plan: r.try_get("plan")?,
            })
        })()
        .map_err(err("reading a claim"))?;
        Ok(Some(claim))
    }

    /// A listener woken when work of one of `tenants` is enqueued, given back or ends (see
    /// the schema's `salve.work_channel`). It holds one of the pool's connections.
    pub async fn listen_for_work(
        &self,
        tenants: &[String],
    ) -> Result<sqlx::postgres::PgListener, QueueError> {
        let err = |doing| QueueError::db(doing, None);
        let channels = self.work_channels(tenants).await?;
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool)
            .await
            .map_err(err("connecting a listener"))?;
        let channels: Vec<&str> = channels.iter().map(String::as_str).collect();
        listener
            .listen_all(channels)
            .await
            .map_err(err("listening for work"))?;
        Ok(listener)
    }

    /// The notification channel of each of `tenants`, in order.
    pub(super) async fn work_channels(
        &self,
        tenants: &[String],
    ) -> Result<Vec<String>, QueueError> {
        sqlx::query_scalar(
            "SELECT salve.work_channel(t) FROM unnest($1::text[]) WITH ORDINALITY AS u(t, n)
             ORDER BY n",
        )
        .bind(tenants)
        .fetch_all(&self.pool)
        .await
        .map_err(QueueError::db("naming the tenants' channels", None))
    }

    /// Extend the lease by `lease` from the database's now. `false`: the item is no longer
    /// this claim's (taken over, or finished by someone else). (A runner renews all its items
    /// at once: [`Queue::renew_all`].)
    pub async fn renew(&self, claim: &Claim, lease: Duration) -> Result<bool, QueueError> {
        let kept = self
            .renew_all(&[claim.work_id], &[claim.fence], lease)
            .await?;
        Ok(!kept.is_empty())
    }

    /// Extend the leases of the items `ids` (with their claims' `fences`) by `lease` from the
    /// database's now, in one statement that locks them in id order; the (id, fence) pairs
    /// still this runner's (the others were taken over, or finished by someone else).
    pub(super) async fn renew_all(
        &self,
        ids: &[i64],
        fences: &[i64],
        lease: Duration,
    ) -> Result<Vec<(i64, i64)>, QueueError> {
        sqlx::query_as(
            "WITH mine AS (
                 SELECT w.id FROM salve.work w
                 JOIN unnest($1::bigint[], $2::bigint[]) AS h(id, fence)
                     ON w.id = h.id AND w.fence = h.fence
                 WHERE w.state IN ('claimed', 'running')
                 ORDER BY w.id
                 FOR UPDATE OF w
             )
             UPDATE salve.work w SET lease_until = now() + make_interval(secs => $3)
             FROM mine WHERE w.id = mine.id
             RETURNING w.id, w.fence",
        )
        .bind(ids)
        .bind(fences)
        .bind(lease.as_secs_f64())
        .fetch_all(&self.pool)
        .await
        .map_err(QueueError::db("renewing leases", None))
    }

    /// The item is being worked on. (A runner marks it so with its first step rows, see
    /// [`super::writer`].)
    pub async fn start(&self, claim: &Claim) -> Result<(), QueueError> {
        let mut conn = (self.pool.acquire().await)
            .map_err(QueueError::db("starting a work item", Some(claim)))?;
        start_in(&mut conn, claim)
            .await
            .map_err(QueueError::db("starting a work item", Some(claim)))
            .and_then(|rows| stale_unless_one(claim, rows))
    }

    /// The item ended: `done` or `failed`, with the host outcome and a message.
    pub async fn finish(
        &self,
        claim: &Claim,
        state: &str,
        outcome: &str,
        message: Option<&str>,
    ) -> Result<(), QueueError> {
        let sql = "UPDATE salve.work SET state = $3, outcome = $4, message = $5,
                       finished_at = clock_timestamp(), lease_until = NULL
                   WHERE id = $1 AND fence = $2 AND state IN ('claimed', 'running')";
        let done = sqlx::query(sql)
            .bind(claim.work_id)
            .bind(claim.fence)
            .bind(state)
            .bind(outcome)
            .bind(message)
            .execute(&self.pool)
            .await
            .map_err(QueueError::db("finishing a work item", Some(claim)))?;
        stale_unless_one(claim, done.rows_affected())
    }

    /// Give the item back (this runner is stopping): queued again for any runner.
    pub async fn release(&self, claim: &Claim, message: &str) -> Result<(), QueueError> {
        self.fenced_update(
            claim,
            "UPDATE salve.work SET state = 'queued', owner = NULL, lease_until = NULL,
                 message = $3
             WHERE id = $1 AND fence = $2 AND state IN ('claimed', 'running')",
            Some(message),
            "releasing a work item",
        )
        .await
    }

    async fn fenced_update(
        &self,
        claim: &Claim,
        sql: &'static str,
        message: Option<&str>,
        doing: &'static str,
    ) -> Result<(), QueueError> {
        let mut query = sqlx::query(sql).bind(claim.work_id).bind(claim.fence);
        if let Some(v) = message {
            query = query.bind(v);
        }
        let done = query
            .execute(&self.pool)
            .await
            .map_err(QueueError::db(doing, Some(claim)))?;
        stale_unless_one(claim, done.rows_affected())
    }

    /// Write intent outcomes and step transitions (insert or update by work item, play and
    /// task), in this order and in one transaction, all under the claim's fence. A queue made
    /// [`Queue::grouped`] shares the transaction with the runner's other items.
    pub async fn write_steps(
        &self,
        claim: &Claim,
        outcomes: &[(i64, serde_json::Value)],
        steps: &[StepWrite<'_>],
    ) -> Result<(), QueueError> {
        let steps = steps.iter().map(StepWrite::to_owned).collect();
        self.write_item_steps(claim, false, outcomes.to_vec(), steps)
            .await
    }

    /// [`Queue::write_steps`] of owned rows (a runner's recorder builds them, and a grouped
    /// queue hands them to its writer as they are), with `start` first marking the item
    /// running (its first rows).
    pub(super) async fn write_item_steps(
        &self,
        claim: &Claim,
        start: bool,
        outcomes: Vec<(i64, serde_json::Value)>,
        steps: Vec<StepRow>,
    ) -> Result<(), QueueError> {
        if let Some(group) = &self.group {
            return group.steps(claim, start, outcomes, steps).await;
        }
        let steps: Vec<_> = steps.iter().map(StepRow::as_write).collect();
        let err = |doing| QueueError::db(doing, Some(claim));
        let mut tx = self.pool.begin().await.map_err(err("writing steps"))?;
        if start {
            let rows = start_in(&mut tx, claim)
                .await
                .map_err(err("starting a work item"))?;
            stale_unless_one(claim, rows)?;
        }
        write_steps_in(&mut tx, claim, &outcomes, &steps)
            .await
            .map_err(err("writing steps"))?;
        tx.commit().await.map_err(err("writing steps"))
    }

    /// Announce a change before it is made; returns the intent's id once it is committed. A
    /// queue made [`Queue::grouped`] commits it together with the runner's other writes.
    pub async fn begin_intent(
        &self,
        claim: &Claim,
        play: i32,
        task_index: i32,
        action: &str,
    ) -> Result<i64, QueueError> {
        if let Some(group) = &self.group {
            return group.intent(claim, play, task_index, action).await;
        }
        let mut conn = (self.pool.acquire().await)
            .map_err(QueueError::db("writing an intent", Some(claim)))?;
        insert_intent_in(&mut conn, claim, play, task_index, action)
            .await
            .map_err(QueueError::db("writing an intent", Some(claim)))
    }
}

/// One step transition, owned: what a runner's recorder writes, and a grouped queue sends to
/// its writer.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StepRow {
    pub play: i32,
    pub task_index: i32,
    pub task: String,
    pub state: String,
    pub outcome: Option<serde_json::Value>,
    pub output: Option<String>,
}

impl StepWrite<'_> {
    pub(super) fn to_owned(&self) -> StepRow {
        StepRow {
            play: self.play,
            task_index: self.task_index,
            task: self.task.to_string(),
            state: self.state.to_string(),
            outcome: self.outcome.cloned(),
            output: self.output.map(str::to_string),
        }
    }
}

impl StepRow {
    pub(super) fn as_write(&self) -> StepWrite<'_> {
        StepWrite {
            play: self.play,
            task_index: self.task_index,
            task: &self.task,
            state: &self.state,
            outcome: self.outcome.as_ref(),
            output: self.output.as_deref(),
        }
    }
}

/// Mark the item running (from claimed); the number of rows changed (0: stale, or already
/// running).
pub(super) async fn start_in(
    conn: &mut sqlx::PgConnection,
    claim: &Claim,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE salve.work SET state = 'running', started_at = clock_timestamp()
         WHERE id = $1 AND fence = $2 AND state = 'claimed'",
    )
    .bind(claim.work_id)
    .bind(claim.fence)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// The statements of [`Queue::write_steps`], on `conn` (inside the caller's transaction).
pub(super) async fn write_steps_in(
    conn: &mut sqlx::PgConnection,
    claim: &Claim,
    outcomes: &[(i64, serde_json::Value)],
    steps: &[StepWrite<'_>],
) -> Result<(), sqlx::Error> {
    for (intent, outcome) in outcomes {
        sqlx::query(
            "UPDATE salve.intents SET completed_at = now(), outcome = $2, fence = $3
             WHERE id = $1",
        )
        .bind(intent)
        .bind(sqlx::types::Json(crate::secret::Redacted(outcome)))
        .bind(claim.fence)
        .execute(&mut *conn)
        .await?;
    }
    for step in steps {
        let finished = step.state != "started";
        sqlx::query(
            "INSERT INTO salve.host_steps (work_id, run_id, host, tenant, play, task_index,
                 task, state, started_at, finished_at, outcome, output, fence)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now(),
                     CASE WHEN $9 THEN now() END, $10, $11, $12)
             ON CONFLICT (work_id, play, task_index) DO UPDATE SET
                 task = excluded.task, state = excluded.state, fence = excluded.fence,
                 started_at = CASE WHEN $9 THEN host_steps.started_at ELSE now() END,
                 finished_at = excluded.finished_at, outcome = excluded.outcome,
                 output = excluded.output",
        )
        .bind(claim.work_id)
        .bind(&claim.run_id)
        .bind(&claim.host)
        .bind(&claim.tenant)
        .bind(step.play)
        .bind(step.task_index)
        .bind(step.task)
        .bind(step.state)
        .bind(finished)
        .bind(step.outcome)
        .bind(step.output)
        .bind(claim.fence)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Insert an intent row on `conn`; its id.
pub(super) async fn insert_intent_in(
    conn: &mut sqlx::PgConnection,
    claim: &Claim,
    play: i32,
    task_index: i32,
    action: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO salve.intents (work_id, run_id, host, play, task_index, action, fence)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(claim.work_id)
    .bind(&claim.run_id)
    .bind(&claim.host)
    .bind(play)
    .bind(task_index)
    .bind(action)
    .bind(claim.fence)
    .fetch_one(conn)
    .await
}

pub(super) fn stale_unless_one(claim: &Claim, rows: u64) -> Result<(), QueueError> {
    if rows == 1 {
        Ok(())
    } else {
        Err(QueueError::Stale {
            work_id: claim.work_id,
            fence: claim.fence,
        })
    }
}

/// Until a notification arrives on `wake` (never, without a listener); its channel. A listener
/// whose connection fails reconnects on the next call; meanwhile wait a poll, not a busy loop.
pub(super) async fn notified(
    wake: Option<&mut sqlx::postgres::PgListener>,
    poll: Duration,
) -> Option<String> {
    match wake {
        Some(listener) => match listener.recv().await {
            Ok(notification) => Some(notification.channel().to_string()),
            Err(_) => {
                tokio::time::sleep(poll).await;
                None
            }
        },
        None => std::future::pending().await,
    }
}
