//! `salve queue`: set up the queue database (`init`), look at the work in it (`status`), set a
//! tenant's concurrency cap (`tenant`), and follow a queued run (`follow`).

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
    /// Follow a queued run (again): its progress so far, then live, with the usual output,
    /// report files and exit code. Ctrl-C stops following, not the run.
    Follow(FollowArgs),
}

#[derive(Debug, clap::Args)]
pub struct FollowArgs {
    /// The run's id, as `salve run|apply --queue` printed it.
    #[arg(value_name = "RUN")]
    pub run: String,
    /// One JSON event per line on stdout instead of human output.
    #[arg(long)]
    pub json: bool,
    /// Write report.json and junit.xml into DIR at the end of the run.
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<std::path::PathBuf>,
    /// Plain lines instead of progress bars, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub url: Url,
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
    let runtime = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let text = match args.command {
        QueueCommand::Follow(args) => return runtime.block_on(follow(args)),
        QueueCommand::Init(url) => runtime.block_on(init(url)),
        QueueCommand::Status(url) => runtime.block_on(status(url)),
        QueueCommand::Tenant(args) => runtime.block_on(tenant(args)),
    };
    match text {
        Ok(text) => {
            print!("{text}");
            exit::OK
        }
        Err(e) => super::print_error(&e, exit::INTERNAL),
    }
}

async fn follow(args: FollowArgs) -> u8 {
    let report = crate::report::Options {
        json: args.json,
        no_progress: args.no_progress,
        report_dir: args.report_dir,
    };
    match connect(&args.url.queue).await {
        Ok(queue) => follow_run(&queue, &args.run, &report).await,
        Err(code) => code,
    }
}

async fn init(url: Url) -> Result<String, QueueError> {
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

async fn status(url: Url) -> Result<String, QueueError> {
    let queue = Queue::connect(&url.queue).await?;
    queue.check_schema().await?;
    let rows = crate::queue::status::status(&queue).await?;
    queue.close().await;
    Ok(crate::queue::status::render(&rows))
}

async fn tenant(args: TenantArgs) -> Result<String, QueueError> {
    let queue = Queue::connect(&args.url.queue).await?;
    queue.check_schema().await?;
    let tenant = queue.set_tenant(&args.name, args.max_concurrency).await?;
    queue.close().await;
    Ok(format!("{tenant}\n"))
}

/// `salve run --queue URL` (and `salve apply --queue URL`, with the approved plan's steps,
/// facts and windows per host): enqueue the prepared run, then follow it with the usual
/// reporters until every item has ended, or with `detach` say how to follow it and return.
pub(super) async fn run_queued(
    url: &str,
    input: crate::runner::RunInput,
    options: crate::runner::RunOptions,
    report: &crate::report::Options,
    approved: Option<&crate::queue::enqueue::Approved>,
    detach: bool,
) -> u8 {
    let queue = match connect(url).await {
        Ok(q) => q,
        Err(code) => return code,
    };
    let items = match crate::queue::enqueue::enqueue(&queue, &input, &options, approved).await {
        Ok(n) => n,
        Err(e @ (QueueError::SecretExtraVar(_) | QueueError::NoTenant(_))) => {
            return super::print_error(&e, exit::INVALID_INPUT);
        }
        Err(e) => return super::print_error(&e, exit::INTERNAL),
    };
    let run = &options.run_id;
    if detach {
        queue.close().await;
        eprintln!("run {run} enqueued: {items} host(s); follow it with `salve queue follow {run}`");
        println!("{run}");
        return exit::OK;
    }
    eprintln!(
        "run {run} enqueued: {items} host(s); following it (Ctrl-C stops following, not the run)"
    );
    follow_run(&queue, run, report).await
}

/// Connect to the queue and check its schema; the exit code on failure (said on stderr).
async fn connect(url: &str) -> Result<Queue, u8> {
    let queue = Queue::connect(url)
        .await
        .map_err(|e| super::print_error(&e, exit::INTERNAL))?;
    queue
        .check_schema()
        .await
        .map_err(|e| super::print_error(&e, exit::INTERNAL))?;
    Ok(queue)
}

/// Follow `run` with the reporters `report` asks for; returns the run's exit code.
async fn follow_run(queue: &Queue, run: &str, report: &crate::report::Options) -> u8 {
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
    let followed = crate::queue::follow::follow(queue, run, &tx, poll, &stop).await;
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
