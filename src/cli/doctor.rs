//! `salve doctor`: check every selected host's connection and print the exact fix for each
//! problem (see [`crate::doctor`]).

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::Selection;
use crate::config::{self, HostQuery};
use crate::diag::Diagnostics;
use crate::doctor::{self, Check, Diagnosis};
use crate::exit;
use crate::model::{Host, HostPattern, SettingError};
use crate::transport::Connector;

/// Arguments of `salve doctor`.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
    /// Hosts checked at once.
    #[arg(short = 'f', long, default_value_t = 50, value_name = "N")]
    pub forks: usize,
}

pub fn run(args: DoctorArgs) -> u8 {
    let hosts = match hosts(&args.selection) {
        Ok(h) => h,
        Err(diags) => {
            eprint!("{}", diags.render());
            return exit::INVALID_INPUT;
        }
    };
    let runtime = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let diagnoses = runtime.block_on(diagnose_all(hosts, args.forks.max(1)));
    if args.json {
        match serde_json::to_string_pretty(&diagnoses) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::INTERNAL;
            }
        }
    } else {
        print!("{}", doctor::render(&diagnoses));
    }
    if diagnoses.iter().all(Diagnosis::healthy) {
        exit::OK
    } else {
        exit::HOSTS_FAILED
    }
}

/// The selected hosts, each with its unusable settings (named as its problem, not checked).
fn hosts(sel: &Selection) -> Result<Vec<(Host, Vec<SettingError>)>, Diagnostics> {
    let (inventory, mut bad) = super::selection::load_keeping_bad_settings(sel)?;
    let limit = super::selection::limit(sel)?;
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
    let connector: Arc<dyn Connector> = Arc::new(super::run::standard_connector());
    let permits = Arc::new(Semaphore::new(forks));
    let mut set = JoinSet::new();
    for (i, (host, bad)) in hosts.into_iter().enumerate() {
        let (connector, permits) = (Arc::clone(&connector), Arc::clone(&permits));
        set.spawn(async move {
            // The semaphore is never closed, so acquiring cannot fail.
            let _permit = permits.acquire_owned().await.ok();
            let diagnosis = if bad.is_empty() {
                doctor::diagnose(&host.settings.connection, connector).await
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
