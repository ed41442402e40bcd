//! `salve queue`: set up the queue database (`init`), look at the work in it (`status`), and
//! set a tenant's concurrency cap (`tenant`).

use crate::exit;
use crate::queue::{Queue, QueueError};

/// Arguments of `salve queue`.
#[derive(Debug, clap::Args)]
pub struct QueueArgs {
    #[command(subcommand)]
    pub command: QueueCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum QueueCommand {
    /// Create or upgrade the queue's tables, roles and policies (idempotent; run it as the role
    /// that will own them, with CREATEROLE).
    Init(Url),
    /// Work items by tenant, state and runner, with lease times.
    Status(Url),
    /// Create a tenant or change how many of its hosts may be worked on at once (across all
    /// its runners); shows its settings and runner roles.
    Tenant(TenantArgs),
}

#[derive(Debug, clap::Args)]
pub struct TenantArgs {
    /// The tenant's name, as in the inventory.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Hosts of the tenant claimed or running at once, across all its runners.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub max_concurrency: Option<i32>,
    #[command(flatten)]
    pub url: Url,
}

#[derive(Debug, clap::Args)]
pub struct Url {
    /// The queue database (`postgres://role@host/db`); prefer the environment variable.
    #[arg(
        long,
        env = "SALVE_QUEUE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub queue: String,
}

pub fn run(args: QueueArgs) -> u8 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::INTERNAL;
        }
    };
    match runtime.block_on(command(args.command)) {
        Ok(text) => {
            print!("{text}");
            exit::OK
        }
        Err(e) => super::print_error(&e, exit::INTERNAL),
    }
}

async fn command(command: QueueCommand) -> Result<String, QueueError> {
    match command {
        QueueCommand::Init(url) => {
            let queue = Queue::connect(&url.queue).await?;
            let applied = queue.init().await?;
            queue.close().await;
            Ok(if applied.is_empty() {
                format!(
                    "queue schema already at version {}\n",
                    crate::queue::schema::version()
                )
            } else {
                let list: Vec<String> = applied.iter().map(ToString::to_string).collect();
                format!("queue schema migrated: applied {}\n", list.join(", "))
            })
        }
        QueueCommand::Status(url) => {
            let queue = Queue::connect(&url.queue).await?;
            queue.check_schema().await?;
            let rows = crate::queue::status::status(&queue).await?;
            queue.close().await;
            Ok(crate::queue::status::render(&rows))
        }
        QueueCommand::Tenant(args) => {
            let queue = Queue::connect(&args.url.queue).await?;
            queue.check_schema().await?;
            let tenant = queue.set_tenant(&args.name, args.max_concurrency).await?;
            queue.close().await;
            Ok(format!("{tenant}\n"))
        }
    }
}

/// `salve run --queue URL` (and `salve apply --queue URL`, with the approved plan's steps,
/// facts and windows per host): enqueue the prepared run, then follow it with the usual
/// reporters until every item has ended. Ctrl-C stops following (the runners carry on).
pub(super) async fn run_queued(
    url: &str,
    input: crate::runner::RunInput,
    options: crate::runner::RunOptions,
    report: &crate::report::Options,
    approved: Option<&crate::queue::enqueue::Approved>,
) -> u8 {
    let queue = match Queue::connect(url).await {
        Ok(q) => q,
        Err(e) => return super::print_error(&e, exit::INTERNAL),
    };
    if let Err(e) = queue.check_schema().await {
        return super::print_error(&e, exit::INTERNAL);
    }
    let items = match crate::queue::enqueue::enqueue(&queue, &input, &options, approved).await {
        Ok(n) => n,
        Err(e @ (QueueError::SecretExtraVar(_) | QueueError::NoTenant(_))) => {
            return super::print_error(&e, exit::INVALID_INPUT);
        }
        Err(e) => return super::print_error(&e, exit::INTERNAL),
    };
    eprintln!(
        "run {} enqueued: {items} host(s); following it (Ctrl-C stops following, not the run)",
        options.run_id
    );
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let reporters = crate::report::spawn_reporters(rx, crate::report::build(report));
    let stop = tokio_util::sync::CancellationToken::new();
    let ctrl_c = {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.cancel();
            }
        })
    };
    let poll = std::time::Duration::from_secs(1);
    let followed = crate::queue::enqueue::follow(&queue, &input, &options, &tx, poll, &stop).await;
    ctrl_c.abort();
    drop(tx);
    queue.close().await;
    let written = reporters.await;
    let summary = match followed {
        Ok(s) => s,
        Err(e) => return super::print_error(&e, exit::INTERNAL),
    };
    match written {
        Ok(Ok(())) => summary.exit_code,
        Ok(Err(e)) => super::print_error(&e, exit::INTERNAL),
        Err(e) => super::print_error(&e, exit::INTERNAL),
    }
}
