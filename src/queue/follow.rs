//! The controller following a queued run: it replays what the runners write as ordinary run
//! [`Event`]s, so the usual reporters (progress bars, plain lines, `--json`, report files) and
//! exit codes show a queued run like a local one. Everything it needs is in the database, so a
//! run can be followed again later (`salve queue follow RUN`) from any machine whose role may
//! read it.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use sqlx::Row as _;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::enqueue::StoredOptions;
use super::{Queue, QueueError, RunProblem};
use crate::events::{Event, HostCounts, HostOutcome, HostSummary, RunSummary, TaskStatus};

/// After a notification, how long to wait for others before reading the queue (at most two
/// reads a second: each reads every item of the run).
const SETTLE: Duration = Duration::from_millis(500);

/// Follow run `run_id`: send its events to `events` as the runners write them (from the start
/// of the run), until every item has ended or `stop` is cancelled (the run then goes on without
/// us; the summary says interrupted). Returns the summary, also sent last.
pub async fn follow(
    queue: &Queue,
    run_id: &str,
    events: &UnboundedSender<Event>,
    poll: Duration,
    stop: &CancellationToken,
) -> Result<RunSummary, QueueError> {
    let started = tokio::time::Instant::now();
    let (playbook, stored) = run_row(queue, run_id).await?;
    let first = work_rows(queue, run_id).await?;
    let tenants: BTreeSet<String> = first.iter().map(|w| w.tenant.clone()).collect();
    let hosts: Vec<String> = first.into_iter().map(|w| w.host).collect();
    // Woken when an item of the run's tenants ends or is given back (the schema's trigger),
    // so the run's end is seen at once; `poll` remains for step progress and as the fallback.
    let tenants: Vec<String> = tenants.into_iter().collect();
    let mut wake = queue.listen_for_work(&tenants).await.ok();
    let _ = events.send(Event::RunStarted {
        run_id: run_id.to_string(),
        playbook,
        hosts: hosts.clone(),
        tenants: Vec::new(),
        check_mode: stored.check_mode,
        started_at: jiff::Timestamp::now().to_string(),
    });
    // The whole queued run shows as one play over every host; with several plays, the task
    // count is their sum so only the host's end (`HostFinished`) completes it.
    let plays = &stored.plays;
    let _ = events.send(Event::PlayStarted {
        play: match plays.as_slice() {
            [one] => one.name.clone(),
            _ => format!("{} plays", plays.len()),
        },
        play_index: 0,
        hosts,
        tasks: plays.iter().map(|p| p.tasks).sum(),
        batches: Vec::new(),
    });
    let mut seen: HashSet<(i64, i32, i32, i64)> = HashSet::new();
    let mut running: HashSet<(i64, i32, i32, i64)> = HashSet::new();
    let mut last_state: BTreeMap<i64, (String, i64)> = BTreeMap::new();
    let mut counts: BTreeMap<i64, (i64, HostCounts)> = BTreeMap::new();
    let mut watermark = None;
    // While the database cannot be read, the runners carry on (or wait for it themselves):
    // keep trying, saying so once per outage.
    let mut unreadable = false;
    let interrupted = loop {
        let ended = async {
            // Work first, then steps: a runner commits a host's steps before ending its item,
            // so every step of an item seen ended here is in the read below.
            let work = work_rows(queue, run_id).await?;
            for step in steps(queue, run_id, &mut watermark).await? {
                let key = (step.work_id, step.play, step.task_index, step.fence);
                match step.status {
                    None if running.insert(key) => {
                        let _ = events.send(step.event);
                    }
                    Some(status) if seen.insert(key) => {
                        // A takeover runs the host again: count only the latest claim's steps.
                        let (fence, tally) = counts.entry(step.work_id).or_default();
                        if step.fence > *fence {
                            *fence = step.fence;
                            *tally = HostCounts::default();
                        }
                        tally.add(status);
                        let _ = events.send(step.event);
                    }
                    _ => {}
                }
            }
            for w in &work {
                let now = (w.state.clone(), w.fence);
                if last_state.get(&w.id) == Some(&now) {
                    continue;
                }
                if let Some(message) = transition_note(w, last_state.get(&w.id)) {
                    let _ = events.send(Event::Warning { message });
                }
                if ENDED.contains(&w.state.as_str()) {
                    let outcome = host_outcome(w, false);
                    let _ = events.send(Event::HostFinished {
                        host: w.host.clone(),
                        tenant: Some(w.tenant.clone()),
                        outcome,
                        msg: (outcome != HostOutcome::Ok)
                            .then(|| w.message.clone())
                            .flatten(),
                    });
                }
                last_state.insert(w.id, now);
            }
            Ok::<_, QueueError>(work.iter().all(|w| ENDED.contains(&w.state.as_str())))
        }
        .await;
        match ended {
            Ok(true) => break false,
            Ok(false) => unreadable = false,
            Err(e) if !unreadable => {
                unreadable = true;
                let message = format!(
                    "cannot read the queue ({}); still following, retrying",
                    crate::error_chain::one_line(&e)
                );
                let _ = events.send(Event::Warning { message });
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = super::work::notified(wake.as_mut(), poll) => {
                // Items end in bursts: read once for all that end meanwhile.
                tokio::time::sleep(SETTLE.min(poll)).await;
                while let Some(listener) = wake.as_mut()
                    && listener.next_buffered().is_some()
                {}
            }
            _ = stop.cancelled() => break true,
        }
    };
    let work = work_rows(queue, run_id).await?;
    let hosts = work
        .into_iter()
        .map(|w| HostSummary {
            outcome: host_outcome(&w, interrupted),
            counts: counts.remove(&w.id).unwrap_or_default().1,
            host: w.host,
            tenant: Some(w.tenant),
            left_in: None,
        })
        .collect();
    let summary = crate::runner::summarize(hosts, interrupted, started.elapsed());
    let _ = events.send(Event::RunFinished {
        summary: summary.clone(),
    });
    Ok(summary)
}

/// The run's playbook name and stored options; a run this role cannot see is not found.
async fn run_row(queue: &Queue, run_id: &str) -> Result<(String, StoredOptions), QueueError> {
    let row: Option<(String, serde_json::Value)> =
        sqlx::query_as("SELECT playbook_name, options FROM salve.runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&queue.pool)
            .await
            .map_err(QueueError::db("reading the run", None))?;
    let (playbook, options) = row.ok_or_else(|| RunProblem::NotFound.of(run_id))?;
    let stored = serde_json::from_value(options).map_err(|e| RunProblem::Options(e).of(run_id))?;
    Ok((playbook, stored))
}

/// States in which an item is over.
const ENDED: &[&str] = &["done", "failed", "abandoned", "missed"];

struct WorkRow {
    id: i64,
    host: String,
    tenant: String,
    state: String,
    owner: Option<String>,
    fence: i64,
    needs_recheck: bool,
    outcome: Option<String>,
    message: Option<String>,
    /// Queued and outside its maintenance window: when the next opening with room starts.
    waits_until: Option<String>,
}

async fn work_rows(queue: &Queue, run: &str) -> Result<Vec<WorkRow>, QueueError> {
    let rows = sqlx::query(
        "SELECT id, host, tenant, state, owner, fence, needs_recheck, outcome, message,
             CASE WHEN state = 'queued' AND windows IS NOT NULL
                   AND NOT windows @> tstzrange(now(), now() + estimate, '[]')
             THEN (SELECT min(greatest(lower(r), now())) FROM unnest(windows) r
                   WHERE upper(r) - greatest(lower(r), now()) > estimate)::text
             END AS waits_until
         FROM salve.work WHERE run_id = $1 ORDER BY id",
    )
    .bind(run)
    .fetch_all(&queue.pool)
    .await
    .map_err(QueueError::db("reading the run's work", None))?;
    rows.iter()
        .map(|r| {
            Ok(WorkRow {
                id: r.try_get("id")?,
                host: r.try_get("host")?,
                tenant: r.try_get("tenant")?,
                state: r.try_get("state")?,
                owner: r.try_get("owner")?,
                fence: r.try_get("fence")?,
                needs_recheck: r.try_get("needs_recheck")?,
                outcome: r.try_get("outcome")?,
                message: r.try_get("message")?,
                waits_until: r.try_get("waits_until")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(QueueError::db("reading the run's work", None))
}

/// A line worth telling about an item's change of state or owner since it was last seen.
fn transition_note(w: &WorkRow, before: Option<&(String, i64)>) -> Option<String> {
    let owner = w.owner.as_deref().unwrap_or("?");
    let (old_state, old_fence) = before.map_or(("", 0), |(s, f)| (s.as_str(), *f));
    match w.state.as_str() {
        "abandoned" => Some(format!(
            "{}: abandoned: {}",
            w.host,
            w.message.as_deref().unwrap_or("no runner kept its lease")
        )),
        "missed" => Some(format!(
            "{}: not run: {}",
            w.host,
            w.message
                .as_deref()
                .unwrap_or("its maintenance windows have passed")
        )),
        "queued" if !old_state.is_empty() && old_state != "queued" => Some(format!(
            "{}: given back to the queue: {}",
            w.host,
            w.message.as_deref().unwrap_or("runner stopped")
        )),
        "queued" if before.is_none() => w.waits_until.as_ref().map(|at| {
            format!(
                "{}: waiting for its maintenance window (opening at {at})",
                w.host
            )
        }),
        "queued" => None,
        _ if w.fence > 1 && w.fence != old_fence => {
            let recheck = if w.needs_recheck {
                "; a change may have been half-made, so the host is re-checked from live facts"
            } else {
                ""
            };
            Some(format!(
                "{}: claimed again by runner {owner} (claim {}){recheck}",
                w.host, w.fence
            ))
        }
        _ => None,
    }
}

fn host_outcome(w: &WorkRow, interrupted: bool) -> HostOutcome {
    match (w.state.as_str(), w.outcome.as_deref()) {
        ("done", _) => HostOutcome::Ok,
        (_, Some("drifted")) => HostOutcome::Drifted,
        (_, Some("unreachable")) => HostOutcome::Unreachable,
        (_, Some("not_run")) => HostOutcome::NotRun,
        ("failed" | "abandoned", _) => HostOutcome::Failed,
        _ if interrupted => HostOutcome::Interrupted,
        _ => HostOutcome::NotRun,
    }
}

/// A step the runners wrote: started (`status` `None`) or finished.
struct StepRow {
    work_id: i64,
    play: i32,
    task_index: i32,
    fence: i64,
    status: Option<TaskStatus>,
    event: Event,
}

/// How far back each read of the run's steps looks before the newest change already seen:
/// a step written by a statement that began earlier can commit after one that began later.
const STEP_MARGIN_SECS: f64 = 10.0;

/// The run's steps written since `watermark` (database clock, seconds since the epoch, less
/// [`STEP_MARGIN_SECS`]; `None`: all), as `TaskStarted` events while running and
/// `TaskFinished` once finished; `watermark` moves to the newest change read. The caller drops
/// the steps it has seen already.
async fn steps(
    queue: &Queue,
    run: &str,
    watermark: &mut Option<f64>,
) -> Result<Vec<StepRow>, QueueError> {
    let rows = sqlx::query(
        "SELECT s.work_id, s.play, s.task_index, s.task, s.fence, s.outcome, w.host, w.tenant,
             s.finished_at IS NOT NULL AS finished,
             extract(epoch FROM coalesce(s.finished_at, s.started_at))::float8 AS changed
         FROM salve.host_steps s JOIN salve.work w ON w.id = s.work_id
         WHERE s.run_id = $1
           AND ($2::float8 IS NULL OR coalesce(s.finished_at, s.started_at) >= to_timestamp($2))
         ORDER BY coalesce(s.finished_at, s.started_at), s.work_id, s.play, s.task_index",
    )
    .bind(run)
    .bind(watermark.map(|w| w - STEP_MARGIN_SECS))
    .fetch_all(&queue.pool)
    .await
    .map_err(QueueError::db("reading the run's steps", None))?;
    for r in &rows {
        let changed: Option<f64> = r
            .try_get("changed")
            .map_err(QueueError::db("reading the run's steps", None))?;
        if let Some(changed) = changed {
            *watermark = Some(watermark.map_or(changed, |w| w.max(changed)));
        }
    }
    rows.iter()
        .map(|r| {
            let task_index: i32 = r.try_get("task_index")?;
            let play: i32 = r.try_get("play")?;
            let index = usize::try_from(task_index).unwrap_or_default();
            let play_index = usize::try_from(play).unwrap_or_default();
            let (host, tenant, task) =
                (r.try_get("host")?, r.try_get("tenant")?, r.try_get("task")?);
            let (status, event) = if r.try_get("finished")? {
                let outcome: Option<serde_json::Value> = r.try_get("outcome")?;
                let outcome = outcome.unwrap_or_default();
                let status = task_status(outcome["status"].as_str().unwrap_or_default());
                let event = Event::TaskFinished {
                    host,
                    tenant,
                    task,
                    play_index,
                    task_index: index,
                    status,
                    msg: outcome["msg"].as_str().map(String::from),
                    duration_ms: outcome["duration_ms"].as_u64().unwrap_or_default(),
                    result: outcome["result"].clone(),
                };
                (Some(status), event)
            } else {
                let event = Event::TaskStarted {
                    host,
                    tenant,
                    task,
                    play_index,
                    task_index: index,
                    item: None,
                };
                (None, event)
            };
            Ok(StepRow {
                work_id: r.try_get("work_id")?,
                play,
                task_index,
                fence: r.try_get("fence")?,
                status,
                event,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(QueueError::db("reading the run's steps", None))
}

/// The inverse of the status's JSON name; an unknown name (a newer runner) counts as failed.
fn task_status(name: &str) -> TaskStatus {
    match name {
        "ok" => TaskStatus::Ok,
        "changed" => TaskStatus::Changed,
        "unreachable" => TaskStatus::Unreachable,
        "skipped" => TaskStatus::Skipped,
        "ignored" => TaskStatus::Ignored,
        "interrupted" => TaskStatus::Interrupted,
        _ => TaskStatus::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_status_names_round_trip() {
        for status in [
            TaskStatus::Ok,
            TaskStatus::Changed,
            TaskStatus::Failed,
            TaskStatus::Unreachable,
            TaskStatus::Skipped,
            TaskStatus::Ignored,
            TaskStatus::Interrupted,
        ] {
            let name = serde_json::to_value(status).unwrap();
            assert_eq!(task_status(name.as_str().unwrap()), status);
        }
    }
}
