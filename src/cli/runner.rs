//! `salve runner`: its arguments, handed to [`crate::app::serve`]; says what the runner did.

use std::path::PathBuf;
use std::time::Duration;

use super::console::Terminal;
use crate::app::serve::ServeRequest;
use crate::exit;

/// Arguments of `salve runner`.
#[derive(Debug, clap::Args)]
pub struct RunnerArgs {
    /// The queue database (`postgres://role@host/db?sslmode=verify-full`). Prefer the
    /// environment variable, and a password in ~/.pgpass or PGPASSWORD, to keep it out of `ps`.
    #[arg(
        long,
        env = "SALVE_QUEUE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub queue: String,
    /// The tenant (customer) whose work this runner takes; repeat (or separate with commas)
    /// for a runner that reaches several tenants' networks. Claims go to each in turn.
    #[arg(
        long,
        env = "SALVE_TENANT",
        value_name = "NAME",
        value_delimiter = ',',
        required = true
    )]
    pub tenant: Vec<String>,
    /// Take only items of this site (`salve_site`); without it, only items with no site.
    #[arg(long, env = "SALVE_SITE", value_name = "NAME")]
    pub site: Option<String>,
    /// Hosts worked on at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub concurrency: usize,
    /// This runner's inventory: how to reach its hosts, with their credentials or secret
    /// references (never sent to the queue). Repeat to merge several.
    #[arg(short = 'i', long = "inventory", value_name = "FILE", required = true)]
    pub inventories: Vec<PathBuf>,
    /// This runner's id in the queue (default: hostname and process id).
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// Seconds a claim holds without renewal (renewed every third of it).
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub lease: u64,
    /// Seconds between looks for work when there is none.
    #[arg(long, default_value_t = 2, value_name = "SECONDS")]
    pub poll: u64,
    /// Exit once the tenant has nothing queued, claimed or running.
    #[arg(long)]
    pub exit_when_idle: bool,
}

pub fn run(args: RunnerArgs) -> u8 {
    let request = ServeRequest {
        queue: args.queue,
        tenants: args.tenant,
        site: args.site,
        concurrency: args.concurrency,
        inventories: args.inventories,
        id: args.id,
        lease: Duration::from_secs(args.lease),
        poll: Duration::from_secs(args.poll),
        exit_when_idle: args.exit_when_idle,
    };
    super::exit_with(crate::app::serve::serve(request, &Terminal), |report| {
        eprintln!(
            "runner stopped: {} done, {} failed, {} given back, {} stopped without their lease \
             (taken over, or the database was unreachable; the queue claims them again)",
            report.done, report.failed, report.released, report.lost
        );
        exit::OK
    })
}
