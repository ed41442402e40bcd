//! `salve doctor`: check every selected host's connection and print the exact fix for each
//! problem (see [`crate::doctor`]).

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::Selection;
use crate::config::{self, HostQuery};
use crate::diag::Diagnostics;
use crate::doctor::{self, Diagnosis};
use crate::exit;
use crate::model::{Host, HostPattern};
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

fn hosts(sel: &Selection) -> Result<Vec<Host>, Diagnostics> {
    let (inventory, _) = super::selection::load(sel)?;
    let limit = super::selection::limit(sel)?;
    let all = HostPattern::all();
    let query = HostQuery {
        pattern: &all,
        limit: limit.as_ref(),
        tenant: sel.tenant.as_deref(),
        all_tenants: sel.all_tenants,
    };
    config::select_hosts(&inventory, &query).map_err(|d| Diagnostics(vec![d]))
}

async fn diagnose_all(hosts: Vec<Host>, forks: usize) -> Vec<Diagnosis> {
    let connector: Arc<dyn Connector> = Arc::new(super::run::standard_connector());
    let permits = Arc::new(Semaphore::new(forks));
    let mut set = JoinSet::new();
    for (i, host) in hosts.into_iter().enumerate() {
        let (connector, permits) = (Arc::clone(&connector), Arc::clone(&permits));
        set.spawn(async move {
            // The semaphore is never closed, so acquiring cannot fail.
            let _permit = permits.acquire_owned().await.ok();
            let diagnosis = doctor::diagnose(&host.settings.connection, connector).await;
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
