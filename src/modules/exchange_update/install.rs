//! The install: wait for an installer still running on the host, decide again from fresh
//! facts, run the shipped `exchange_update` script for the next step only, and report what it
//! did.

use serde_json::json;

use super::super::exchange_script::{self as shipped, Fail};
use super::super::{HostCtx, ModuleError, Outcome, ProbeLink, Status};
use super::args::Args;
use super::decide::decide_from;
use crate::contract::{ScriptId, UpdateAnswer};

/// Between looks at an installer that is still running on the host.
const INSTALLER_POLL: std::time::Duration = std::time::Duration::from_secs(15);

pub(super) async fn install(args: &Args, ctx: &HostCtx<'_>) -> Result<Outcome, Fail> {
    let probe = ProbeLink::new(ctx.link);
    let read = ctx.read_only(&probe);
    // An installer still running (started by a run that was cut off) must finish first:
    // starting another would fail (msiexec 1618) or, worse, install the same update twice.
    let facts = loop {
        let facts = shipped::facts(&read).await?;
        let Some(running) = facts.install_in_progress.clone() else {
            break facts;
        };
        tracing::info!(host = %ctx.host.name, "waiting for a running installer: {running}");
        let _ = ctx
            .output
            .send(crate::transport::OutputChunk::Stdout(format!(
                "an installer is still running on the host ({running}); waiting for it to finish"
            )));
        tokio::select! {
            _ = tokio::time::sleep(INSTALLER_POLL.min(ctx.timeout)) => {}
            _ = ctx.cancel.cancelled() => return Err(Fail::Module(ModuleError::Transport(crate::transport::TransportError::Cancelled))),
        }
    };
    let decision = decide_from(args, &facts)?;
    let Some(request) = decision.request.clone() else {
        return Ok(decision.outcome(false));
    };
    let step = decision.steps[0].to_string();
    let reply = shipped::call::<UpdateAnswer>(ctx, ScriptId::ExchangeUpdate, &request).await?;
    let a = reply.answer;
    let mut outcome = decision.outcome(false);
    outcome.status = if a.success {
        Status::done(!a.already_installed)
    } else {
        Status::Failed { changed: false }
    };
    outcome.msg = Some(if a.success && a.already_installed {
        format!("{step} was already installed")
    } else if a.success {
        format!(
            "installed {step} (exit code {}); {}",
            a.exit_code,
            if a.reboot_required {
                "restart required"
            } else {
                "no restart required"
            }
        )
    } else {
        format!(
            "{step} failed (exit code {}): {}",
            a.exit_code,
            a.reason
                .clone()
                .or(reply.error)
                .unwrap_or_else(|| "no reason given".into())
        )
    });
    Ok(outcome
        .with("step", step)
        .with("kb", request.kb)
        .with("target_build", request.target_build)
        .with("exit_code", a.exit_code)
        .with("log_excerpt", a.log_excerpt)
        .with("already_installed", a.already_installed)
        .with("reboot_required", a.reboot_required)
        .with("reason", json!(a.reason)))
}
