//! The queued runs a runner has loaded, by run id: the enqueued playbook text read once from
//! `salve.runs`, written to a scratch file, loaded against the runner's inventory and checked
//! against the enqueued digest, with the run's options. Every item of a run shares the one
//! load, so an item costs no database read and no playbook parse. A run is immutable once
//! enqueued (its playbook is checked by digest), so a cached load never goes out of date; the
//! cache keeps the most recent runs only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OnceCell;

use super::enqueue::StoredOptions;
use super::{Queue, QueueError, RunProblem};
use crate::model::{Inventory, Playbook};

/// Runs kept loaded; one more clears the cache (a runner serves a handful of runs at a time).
const KEPT: usize = 16;

/// One loaded run.
#[derive(Debug)]
pub(super) struct LoadedRun {
    pub playbook: Arc<Playbook>,
    pub options: StoredOptions,
    pub plan_digest: Option<String>,
    /// Holds the playbook file while any item of the run may need it.
    _dir: tempfile::TempDir,
}

/// Loaded runs by id; each is loaded once even when many items of it start together.
#[derive(Debug, Default)]
pub(super) struct RunCache(Mutex<HashMap<String, Arc<OnceCell<Arc<LoadedRun>>>>>);

impl RunCache {
    /// Run `run`, loaded (once) against `inventory`.
    pub(super) async fn get(
        &self,
        queue: &Queue,
        inventory: &Inventory,
        run: &str,
    ) -> Result<Arc<LoadedRun>, QueueError> {
        let cell = {
            let mut runs = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            if !runs.contains_key(run) && runs.len() >= KEPT {
                runs.clear();
            }
            Arc::clone(runs.entry(run.to_string()).or_default())
        };
        let loaded = cell.get_or_try_init(|| load(queue, inventory, run)).await?;
        Ok(Arc::clone(loaded))
    }
}

/// The run's playbook, digest, options and plan digest.
type RunRow = (String, String, serde_json::Value, Option<String>);

async fn load(
    queue: &Queue,
    inventory: &Inventory,
    run: &str,
) -> Result<Arc<LoadedRun>, QueueError> {
    let row: RunRow = sqlx::query_as(
        "SELECT playbook, playbook_digest, options, plan_digest FROM salve.runs WHERE id = $1",
    )
    .bind(run)
    .fetch_optional(queue.pool())
    .await
    .map_err(QueueError::db("reading the run", None))?
    .ok_or_else(|| RunProblem::NotFound.of(run))?;
    let (text, digest, options, plan_digest) = row;
    let options: StoredOptions =
        serde_json::from_value(options).map_err(|e| RunProblem::Options(e).of(run))?;
    let scratch = |e| RunProblem::Scratch(e).of(run);
    let dir = tempfile::tempdir().map_err(scratch)?;
    let path = dir.path().join("playbook.yml");
    std::fs::write(&path, &text).map_err(scratch)?;
    let playbook = crate::config::playbook::load(&path, inventory, &options.extra_vars)
        .map_err(|d| RunProblem::Playbook(d).of(run))?;
    if playbook.digest != digest {
        return Err(RunProblem::Digest {
            found: playbook.digest,
            enqueued: digest,
        }
        .of(run));
    }
    Ok(Arc::new(LoadedRun {
        playbook: Arc::new(playbook),
        options,
        plan_digest,
        _dir: dir,
    }))
}
