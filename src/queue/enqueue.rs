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

/// Store the run and one queued item per selected host; returns the number of items.
/// Refuses extra variables that look like secrets, and hosts without a tenant.
pub async fn enqueue(
    queue: &Queue,
    input: &RunInput,
    options: &RunOptions,
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
        "INSERT INTO salve.runs (id, playbook_name, playbook_digest, playbook, options)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&options.run_id)
    .bind(path.display().to_string())
    .bind(&digest)
    .bind(&text)
    .bind(&stored)
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
        sqlx::query(
            "INSERT INTO salve.work (run_id, tenant, site, host, dag, plays)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&options.run_id)
        .bind(&item.tenant)
        .bind(&item.site)
        .bind(name)
        .bind(&item.dag)
        .bind(&item.plays)
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
        hosts,
        tenants: Vec::new(),
        check_mode: options.check_mode,
        started_at: jiff::Timestamp::now().to_string(),
    });
    let mut seen: HashSet<(i64, i32, i32, i64)> = HashSet::new();
    let mut last_state: BTreeMap<i64, (String, i64)> = BTreeMap::new();
    let mut counts: BTreeMap<i64, HostCounts> = BTreeMap::new();
    // While the database cannot be read, the runners carry on (or wait for it themselves):
    // keep trying, saying so once per outage.
    let mut unreadable = false;
    let interrupted = loop {
        let ended = async {
            for step in finished_steps(queue, &options.run_id).await? {
                if !seen.insert((step.work_id, step.play, step.task_index, step.fence)) {
                    continue;
                }
                counts.entry(step.work_id).or_default().add(step.status);
                let _ = events.send(step.event);
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
            counts: counts.remove(&w.id).unwrap_or_default(),
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
const ENDED: &[&str] = &["done", "failed", "abandoned"];

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
}

async fn work_rows(queue: &Queue, run: &str) -> Result<Vec<WorkRow>, QueueError> {
    let rows = sqlx::query(
        "SELECT id, host, tenant, state, owner, fence, needs_recheck, outcome, message
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
        "queued" if !old_state.is_empty() && old_state != "queued" => Some(format!(
            "{}: given back to the queue: {}",
            w.host,
            w.message.as_deref().unwrap_or("runner stopped")
        )),
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
        (_, Some("unreachable")) => HostOutcome::Unreachable,
        (_, Some("not_run")) => HostOutcome::NotRun,
        ("failed" | "abandoned", _) => HostOutcome::Failed,
        _ if interrupted => HostOutcome::Interrupted,
        _ => HostOutcome::NotRun,
    }
}

struct FinishedStep {
    work_id: i64,
    play: i32,
    task_index: i32,
    fence: i64,
    status: TaskStatus,
    event: Event,
}

async fn finished_steps(queue: &Queue, run: &str) -> Result<Vec<FinishedStep>, QueueError> {
    let rows = sqlx::query(
        "SELECT s.work_id, s.play, s.task_index, s.task, s.fence, s.outcome, w.host, w.tenant
         FROM salve.host_steps s JOIN salve.work w ON w.id = s.work_id
         WHERE w.run_id = $1 AND s.finished_at IS NOT NULL
         ORDER BY s.finished_at, s.work_id, s.play, s.task_index",
    )
    .bind(run)
    .fetch_all(&queue.pool)
    .await
    .map_err(QueueError::db("reading the run's steps", None))?;
    rows.iter()
        .map(|r| {
            let outcome: Option<serde_json::Value> = r.try_get("outcome")?;
            let outcome = outcome.unwrap_or_default();
            let status = task_status(outcome["status"].as_str().unwrap_or_default());
            let task_index: i32 = r.try_get("task_index")?;
            Ok(FinishedStep {
                work_id: r.try_get("work_id")?,
                play: r.try_get("play")?,
                task_index,
                fence: r.try_get("fence")?,
                status,
                event: Event::TaskFinished {
                    host: r.try_get("host")?,
                    tenant: r.try_get("tenant")?,
                    task: r.try_get("task")?,
                    task_index: usize::try_from(task_index).unwrap_or_default(),
                    status,
                    msg: outcome["msg"].as_str().map(String::from),
                    duration_ms: outcome["duration_ms"].as_u64().unwrap_or_default(),
                    result: outcome["result"].clone(),
                },
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
