//! The controller's side: turn a prepared run into one work item per host ([`enqueue`]), then
//! follow the items until every one has ended ([`follow`]), replaying what the runners wrote as
//! ordinary run [`Event`]s so the usual reporters (plain lines, `--json`, report files) show a
//! queued run like a local one.
//!
//! Per host: the tenant comes from the inventory (required), the site from the `salve_site`
//! variable, the DAG from `salve_dag`; the plays it is in from the run's selection.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use sqlx::Row as _;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::{Queue, QueueError};
use crate::events::{Event, HostCounts, HostOutcome, HostSummary, RunSummary, TaskStatus};
use crate::model::Vars;
use crate::runner::{DAG_VAR, RunInput, RunOptions};

/// The host variable naming a host's site (the network a runner serves).
pub const SITE_VAR: &str = "salve_site";

/// The run options stored with a queued run (no secrets: see [`enqueue`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredOptions {
    pub check_mode: bool,
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
    pub extra_vars: Vars,
}

/// What `salve apply --queue` adds to each host's work item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Approved {
    pub hosts: BTreeMap<String, ApprovedHost>,
}

/// One host of an approved plan, as its runner needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApprovedHost {
    /// `(play, task index)` of the planned steps: the only changing steps the runner runs.
    pub steps: BTreeSet<(usize, usize)>,
    /// The facts the plan was made from (a host whose facts drifted is left alone).
    pub facts: serde_json::Value,
    /// Maintenance-window openings `[start, end)` the work may start in; `None`: any time.
    pub openings: Option<Vec<(jiff::Timestamp, jiff::Timestamp)>>,
    /// The planned work's estimated length: the opening must have room for it.
    pub estimate: Duration,
}

impl ApprovedHost {
    /// The openings as a PostgreSQL `tstzmultirange` literal.
    fn windows_literal(&self) -> Option<String> {
        let ranges: Vec<String> = self
            .openings
            .as_ref()?
            .iter()
            .map(|(start, end)| format!("[\"{start}\",\"{end}\")"))
            .collect();
        Some(format!("{{{}}}", ranges.join(",")))
    }

    /// The gate's view, stored in `work.plan`.
    fn plan_json(&self) -> serde_json::Value {
        serde_json::json!({ "steps": self.steps, "facts": self.facts })
    }
}

/// A stored `work.plan`, read back by the runner.
#[derive(Debug, Clone, Deserialize)]
pub struct StoredPlan {
    pub steps: BTreeSet<(usize, usize)>,
    pub facts: serde_json::Value,
}

