//! `salve queue`: set up the queue database (`init`), look at the work in it (`status`), set a
//! tenant's concurrency cap (`tenant`), and follow a queued run (`follow`).

use super::Output;
use crate::app::queued;
use crate::exit;

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
    #[command(flatten)]
    pub output: Output,
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
        QueueCommand::Follow(args) => {
            let report = args.output.into_options();
            let followed = runtime.block_on(queued::follow(&args.url.queue, &args.run, &report));
            return super::exit_with(followed, |code| code);
        }
        QueueCommand::Init(url) => runtime.block_on(queued::init(&url.queue)),
        QueueCommand::Status(url) => runtime.block_on(queued::status(&url.queue)),
        QueueCommand::Tenant(args) => runtime.block_on(queued::tenant(
            &args.url.queue,
            &args.name,
            args.max_concurrency,
        )),
    };
    super::exit_with(text, |text| {
        print!("{text}");
        exit::OK
    })
}
