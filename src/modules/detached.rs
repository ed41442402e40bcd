//! Detached steps: a shipped script run on the host as a scheduled task, outside the WinRM
//! (or SSH) session that started it (the `job_control` and `job_poll` scripts; see the
//! contract's `JobControlRequest`).
//!
//! Setup.exe and msiexec must never be killed half way: a killed CU leaves services disabled
//! and Exchange broken. Run inside the session, they would die with it — on a task timeout, a
//! second Ctrl-C, a lost connection, WinRM's own restart during Setup, or WinRM's per-shell
//! memory quota. Run as a scheduled task (as Microsoft's ExchangeDsc runs Setup), they outlive
//! all of these. salve then only *waits*: it polls the task's output file and streams new lines
//! as progress; when it stops waiting (the task's `timeout`, Ctrl-C), the step is left running
//! and reported so ([`LeftRunning`]), and a later run, `salve resume` or a queue runner finds
//! the task in the host's facts and re-attaches ([`attach`]) instead of starting it again.
//!
//! The task runs as the host's `become` account when one is set (see [`crate::model::run_as`]):
//! a logon with network credentials, so packages on shares and Active Directory are reachable.

use std::time::Duration;

use base64::Engine as _;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::exchange_script::{self as shipped, Fail, Reply, ShareAccount};
use super::{HostCtx, ModuleError, ProbeLink};
use crate::contract::{
    JobAction, JobControlAnswer, JobControlRequest, JobPollAnswer, JobPollRequest, JobState,
    ReadOnlyId, ScriptId, ShareCredential,
};
use crate::script::RESULT_MARKER;
use crate::transport::{OutputChunk, ScriptOutput, TransportError};

/// Between two looks at a running task.
const POLL_EVERY: Duration = Duration::from_secs(2);
/// The limit of one start, poll or remove call (each is short).
const CALL_LIMIT: Duration = Duration::from_secs(120);

/// salve stopped waiting for a detached step that keeps running on the host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "still running on the host, left alone ({why}): task \\salve\\{job} was not stopped; \
     `salve resume`, a later run or another runner re-attaches to it and reads its result"
)]
pub struct LeftRunning {
    pub job: String,
    pub why: String,
}

/// A new job id: `salve-<script>-<utc time>-<random>`.
fn new_job_id(id: ScriptId) -> String {
    let now = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ");
    format!(
        "salve-{}-{now}-{:04x}",
        id.as_str().replace('_', "-"),
        fastrand::u16(..)
    )
}

/// Start shipped script `id` with `request` as a detached task and wait for its answer.
pub async fn run<T: DeserializeOwned>(
    ctx: &HostCtx<'_>,
    id: ScriptId,
    request: &impl Serialize,
) -> Result<Reply<T>, Fail> {
    start_and_attach(ctx, id, request, StepSecrets::default()).await
}

/// What a step gets besides its request, kept out of its script text: they go to the host
/// inside the encrypted session as the task's start request, never in the script, a log or an
/// answer (see `job_control.ps1` for how the host keeps them).
#[derive(Debug, Default, Clone, Copy)]
pub struct StepSecrets<'a> {
    /// The account to connect to the package's share as (a source's `username` and
    /// `password`) rather than the account the step runs as; its password is resolved here.
    pub share: Option<&'a ShareAccount>,
    /// The bearer token for a package salve serves ([`crate::package_server`]).
    pub download_token: Option<&'a str>,
}

impl StepSecrets<'_> {
    /// Nothing to give.
    pub fn is_empty(&self) -> bool {
        self.share.is_none() && self.download_token.is_none()
    }
}

/// [`run`], with secrets for the step.
pub async fn run_with<T: DeserializeOwned>(
    ctx: &HostCtx<'_>,
    id: ScriptId,
    request: &impl Serialize,
    secrets: StepSecrets<'_>,
) -> Result<Reply<T>, Fail> {
    start_and_attach(ctx, id, request, secrets).await
}