/// Store the run and one queued item per selected host; returns the number of items. With
/// `approved` (from `salve apply --queue`), each item carries its host's planned steps, facts,
/// window openings and estimate. Refuses extra variables that look like secrets, and hosts
/// without a tenant.
pub async fn enqueue(
    queue: &Queue,
    input: &RunInput,
    options: &RunOptions,
    approved: Option<&Approved>,
) -> Result<usize, QueueError> {
    if let Some(key) = options
        .extra_vars
        .keys()
        .find(|k| crate::secret::is_secret_var(k) || k.as_str() == "password")
    {
        return Err(QueueError::SecretExtraVar(key.clone()));
    }
    let run_err = |message: String| QueueError::Run {
        run: options.run_id.clone(),
        message,
    };
    let path = &input.playbook.path;
    let text = std::fs::read_to_string(path)
        .map_err(|e| run_err(format!("cannot read {}: {e}", path.display())))?;
    let digest = hex::encode(sha2::Sha256::digest(text.as_bytes()));
    if digest != input.playbook.digest {
        return Err(run_err(format!("{} changed while loading", path.display())));
    }
    let mut items: BTreeMap<String, Item> = BTreeMap::new();
    let mut order = Vec::new();
    for (play, hosts) in input.play_hosts.iter().enumerate() {
        for name in hosts {
            let Some(host) = input.inventory.host(name) else {
                continue;
            };
            let tenant = host
                .tenant
                .clone()
                .ok_or_else(|| QueueError::NoTenant(name.clone()))?;
            let var = |key: &str| {
                host.vars
                    .get(key)
                    .and_then(|v| v.as_str())
                    .map(String::from)
            };
            let item = items.entry(name.clone()).or_insert_with(|| {
                order.push(name.clone());
                Item {
                    tenant,
                    site: var(SITE_VAR),
                    dag: var(DAG_VAR),
                    plays: Vec::new(),
                }
            });
            item.plays.push(play as i32);
        }
    }
    let stored = StoredOptions {
        check_mode: options.check_mode,
        tags: options.tags.clone(),
        skip_tags: options.skip_tags.clone(),
        extra_vars: options.extra_vars.clone(),
    };
    let stored = serde_json::to_value(&stored).map_err(|e| run_err(e.to_string()))?;
    let err = |doing| QueueError::db(doing, None);
    let mut tx = queue
        .pool
        .begin()
        .await
        .map_err(err("starting to enqueue"))?;
    sqlx::query(
        "INSERT INTO salve.runs (id, playbook_name, playbook_digest, playbook, options,
             plan_digest)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&options.run_id)
    .bind(path.display().to_string())
    .bind(&digest)
    .bind(&text)
    .bind(&stored)
    .bind(&options.plan_digest)
    .execute(&mut *tx)
    .await
    .map_err(err("storing the run"))?;
    let tenants: BTreeSet<&String> = items.values().map(|i| &i.tenant).collect();
    for tenant in tenants {
        sqlx::query("INSERT INTO salve.tenants (name) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(tenant)
            .execute(&mut *tx)
            .await
            .map_err(err("registering a tenant"))?;
    }
    for name in &order {
        let item = &items[name];
        let planned = approved.and_then(|a| a.hosts.get(name));
        sqlx::query(
            "INSERT INTO salve.work (run_id, tenant, site, host, dag, plays, plan, windows,
                 estimate)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8::tstzmultirange,
                 make_interval(secs => $9))",
        )
        .bind(&options.run_id)
        .bind(&item.tenant)
        .bind(&item.site)
        .bind(name)
        .bind(&item.dag)
        .bind(&item.plays)
        .bind(planned.map(ApprovedHost::plan_json))
        .bind(planned.and_then(ApprovedHost::windows_literal))
        .bind(planned.map_or(0.0, |p| p.estimate.as_secs_f64()))
        .execute(&mut *tx)
        .await
        .map_err(err("enqueueing a host"))?;
    }
    tx.commit().await.map_err(err("committing the run"))?;
    Ok(order.len())
}

struct Item {
    tenant: String,
    site: Option<String>,
    dag: Option<String>,
    plays: Vec<i32>,
}

/// Follow run `run_id` (enqueued from `input` with `options`): send its events to `events` as
/// the runners write them, until every item has ended or `stop` is cancelled (the run then goes
/// on without us; the summary says interrupted). Returns the summary, also sent last.
pub async fn follow(
    queue: &Queue,
    input: &RunInput,
    options: &RunOptions,
    events: &UnboundedSender<Event>,
    poll: Duration,
    stop: &CancellationToken,
) -> Result<RunSummary, QueueError> {
    let started = tokio::time::Instant::now();
    let hosts: Vec<String> = work_rows(queue, &options.run_id)
        .await?
        .into_iter()
        .map(|w| w.host)
        .collect();
    let _ = events.send(Event::RunStarted {
        run_id: options.run_id.clone(),
        playbook: input.playbook.path.display().to_string(),
        hosts: hosts.clone(),
        tenants: Vec::new(),
        check_mode: options.check_mode,
        started_at: jiff::Timestamp::now().to_string(),
    });
    // The whole queued run shows as one play over every host; with several plays, the task
    // count is their sum so only the host's end (`HostFinished`) completes it.
    let plays = &input.playbook.plays;
    let _ = events.send(Event::PlayStarted {
        play: match plays.as_slice() {
            [one] => one.name.clone(),
            _ => format!("{} plays", plays.len()),
        },
        hosts,
        tasks: plays.iter().map(|p| p.tasks.len()).sum(),
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
            for step in steps(queue, &options.run_id, &mut watermark).await? {
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
            let work = work_rows(queue, &options.run_id).await?;
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
                    super::worker::chain(&e)
                );
                let _ = events.send(Event::Warning { message });
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop.cancelled() => break true,
        }
    };
    let work = work_rows(queue, &options.run_id).await?;
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
            let index = usize::try_from(task_index).unwrap_or_default();
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
                    task_index: index,
                    item: None,
                };
                (None, event)
            };
            Ok(StepRow {
                work_id: r.try_get("work_id")?,
                play: r.try_get("play")?,
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
