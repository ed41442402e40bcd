//! `salve run`: validate the inventory and playbook, pick each play's hosts, then run with the
//! real transports while reporters show progress — here, or through the queue for runners.
//! `--check` without `--json` prints the plan `salve plan` would write instead of saving it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::invocation::Invocation;
use super::{AppError, Console, Selection};
use crate::launch::RunBuilder;
use crate::plan::render::{self, Scope};

/// What `salve run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub playbook: PathBuf,
    pub selection: Selection,
    pub forks: usize,
    pub check: bool,
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
    pub slow_step: Duration,
    pub report: crate::report::Options,
    /// Enqueue in this queue database instead of running here.
    pub queue: Option<String>,
    /// With `queue`: enqueue and return without following.
    pub detach: bool,
}

/// How a run ended.
#[derive(Debug)]
pub enum RunEnd {
    /// The run's exit code ([`crate::exit`]).
    Ran(u8),
    /// `--check` without `--json`: the plan as Markdown, and the check run's exit code.
    Checked { plan_markdown: String, code: u8 },
    /// Enqueued with `--detach`: the run's id, to follow later.
    Detached { run_id: String },
}

impl From<super::queued::Queued> for RunEnd {
    fn from(queued: super::queued::Queued) -> Self {
        match queued {
            super::queued::Queued::Followed(code) => RunEnd::Ran(code),
            super::queued::Queued::Detached { run_id } => RunEnd::Detached { run_id },
        }
    }
}

/// Run a playbook as `request` says.
pub fn run(request: RunRequest, console: &dyn Console) -> Result<RunEnd, AppError> {
    let prepared = super::prepare(&request.playbook, &request.selection, console)?;
    // Queued runs are executed by runners, which resolve credentials from their own inventories.
    if request.queue.is_none() && prepared.needs_password_prompt() {
        console.ask_prompted_password()?;
    }
    let runtime = super::runtime()?;
    let builder = RunBuilder::new(prepared.input, prepared.extra_vars)
        .forks(request.forks)
        .check_mode(request.check)
        .tags(request.tags.clone(), request.skip_tags.clone())
        .slow_step(request.slow_step);
    let invocation = Invocation::new(
        request.playbook.clone(),
        &request.selection,
        request.tags.clone(),
        request.skip_tags.clone(),
    );
    if let Err(e) = invocation.save(&builder.options().run_id) {
        console.notice(&format!(
            "warning: cannot record this run's inputs ({}); `salve resume` will not know it",
            crate::error_chain::one_line(&e)
        ));
    }
    if let Some(url) = &request.queue {
        let queued = runtime.block_on(super::queued::run_queued(
            url,
            builder,
            &request.report,
            None,
            request.detach,
            console,
        ))?;
        return Ok(queued.into());
    }
    if request.check && !request.report.json {
        // The same plan `salve plan` writes, printed instead of saved.
        let selection = crate::plan::PlanSelection {
            limit: request.selection.limit.clone(),
            tenant: request.selection.tenant.clone(),
            all_tenants: request.selection.all_tenants,
        };
        let (plan, code) =
            runtime.block_on(super::plan::make_plan(builder, selection, &request.report))?;
        return Ok(RunEnd::Checked {
            plan_markdown: render::markdown(&plan, Scope::Whole),
            code,
        });
    }
    let summary = runtime.block_on(builder.execute(
        Arc::new(crate::launch::standard_connector()),
        &request.report,
    ))?;
    Ok(RunEnd::Ran(summary.exit_code))
}
