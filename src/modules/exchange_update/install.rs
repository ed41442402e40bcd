//! The install: re-attach to an update salve started earlier and read its result, or wait for
//! another installer still running on the host; otherwise decide again from fresh facts and run
//! the shipped `exchange_update` script for the next step only, as a detached task (see
//! [`super::super::detached`]: Setup and msiexec are never killed), and report what it did.
//! An AD preparation step holds its forest's key ([`adprep::lock_key`]) in the run's
//! [`crate::modules::exclusive::Exclusive`] store: once at a time across every host and runner.

use serde_json::json;

use super::super::detached;
use super::super::exchange_script::{self as shipped, Fail, Reply};
use super::super::{HostCtx, ModuleError, Outcome, ProbeLink, Status};
use super::adprep;
use super::args::Args;
use super::decide::{Reach, decide_from};
use crate::contract::{ScriptId, UpdateAnswer, UpdateKind};
use crate::package_server::Grant;

/// Between looks at an installer that is still running on the host.
const INSTALLER_POLL: std::time::Duration = std::time::Duration::from_secs(15);

pub(super) async fn install(args: &Args, ctx: &HostCtx<'_>) -> Result<Outcome, Fail> {
    let probe = ProbeLink::new(ctx.link);
    let read = ctx.read_only(&probe);
    // An installer still running (started by a run that was cut off) must finish first:
    // starting another would fail (msiexec 1618) or, worse, install the same update twice.
    let facts = loop {
        let facts = shipped::facts(&read).await?;
        // An update salve started earlier (a run cut off, a controller that died): its result is
        // this step's result; a second one is never started beside it.
        if let Some(job) = facts
            .salve_jobs
            .iter()
            .find(|j| j.script_id == ScriptId::ExchangeUpdate.as_str())
        {
            let _ = ctx
                .output
                .send(crate::transport::OutputChunk::Stdout(format!(
                    "re-attaching to update task \\salve\\{} started earlier ({})",
                    job.job,
                    if job.state == crate::contract::JobState::Running {
                        "still running"
                    } else {
                        "finished"
                    }
                )));
            // The path as it stood when that update started (the build changes only at the
            // restart): the task's step was its first, the rest remain.
            let path = decide_from(args, &facts, Reach::of(ctx.host, ctx.run_as)).ok();
            let reply =
                detached::attach::<UpdateAnswer>(ctx, ScriptId::ExchangeUpdate, &job.job).await?;
            return Ok(earlier(&job.job, path.as_ref(), reply));
        }
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
    let mut decision = decide_from(args, &facts, Reach::of(ctx.host, ctx.run_as))?;
    let Some(mut request) = decision.request.clone() else {
        return Ok(decision.outcome(false));
    };
    // AD preparation, once per forest: hold the forest's lock through the step, and decide
    // again from fresh facts under it (another server may have prepared the forest meanwhile,
    // which takes the step off this server's path).
    let _forest = match (&facts.ad, request.kind) {
        (Some(ad), UpdateKind::PrepareAd) => {
            let key = adprep::lock_key(&ad.forest);
            let guard = tokio::select! {
                guard = ctx.exclusive.hold(&key) => guard.map_err(|e| Fail::failed(crate::error_chain::one_line(&e)))?,
                _ = ctx.cancel.cancelled() => return Err(Fail::Module(ModuleError::Transport(crate::transport::TransportError::Cancelled))),
            };
            let facts = shipped::facts(&read).await?;
            decision = decide_from(args, &facts, Reach::of(ctx.host, ctx.run_as))?;
            let Some(again) = decision.request.clone() else {
                return Ok(decision.outcome(false));
            };
            request = again;
            Some(guard)
        }
        _ => None,
    };
    let step = decision.steps[0].to_string();
    // A source's share account, or the token for a package salve serves, travels only to the
    // detached step; a served package is granted for this step alone.
    let share = args.share_account(&request.source, ctx.host.settings.share_account.as_ref());
    let grant = serve(args, ctx, &mut request)?;
    let secrets = detached::StepSecrets {
        share: share.as_ref(),
        download_token: grant.as_ref().map(Grant::token),
    };
    let reply: Reply<UpdateAnswer> =
        detached::run_with(ctx, ScriptId::ExchangeUpdate, &request, secrets).await?;
    drop(grant);
    let a = &reply.answer;
    let msg = if a.success && a.already_installed {
        format!("{step} was already installed")
    } else if a.success {
        format!(
            "installed {step} (exit code {}); {}",
            a.exit_code,
            restart(a)
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
    };
    Ok(answered(decision.outcome(false), reply.answer, msg, false)
        .with("step", step)
        .with("kb", request.kb)
        .with("target_build", request.target_build))
}

/// For a `serve:` source, grant its file on the host's package server for this step and point
/// the request at it (URL and certificate pin); `None` for any other source.
fn serve(
    args: &Args,
    ctx: &HostCtx<'_>,
    request: &mut crate::contract::UpdateRequest,
) -> Result<Option<Grant>, Fail> {
    let Some(path) = args.served(&request.source) else {
        return Ok(None);
    };
    let failed = |e: crate::package_server::PackageServerError| {
        Fail::failed(crate::error_chain::one_line(&e))
    };
    let Some(spec) = &ctx.host.settings.package_server else {
        return Err(Fail::failed(format!(
            "{} is to be served by salve, and this host has no salve_package_server",
            path.display()
        )));
    };
    let grant = crate::package_server::for_spec(spec)
        .and_then(|server| server.grant(&path, &request.sha256))
        .map_err(failed)?;
    let _ = ctx
        .output
        .send(crate::transport::OutputChunk::Stdout(format!(
            "serving {} to the host from {}",
            path.display(),
            grant.url()
        )));
    request.source = grant.url().to_string();
    request.server_pin = Some(grant.pin().to_string());
    Ok(Some(grant))
}

/// The outcome of an update task started by an earlier run, re-attached to and read now, with
/// the path's data (`steps`, `remaining`) as it stood when the task started.
fn earlier(
    job: &str,
    path: Option<&super::decide::Decision>,
    reply: Reply<UpdateAnswer>,
) -> Outcome {
    let a = &reply.answer;
    let msg = if a.success {
        format!(
            "the update started earlier as task {job} finished (exit code {}); {}",
            a.exit_code,
            restart(a)
        )
    } else {
        format!(
            "the update started earlier as task {job} failed (exit code {}): {}",
            a.exit_code,
            a.reason.clone().unwrap_or_else(|| "no reason given".into())
        )
    };
    let base = path.map_or_else(Outcome::changed, |d| d.outcome(false));
    answered(base, reply.answer, msg, true).with("job", job)
}

/// `outcome` ended as the installer's answer `a` says, with the fields every install reports.
/// `changed_on_failure`: whether a failed install counts as having changed the host.
fn answered(
    mut outcome: Outcome,
    a: UpdateAnswer,
    msg: String,
    changed_on_failure: bool,
) -> Outcome {
    outcome.status = if a.success {
        Status::done(!a.already_installed)
    } else {
        Status::Failed {
            changed: changed_on_failure,
        }
    };
    outcome.msg = Some(msg);
    outcome
        .with("exit_code", a.exit_code)
        .with("log_excerpt", a.log_excerpt)
        .with("already_installed", a.already_installed)
        .with("reboot_required", a.reboot_required)
        .with("reason", json!(a.reason))
}

fn restart(a: &UpdateAnswer) -> &'static str {
    if a.reboot_required {
        "restart required"
    } else {
        "no restart required"
    }
}
