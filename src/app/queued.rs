//! Runs through the queue database: `salve run|apply --queue URL` enqueue an assembled run for
//! `salve runner`s and follow it with the usual reporters; `salve queue follow RUN` follows a
//! queued run again; and the queue's small administrative commands.

use super::{AppError, Console};
use crate::launch::RunBuilder;
use crate::queue::enqueue::Approved;
use crate::queue::{Queue, QueueError};

/// How a queued run ended for the controller.
#[derive(Debug)]
pub enum Queued {
    /// Followed to its end: the run's exit code.
    Followed(u8),
    /// Enqueued and left to the runners (`--detach`): its id, to follow later.
    Detached { run_id: String },
}

/// Enqueue the assembled run (with the approved plan's steps, facts and windows per host for
/// `apply`), then follow it until every item has ended; with `detach`, return at once.
pub async fn run_queued(
    url: &str,
    builder: RunBuilder,
    report: &crate::report::Options,
    approved: Option<&Approved>,
    detach: bool,
    console: &dyn Console,
) -> Result<Queued, AppError> {
    let queue = connect(url).await?;
    let (input, options) = builder.into_parts();
    let items = crate::queue::enqueue::enqueue(&queue, &input, &options, approved)
        .await
        .map_err(|e| match e {
            QueueError::SecretExtraVar(_) | QueueError::NoTenant(_) => {
                AppError::refused_by("the run cannot be queued", e)
            }
            other => AppError::internal("cannot enqueue the run", other),
        })?;
    let run = &options.run_id;
    if detach {
        queue.close().await;
        console.notice(&format!(
            "run {run} enqueued: {items} host(s); follow it with `salve queue follow {run}`"
        ));
        return Ok(Queued::Detached {
            run_id: run.clone(),
        });
    }
    console.notice(&format!(
        "run {run} enqueued: {items} host(s); following it (Ctrl-C stops following, not the run)"
    ));
    follow_run(&queue, run, report).await.map(Queued::Followed)
}

/// `salve queue follow RUN`: the run's progress so far, then live; returns its exit code.
pub async fn follow(url: &str, run: &str, report: &crate::report::Options) -> Result<u8, AppError> {
    let queue = connect(url).await?;
    follow_run(&queue, run, report).await
}

/// `salve queue init`: create or upgrade the schema; says what was done.
pub async fn init(url: &str) -> Result<String, AppError> {
    let queue = Queue::connect(url).await.map_err(unavailable)?;
    let applied = queue.init().await.map_err(unavailable)?;
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

/// `salve queue status`: work items by tenant, state and runner.
pub async fn status(url: &str) -> Result<String, AppError> {
    let queue = connect(url).await?;
    let rows = crate::queue::status::status(&queue)
        .await
        .map_err(unavailable)?;
    queue.close().await;
    Ok(crate::queue::status::render(&rows))
}

/// `salve queue tenant NAME`: create a tenant or change its concurrency cap.
pub async fn tenant(
    url: &str,
    name: &str,
    max_concurrency: Option<i32>,
) -> Result<String, AppError> {
    let queue = connect(url).await?;
    let tenant = queue
        .set_tenant(name, max_concurrency)
        .await
        .map_err(unavailable)?;
    queue.close().await;
    Ok(format!("{tenant}\n"))
}

/// Connect to the queue and check its schema.
async fn connect(url: &str) -> Result<Queue, AppError> {
    let queue = Queue::connect(url).await.map_err(unavailable)?;
    queue.check_schema().await.map_err(unavailable)?;
    Ok(queue)
}

fn unavailable(e: QueueError) -> AppError {
    AppError::Failed(Box::new(e))
}

/// Follow `run` with the reporters `report` asks for; returns the run's exit code.
async fn follow_run(
    queue: &Queue,
    run: &str,
    report: &crate::report::Options,
) -> Result<u8, AppError> {
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
    let summary = followed.map_err(unavailable)?;
    written
        .map_err(|e| AppError::internal("the reporters stopped unexpectedly", e))?
        .map_err(|e| AppError::internal("cannot write the run's output", e))?;
    Ok(summary.exit_code)
}
