//! `salve doctor`: check every selected host's connection, several at once, and whether its
//! package sources are within reach of the account that will read them, and say the exact fix
//! for each problem (the checks themselves are [`crate::doctor`]).

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{AppError, Console, Selection};
use crate::config::{self, HostQuery};
use crate::diag::Diagnostics;
use crate::doctor::{self, Check, Diagnosis};
use crate::model::{Host, HostPattern, SettingError};
use crate::transport::Connector;

/// Diagnose every host the selection names, `forks` at a time, in inventory order.
pub fn doctor(
    selection: &Selection,
    forks: usize,
    console: &dyn Console,
) -> Result<Vec<Diagnosis>, AppError> {
    let hosts = hosts(selection, console)?;
    let runtime = super::runtime()?;
    Ok(runtime.block_on(diagnose_all(hosts, forks.max(1))))
}

/// The selected hosts, each with its unusable settings (named as its problem, not checked).
fn hosts(
    sel: &Selection,
    console: &dyn Console,
) -> Result<Vec<(Host, Vec<SettingError>)>, Diagnostics> {
    let (inventory, mut bad) = sel.load_keeping_bad_settings(console)?;
    let limit = sel.limit()?;
    let all = HostPattern::all();
    let query = HostQuery {
        pattern: &all,
        limit: limit.as_ref(),
        tenant: sel.tenant.as_deref(),
        all_tenants: sel.all_tenants,
    };
    let hosts = config::select_hosts(&inventory, &query).map_err(|d| Diagnostics(vec![d]))?;
    Ok(hosts
        .into_iter()
        .map(|h| {
            let errors = bad.remove(&h.name).unwrap_or_default();
            (h, errors)
        })
        .collect())
}

async fn diagnose_all(hosts: Vec<(Host, Vec<SettingError>)>, forks: usize) -> Vec<Diagnosis> {
    let connector: Arc<dyn Connector> = Arc::new(crate::launch::standard_connector());
    let permits = Arc::new(Semaphore::new(forks));
    let mut set = JoinSet::new();
    for (i, (host, bad)) in hosts.into_iter().enumerate() {
        let (connector, permits) = (Arc::clone(&connector), Arc::clone(&permits));
        set.spawn(async move {
            // The semaphore is never closed, so acquiring cannot fail.
            let _permit = permits.acquire_owned().await.ok();
            let diagnosis = if bad.is_empty() {
                let mut d = doctor::diagnose(&host.settings.connection, connector).await;
                d.checks.extend(doctor::sources_check(
                    host.vars.get("salve_update_sources"),
                    host.vars.get("salve_rewrite_msi"),
                    host.settings.run_as.as_ref(),
                    host.settings
                        .share_account
                        .as_ref()
                        .map(|a| a.user.as_str()),
                ));
                d.checks.extend(doctor::package_server_check(
                    host.vars.get("salve_update_sources"),
                    host.settings.package_server.as_ref(),
                ));
                d
            } else {
                Diagnosis {
                    host: host.name.clone(),
                    endpoint: "-".into(),
                    checks: vec![Check {
                        name: "config",
                        ok: false,
                        detail: (bad.iter().map(ToString::to_string))
                            .collect::<Vec<_>>()
                            .join("; "),
                        fix: Some("correct the variable in the inventory".into()),
                    }],
                }
            };
            (i, diagnosis)
        });
    }
    let mut found = Vec::new();
    while let Some(Ok(d)) = set.join_next().await {
        found.push(d);
    }
    found.sort_by_key(|(i, _)| *i);
    found.into_iter().map(|(_, d)| d).collect()
}
