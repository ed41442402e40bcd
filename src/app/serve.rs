//! `salve runner`: a long-running process inside a customer network that claims work from the
//! queue database for its tenants (and site) and runs it with the normal transports, until
//! Ctrl-C or SIGTERM (see [`crate::queue::worker`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{AppError, Console};
use crate::queue::Queue;
use crate::queue::worker::{Worker, WorkerOptions, WorkerReport};
use crate::runner::Interrupt;

/// What `salve runner` was asked to do.
#[derive(Debug, Clone)]
pub struct ServeRequest {
    pub queue: String,
    pub tenants: Vec<String>,
    pub site: Option<String>,
    pub concurrency: usize,
    pub inventories: Vec<PathBuf>,
    pub id: Option<String>,
    pub lease: Duration,
    pub poll: Duration,
    pub exit_when_idle: bool,
}

/// Serve the queue until stopped; what the runner did.
pub fn serve(request: ServeRequest, console: &dyn Console) -> Result<WorkerReport, AppError> {
    // An empty SALVE_TENANT or SALVE_SITE (an environment file's blank line) names nothing.
    let tenants: Vec<String> = request
        .tenants
        .iter()
        .filter(|t| !t.is_empty())
        .cloned()
        .collect();
    if tenants.is_empty() {
        return Err(AppError::refused(
            "--tenant (or SALVE_TENANT) names no tenant; give the tenant to serve",
        ));
    }
    let loaded = crate::config::inventory::load(&request.inventories)?;
    for w in &loaded.warnings {
        console.notice(w.render_warning().trim_end());
    }
    let options = WorkerOptions {
        id: request.id.clone().unwrap_or_else(default_id),
        tenants,
        site: request.site.clone().filter(|s| !s.is_empty()),
        concurrency: request.concurrency.max(1),
        lease: request.lease.max(Duration::from_secs(3)),
        poll: request.poll.max(Duration::from_secs(1)),
        exit_when_idle: request.exit_when_idle,
        ..WorkerOptions::default()
    };
    let runtime = super::runtime()?;
    runtime.block_on(async move {
        let failed = |e| AppError::Failed(Box::new(e));
        let queue = Queue::connect(&request.queue).await.map_err(failed)?;
        queue.check_schema().await.map_err(failed)?;
        console.notice(&format!(
            "runner {} for tenant {}{}: waiting for work",
            options.id,
            options.tenants.join(", "),
            options
                .site
                .as_deref()
                .map(|s| format!(" at site {s}"))
                .unwrap_or_default()
        ));
        let interrupt = Interrupt::default();
        let signals = watch_signals(&interrupt);
        let connector = Arc::new(crate::launch::standard_connector());
        let worker = Worker::new(queue.clone(), options, loaded.value, connector);
        let report = worker.run(interrupt).await;
        signals.abort();
        queue.close().await;
        Ok(report)
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
