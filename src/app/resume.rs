//! `salve resume RUN`: continue a run that stopped (Ctrl-C, a crash, a lost controller) with
//! exactly the inputs it had. Refused when the playbook or inventory changed since.
//!
//! Nothing done is done again: every Exchange module re-reads the host's live facts before
//! acting (an update installs the next step of the path as the host stands now, and refuses
//! while a restart is pending; maintenance and mitigation are no-ops when already in place),
//! so steps the stopped run completed are recognised on the host itself. A step that was in
//! flight when the run stopped (an intent without an outcome in the journal) is listed, and
//! re-checked the same way before anything is retried. A server the stopped run left in
//! maintenance starts with what entering recorded, from the journal, so leaving restores it
//! even if the server's own copy of the record is gone.

use std::sync::Arc;
use std::time::Duration;

use super::invocation::Invocation;
use super::{AppError, Console};
use crate::launch::RunBuilder;

/// What `salve resume` was asked to do.
#[derive(Debug, Clone)]
pub struct ResumeRequest {
    /// The run to continue: its id or a unique prefix.
    pub run: String,
    pub forks: usize,
    pub report: crate::report::Options,
}

/// Continue a stopped run; returns the new run's exit code.
pub fn resume(request: ResumeRequest, console: &dyn Console) -> Result<u8, AppError> {
    let runtime = super::runtime()?;
    runtime.block_on(resume_async(request, console))
}

async fn resume_async(request: ResumeRequest, console: &dyn Console) -> Result<u8, AppError> {
    let refused = |e: crate::journal::JournalError| AppError::Refused(Box::new(e));
    let journal = crate::journal::Journal::open_default()
        .await
        .map_err(refused)?;
    let id = journal.resolve_run(&request.run).await.map_err(refused)?;
    let detail = journal.run(&id).await.map_err(refused)?;
    let run = &detail.run;
    let invocation = Invocation::load(&run.id)
        .map_err(|e| AppError::refused_by(format!("run {} cannot be resumed", run.id), e))?;
    let selection = invocation.selection();
    let prepared = super::prepare(&invocation.playbook, &selection, console)?;
    if run.playbook_digest.as_deref() != Some(prepared.input.playbook.digest.as_str())
        || run.inventory_digest.as_deref() != Some(prepared.input.inventory.digest.as_str())
    {
        return Err(AppError::refused(format!(
            "the playbook or inventory changed since run {}; start a new run (or plan) instead",
            run.id
        )));
    }
    for intent in detail.intents.iter().filter(|i| i.outcome.is_none()) {
        console.notice(&format!(
            "in flight when run {} stopped: {}: {} (re-checked against the host before anything is retried)",
            run.id, intent.host, intent.action
        ));
    }
    // A server the stopped run left in maintenance keeps what entering recorded, even if its
    // own copy on the host is gone by now.
    let entered = journal
        .module_results(&run.id, "exchange_maintenance")
        .await
        .map_err(refused)?;
    let carried = crate::modules::carried_over_facts(&entered);
    for host in carried.keys() {
        console.notice(&format!(
            "{host} was left in maintenance by run {}; what entering recorded is carried over \
             from the journal",
            run.id
        ));
    }
    let builder = RunBuilder::new(prepared.input, prepared.extra_vars)
        .seed_facts(carried)
        .forks(request.forks)
        .reconnect_grace(crate::launch::IN_FLIGHT_GRACE)
        .tags(invocation.tags.clone(), invocation.skip_tags.clone())
        .slow_step(Duration::from_secs(300));
    if let Err(e) = invocation.save(&builder.options().run_id) {
        console.notice(&format!(
            "warning: cannot record this run's inputs ({})",
            crate::error_chain::one_line(&e)
        ));
    }
    console.notice(&format!(
        "resuming run {} as run {}",
        run.id,
        builder.options().run_id
    ));
    let summary = builder
        .execute(
            Arc::new(crate::launch::standard_connector()),
            &request.report,
        )
        .await?;
    Ok(summary.exit_code)
}
