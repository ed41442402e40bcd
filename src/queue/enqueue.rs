//! The controller's side: turn a prepared run into one work item per host ([`enqueue`]); the
//! controller then follows the items ([`super::follow`]).
//!
//! Per host: the tenant comes from the inventory (required), the site from the `salve_site`
//! variable, the DAG from its settings (`salve_dag`, read when the inventory was loaded); the
//! plays it is in from the run's selection.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::{Queue, QueueError, RunProblem};
use crate::model::Vars;
use crate::runner::{RunInput, RunOptions};

/// The host variable naming a host's site (the network a runner serves).
pub const SITE_VAR: &str = "salve_site";

/// The run options stored with a queued run (no secrets: see [`enqueue`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredOptions {
    pub check_mode: bool,
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
    pub extra_vars: Vars,
    /// The playbook's plays, for following the run without loading the playbook.
    #[serde(default)]
    pub plays: Vec<PlayShape>,
}

/// A play's name and number of tasks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlayShape {
    pub name: String,
    pub tasks: usize,
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
        .find(|k| crate::secret::is_secret_key(k))
    {
        return Err(QueueError::SecretExtraVar(key.clone()));
    }
    let run = options.run_id.as_str();
    let path = &input.playbook.path;
    let text = std::fs::read_to_string(path).map_err(|source| {
        RunProblem::Read {
            path: path.clone(),
            source,
        }
        .of(run)
    })?;
    let digest = hex::encode(sha2::Sha256::digest(text.as_bytes()));
    if digest != input.playbook.digest {
        return Err(RunProblem::Changed { path: path.clone() }.of(run));
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
            let item = items.entry(name.clone()).or_insert_with(|| {
                order.push(name.clone());
                Item {
                    tenant,
                    site: (host.vars.get(SITE_VAR))
                        .and_then(|v| v.as_str())
                        .map(String::from),
                    dag: host.settings.dag.clone(),
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
        plays: (input.playbook.plays.iter())
            .map(|p| PlayShape {
                name: p.name.clone(),
                tasks: p.tasks.len(),
            })
            .collect(),
    };
    let stored = serde_json::to_value(&stored).map_err(|e| RunProblem::Encode(e).of(run))?;
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
