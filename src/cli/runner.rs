//! `salve runner`: a long-running process inside a customer network that claims work from the
//! queue database for its tenants (and site) and runs it with the normal transports. See
//! [`crate::queue::worker`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::exit;
use crate::queue::Queue;
use crate::queue::worker::{Worker, WorkerOptions};
use crate::runner::Interrupt;

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
    if args.tenant.iter().all(String::is_empty) {
        eprintln!("error: --tenant (or SALVE_TENANT) names no tenant; give the tenant to serve");
        return exit::INVALID_INPUT;
    }
    let inventory = match crate::config::inventory::load(&args.inventories) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprint!("{}", w.render_warning());
            }
            loaded.value
        }
        Err(diags) => {
            eprint!("{}", diags.render());
            return exit::INVALID_INPUT;
        }
    };
    let runtime = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let options = WorkerOptions {
        id: args.id.clone().unwrap_or_else(default_id),
        // An empty SALVE_SITE (an environment file's blank line) means no site.
        tenants: args
            .tenant
            .iter()
            .filter(|t| !t.is_empty())
            .cloned()
            .collect(),
        site: args.site.clone().filter(|s| !s.is_empty()),
        concurrency: args.concurrency.max(1),
        lease: Duration::from_secs(args.lease.max(3)),
        poll: Duration::from_secs(args.poll.max(1)),
        exit_when_idle: args.exit_when_idle,
        ..WorkerOptions::default()
    };
    runtime.block_on(async move {
        let queue = match Queue::connect(&args.queue).await {
            Ok(q) => q,
            Err(e) => return super::print_error(&e, exit::INTERNAL),
        };
        if let Err(e) = queue.check_schema().await {
            return super::print_error(&e, exit::INTERNAL);
        }
        eprintln!(
            "runner {} for tenant {}{}: waiting for work",
            options.id,
            options.tenants.join(", "),
            options
                .site
                .as_deref()
                .map(|s| format!(" at site {s}"))
                .unwrap_or_default()
        );
        let interrupt = Interrupt::default();
        let signals = watch_signals(&interrupt);
        let connector = Arc::new(crate::launch::standard_connector());
        let worker = Worker::new(queue.clone(), options, inventory, connector);
        let report = worker.run(interrupt).await;
        signals.abort();
        queue.close().await;
        eprintln!(
            "runner stopped: {} done, {} failed, {} given back, {} stopped without their lease \
             (taken over, or the database was unreachable; the queue claims them again)",
            report.done, report.failed, report.released, report.lost
        );
        exit::OK
    })
}

/// Ctrl-C or SIGTERM (systemd's stop): the first drains (no new work or step; in-flight items
/// finish their step and are given back), the second aborts.
fn watch_signals(interrupt: &Interrupt) -> tokio::task::JoinHandle<()> {
    let ctrl_c = interrupt.watch_ctrl_c();
    let this = interrupt.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            if let Ok(mut term) = signal(SignalKind::terminate()) {
                while term.recv().await.is_some() {
                    if this.escalate() == 2 {
                        break;
                    }
                }
            }
        }
        let _ = ctrl_c.await;
    })
}

fn default_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "runner".into());
    format!("{host}-{}", std::process::id())
}