async fn start_and_attach<T: DeserializeOwned>(
    ctx: &HostCtx<'_>,
    id: ScriptId,
    request: &impl Serialize,
    secrets: StepSecrets<'_>,
) -> Result<Reply<T>, Fail> {
    let share_credential = match secrets.share {
        None => None,
        Some(account) => Some(ShareCredential {
            share: account.share.clone(),
            user: account.user.clone(),
            password: account
                .password
                .resolve()
                .map_err(|e| {
                    Fail::Module(ModuleError::Args(format!(
                        "sources: password of {} for {}: {e}",
                        account.user, account.share
                    )))
                })?
                .expose()
                .to_string(),
        }),
    };
    let job = new_job_id(id);
    let text = shipped::shipped(id, request)?.render();
    let (become_user, become_password) = match ctx.run_as {
        None => (None, None),
        Some(run_as) => {
            let password = match &run_as.password {
                None => None,
                Some(reference) => Some(reference.resolve().map_err(|e| {
                    Fail::Module(ModuleError::Args(format!("ansible_become_password: {e}")))
                })?),
            };
            (
                Some(run_as.user.clone()),
                password.map(|p| p.expose().to_string()),
            )
        }
    };
    let start = JobControlRequest {
        action: JobAction::Start,
        job: job.clone(),
        script_id: Some(id.as_str().to_string()),
        script: Some(base64::engine::general_purpose::STANDARD.encode(text)),
        become_user,
        become_password,
        share_credential,
        download_token: secrets.download_token.map(str::to_owned),
    };
    let started: Reply<JobControlAnswer> = shipped::call_within(
        ctx,
        ScriptId::JobControl,
        &start,
        CALL_LIMIT.min(ctx.timeout),
    )
    .await?;
    if !started.answer.started {
        return Err(Fail::failed(format!(
            "{} was not started as task {job}: {}",
            id.as_str(),
            started
                .answer
                .reason
                .as_deref()
                .unwrap_or("no reason given")
        )));
    }
    let _ = ctx.output.send(OutputChunk::Stdout(format!(
        "running {} as scheduled task \\salve\\{job} (as {}); it is never stopped by salve",
        id.as_str(),
        started.answer.run_as.as_deref().unwrap_or("SYSTEM")
    )));
    attach(ctx, id, &job).await
}

/// Wait for task `job` (running shipped script `id`) to finish, streaming its output; read its
/// answer and remove it. Stops waiting — never stopping the task — at the task's timeout or on
/// Ctrl-C ([`LeftRunning`]). While the host does not answer (Setup restarts WinRM; a restart),
/// it keeps trying until then.
pub async fn attach<T: DeserializeOwned>(
    ctx: &HostCtx<'_>,
    id: ScriptId,
    job: &str,
) -> Result<Reply<T>, Fail> {
    let deadline = tokio::time::Instant::now() + ctx.timeout;
    let probe = ProbeLink::new(ctx.link);
    let read = ctx.read_only(&probe);
    let (mut offset, mut output) = (0, String::new());
    let left = |why: &str| {
        Fail::Module(ModuleError::LeftRunning(LeftRunning {
            job: job.to_string(),
            why: why.to_string(),
        }))
    };
    let exit_code = loop {
        let poll = JobPollRequest {
            job: job.to_string(),
            offset,
        };
        let limit = CALL_LIMIT.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        match shipped::read_within::<JobPollAnswer>(&read, ReadOnlyId::JobPoll, &poll, limit).await
        {
            Ok(reply) => {
                let answer = reply.answer;
                for line in answer.output.lines() {
                    if !line.starts_with(RESULT_MARKER.trim_end()) {
                        let _ = ctx.output.send(OutputChunk::Stdout(line.to_string()));
                    }
                }
                output.push_str(&answer.output);
                offset = answer.next_offset;
                match answer.state {
                    JobState::Running => {}
                    JobState::Finished => break answer.exit_code.unwrap_or(-1),
                    JobState::Missing => {
                        return Err(Fail::failed(format!(
                            "task \\salve\\{job} ({}) is gone from the host before salve read \
                             its result; check the server (Setup logs, services) before \
                             running this step again",
                            id.as_str()
                        )));
                    }
                }
            }
            Err(Fail::Module(ModuleError::Transport(TransportError::Cancelled))) => {
                return Err(left("interrupted"));
            }
            // The host is not answering now (Setup restarts WinRM and IIS; a restart): the
            // task goes on without salve; look again.
            Err(Fail::Module(ModuleError::Transport(e))) => {
                tracing::info!(host = %ctx.host.name, %job, "task poll failed, retrying: {e}");
                ctx.link.reset().await;
            }
            Err(other) => return Err(other),
        }
        let next = (tokio::time::Instant::now() + POLL_EVERY).min(deadline);
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = ctx.cancel.cancelled() => return Err(left("interrupted")),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(left(&format!(
                "the task's timeout of {}s passed",
                ctx.timeout.as_secs()
            )));
        }
    };
    let stdout = output.replace("\r\n", "\n");
    // The task's runner merges every stream into its output: its last line is the best
    // account of a failure before the answer.
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.starts_with(RESULT_MARKER.trim_end()))
        .unwrap_or_default()
        .to_string();
    let reply = shipped::reply(
        id,
        ScriptOutput {
            exit_code,
            stdout,
            stderr: last,
        },
    );
    remove(ctx, job).await;
    reply
}

/// Remove a finished task and its files; a failure leaves them for the next run to collect.
async fn remove(ctx: &HostCtx<'_>, job: &str) {
    let request = JobControlRequest {
        action: JobAction::Remove,
        job: job.to_string(),
        script_id: None,
        script: None,
        become_user: None,
        become_password: None,
        share_credential: None,
        download_token: None,
    };
    let removed: Result<Reply<JobControlAnswer>, Fail> = shipped::call_within(
        ctx,
        ScriptId::JobControl,
        &request,
        CALL_LIMIT.min(ctx.timeout),
    )
    .await;
    if let Err(Fail::Module(e)) = removed {
        tracing::warn!(host = %ctx.host.name, %job, "finished task not removed: {e}");
    }
}
