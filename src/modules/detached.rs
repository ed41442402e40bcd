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
//! That is also why the scripts that manage Exchange (facts, health, verify, maintenance; see
//! [`ScriptId::manages_exchange`]) run here when the host has such an account: Exchange's
//! cmdlets reach AD, and its management shell a Remote PowerShell session, as the process's
//! account, which a WinRM or SSH logon cannot lend to a second hop. Reads go the same way
//! through the probe ([`read`]), so check mode and plans see what an apply would.
//!
//! One call does a short step's whole life: `job_control` registers and starts the task, waits
//! on the host for it to finish (at most [`WAIT_ON_HOST`], looking at the task's state there)
//! and answers with its output and exit code; a read's task is removed in that same call. Only
//! a task still running then is polled (`job_poll`): the next look after as long as the start
//! waited (at most the task's `poll`), then twice as long each time, from 100 ms up to every
//! 2 s; a read's last poll removes its finished task. A step that changes the server keeps its
//! finished task until salve has read the answer, then removes it with a call of its own: an
//! answer lost on the way (Setup restarts WinRM) can be read again, which a removed task's
//! could not.

use std::time::Duration;

use base64::Engine as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::exchange_script::{self as shipped, Fail, Reply, ShareAccount};
use super::{HostCtx, HostLink, ModuleError, ProbeRequest};
use crate::contract::{
    JobAction, JobControlAnswer, JobControlRequest, JobPollAnswer, JobPollRequest, JobState,
    ScriptId, ShareCredential,
};
use crate::model::run_as::RunAs;
use crate::script::{RESULT_MARKER, Script};
use crate::transport::{OutputChunk, RunRequest, ScriptOutput, TransportError};

/// How long the call that starts a task waits on the host for it to finish. Exchange's reads
/// (facts, health, verify) load the Exchange management shell first, which takes seconds on a
/// server; a task still running after this is polled.
const WAIT_ON_HOST: Duration = Duration::from_secs(10);
/// The shortest pause between two polls of a running task.
const SECOND_POLL: Duration = Duration::from_millis(100);
/// The longest pause between two looks at a running task, unless the task's `poll` says
/// otherwise.
const POLL_AT_MOST: Duration = Duration::from_secs(2);
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

/// Run the state-changing shipped script `id` where it can do its work: as a detached task
/// under the step's account when the script manages Exchange and the host has one, else in the
/// session (where a script that manages Exchange fails with Exchange's own error).
pub async fn call<T: DeserializeOwned>(
    ctx: &HostCtx<'_>,
    id: ScriptId,
    request: &impl Serialize,
) -> Result<Reply<T>, Fail> {
    if id.manages_exchange() && ctx.run_as.is_some() {
        run(ctx, id, request).await
    } else {
        shipped::call(ctx, id, request).await
    }
}

/// Start shipped script `id` with `request` as a detached task and wait for its answer.
pub async fn run<T: DeserializeOwned>(
    ctx: &HostCtx<'_>,
    id: ScriptId,
    request: &impl Serialize,
) -> Result<Reply<T>, Fail> {
    run_with(ctx, id, request, StepSecrets::default()).await
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
    /// The share account with its password resolved, as the start request carries it.
    fn share_credential(&self) -> Result<Option<ShareCredential>, Fail> {
        let Some(account) = self.share else {
            return Ok(None);
        };
        let password = account.password.resolve().map_err(|e| {
            Fail::Module(ModuleError::Args(format!(
                "sources: password of {} for {}: {e}",
                account.user, account.share
            )))
        })?;
        Ok(Some(ShareCredential {
            share: account.share.clone(),
            user: account.user.clone(),
            password: password.expose().to_string(),
        }))
    }
}

/// [`run`], with secrets for the step.
pub async fn run_with<T: DeserializeOwned>(
    ctx: &HostCtx<'_>,
    id: ScriptId,
    request: &impl Serialize,
    secrets: StepSecrets<'_>,
) -> Result<Reply<T>, Fail> {
    let task = Task::of(ctx);
    let script = shipped::shipped(id, request)?;
    let started = task.start(id, &script, ctx.run_as, secrets, false).await?;
    task.say(format!(
        "running {} as scheduled task \\salve\\{} (as {}); it is never stopped by salve",
        id.as_str(),
        started.job,
        started.run_as,
    ));
    task.finish(id, &started.job, started.first).await
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
    Task::of(ctx).finish(id, job, None).await
}

/// Run a read-only script (the probe's `request`) as a detached task under `run_as` over
/// `link`, wait for it and remove it: its output as if it had run in the session. A task
/// that could not be started is a script that failed with the reason on stderr; one still
/// running when the request's time is up or it is cancelled is left to end on its own (it only
/// reads).
pub async fn read(
    link: &dyn HostLink,
    request: ProbeRequest,
    run_as: &RunAs,
) -> Result<ScriptOutput, TransportError> {
    let task = Task {
        link,
        cancel: request.cancel.clone(),
        output: request.output.clone(),
        timeout: request.timeout,
        deadline: Instant::now() + request.timeout,
        poll: POLL_AT_MOST,
    };
    let id = request.script.id();
    let script = request.script.into_script();
    let finished = async {
        let started = task
            .start(id, &script, Some(run_as), StepSecrets::default(), true)
            .await?;
        let (output, removed) = task.wait(id, &started.job, started.first, true).await?;
        if !removed {
            task.remove(&started.job).await;
        }
        Ok::<_, Fail>(output)
    };
    match finished.await {
        Ok(output) => Ok(output),
        Err(Fail::Module(ModuleError::Transport(e))) => Err(e),
        Err(Fail::Module(ModuleError::LeftRunning(_))) if task.cancel.is_cancelled() => {
            Err(TransportError::Cancelled)
        }
        Err(Fail::Module(ModuleError::LeftRunning(_))) => Err(TransportError::Timeout {
            after: task.timeout,
        }),
        Err(Fail::Module(e)) => Ok(failed(e.to_string())),
        Err(Fail::NoAnswer(outcome)) => Ok(failed(outcome.msg.unwrap_or_default())),
    }
}

/// What a script that failed before it could answer gives.
fn failed(why: String) -> ScriptOutput {
    ScriptOutput {
        exit_code: 1,
        stdout: String::new(),
        stderr: why,
    }
}

/// A task just started: its job id, the account it runs as, and the start's look at it.
struct Started {
    job: String,
    run_as: String,
    /// `None` when the start's answer was lost on the way (see [`Task::start`]).
    first: Option<FirstLook>,
}

/// What the call that started a task saw of it after waiting on the host, and how long the
/// call took.
struct FirstLook {
    answer: JobPollAnswer,
    took: Duration,
}

/// One detached task's host and limits: where it is started, polled and removed.
struct Task<'a> {
    link: &'a dyn HostLink,
    cancel: CancellationToken,
    output: Option<mpsc::UnboundedSender<OutputChunk>>,
    timeout: Duration,
    deadline: Instant,
    /// The longest pause between two looks.
    poll: Duration,
}

impl<'a> Task<'a> {
    fn of(ctx: &HostCtx<'a>) -> Task<'a> {
        Task {
            link: ctx.link,
            cancel: ctx.cancel.clone(),
            output: Some(ctx.output.clone()),
            timeout: ctx.timeout,
            deadline: Instant::now() + ctx.timeout,
            poll: ctx.poll.unwrap_or(POLL_AT_MOST),
        }
    }

    /// A progress line.
    fn say(&self, line: String) {
        if let Some(out) = &self.output {
            let _ = out.send(OutputChunk::Stdout(line));
        }
    }

    /// Run a short control script (`job_control`, `job_poll`) in the session, within what is
    /// left of the wait (`until_deadline`) or within the task's whole timeout (a removal).
    async fn control<T: DeserializeOwned>(
        &self,
        id: ScriptId,
        request: &impl Serialize,
        until_deadline: bool,
    ) -> Result<Reply<T>, Fail> {
        let limit = if until_deadline {
            self.deadline.saturating_duration_since(Instant::now())
        } else {
            self.timeout
        };
        let transport = self.link.transport().await?;
        let mut run = RunRequest::new(shipped::shipped(id, request)?, CALL_LIMIT.min(limit));
        run.cancel = self.cancel.clone();
        shipped::reply(id, transport.run(run).await?)
    }

    /// Wait for task `job` (shipped script `id`; `first`: what its start saw), read its answer
    /// and remove the task.
    async fn finish<T: DeserializeOwned>(
        &self,
        id: ScriptId,
        job: &str,
        first: Option<FirstLook>,
    ) -> Result<Reply<T>, Fail> {
        let (output, _) = self.wait(id, job, first, false).await?;
        let reply = shipped::reply(id, output);
        self.remove(job).await;
        reply
    }

    /// Register and start `script` (shipped script `id`) as a new task and wait on the host
    /// for it to finish (bounded); with `remove_finished`, a task that finished then is
    /// removed in the same call. Without it (a step that changes the server), an answer lost
    /// after the command reached the host gives a start with no first look: the task is
    /// looked for, never started again.
    async fn start(
        &self,
        id: ScriptId,
        script: &Script,
        run_as: Option<&RunAs>,
        secrets: StepSecrets<'_>,
        remove_finished: bool,
    ) -> Result<Started, Fail> {
        let share_credential = secrets.share_credential()?;
        let job = new_job_id(id);
        let (become_user, become_password) = match run_as {
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
            script: Some(base64::engine::general_purpose::STANDARD.encode(script.render())),
            become_user,
            become_password,
            share_credential,
            download_token: secrets.download_token.map(str::to_owned),
            wait_ms: self.wait_on_host().as_millis() as u64,
            remove_finished,
        };
        let asked = Instant::now();
        let started: Reply<JobControlAnswer> = match self
            .control(ScriptId::JobControl, &start, true)
            .await
        {
            // Cut off while the host waited for the task: it was started, and goes on.
            Err(Fail::Module(ModuleError::Transport(TransportError::Cancelled))) => {
                return Err(Fail::Module(ModuleError::LeftRunning(LeftRunning {
                    job,
                    why: "interrupted".into(),
                })));
            }
            // The answer to starting a step that changes the server was lost after the
            // command reached the host (a dropped connection, a garbled answer, the call's
            // own time limit): the task may be running. It is never started a second time
            // (Setup twice over is the harm this module exists to prevent): it is looked
            // for, and waited for if it is there; if it is not, the poll says so.
            Err(Fail::Module(ModuleError::Transport(
                e @ (TransportError::Dropped { .. }
                | TransportError::Protocol { .. }
                | TransportError::Timeout { .. }),
            ))) if !remove_finished => {
                tracing::warn!(%job, "the answer to starting the task was lost: {e}");
                self.say(format!(
                        "the answer to starting task \\salve\\{job} was lost ({e}); looking for the task instead of starting it again"
                    ));
                self.link.reset().await;
                let run_as = run_as.map_or_else(|| "SYSTEM".to_string(), |r| r.user.clone());
                return Ok(Started {
                    job,
                    run_as,
                    first: None,
                });
            }
            other => other?,
        };
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
        let answer = started.answer;
        let first = FirstLook {
            answer: JobPollAnswer {
                job: job.clone(),
                state: answer.state,
                output: answer.output,
                next_offset: answer.next_offset,
                exit_code: answer.exit_code,
                removed: answer.removed,
            },
            took: asked.elapsed(),
        };
        let run_as = answer.run_as.unwrap_or_else(|| "SYSTEM".into());
        Ok(Started {
            job,
            run_as,
            first: Some(first),
        })
    }

    /// How long a start waits on the host: [`WAIT_ON_HOST`], or half of what is left of the
    /// step's time when that is less (the call itself must end within it).
    fn wait_on_host(&self) -> Duration {
        WAIT_ON_HOST.min(self.deadline.saturating_duration_since(Instant::now()) / 2)
    }

    /// Poll task `job` until it finishes, streaming its new lines, starting from what its
    /// start saw (`first`); its output and exit code, and whether the task was removed (with
    /// `remove_finished`, the last poll removes it).
    async fn wait(
        &self,
        id: ScriptId,
        job: &str,
        mut first: Option<FirstLook>,
        remove_finished: bool,
    ) -> Result<(ScriptOutput, bool), Fail> {
        let (mut offset, mut output) = (0, String::new());
        // The task has run as long as its start waited: look again after as long.
        let mut pause = first
            .as_ref()
            .map_or(Duration::ZERO, |f| f.took.min(self.poll));
        let left = |why: &str| {
            Fail::Module(ModuleError::LeftRunning(LeftRunning {
                job: job.to_string(),
                why: why.to_string(),
            }))
        };
        let (exit_code, removed) = loop {
            if let Some(look) = first.take() {
                match self.take(id, job, look.answer, &mut offset, &mut output)? {
                    Some(end) => break end,
                    None => continue,
                }
            }
            let next = (Instant::now() + pause).min(self.deadline);
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = self.cancel.cancelled() => return Err(left("interrupted")),
            }
            if Instant::now() >= self.deadline {
                return Err(left(&format!(
                    "the task's timeout of {}s passed",
                    self.timeout.as_secs()
                )));
            }
            pause = (pause * 2).clamp(SECOND_POLL.min(self.poll), self.poll);
            let poll = JobPollRequest {
                job: job.to_string(),
                offset,
                remove_finished,
            };
            match self
                .control::<JobPollAnswer>(ScriptId::JobPoll, &poll, true)
                .await
            {
                Ok(reply) => {
                    if let Some(end) = self.take(id, job, reply.answer, &mut offset, &mut output)? {
                        break end;
                    }
                }
                Err(Fail::Module(ModuleError::Transport(TransportError::Cancelled))) => {
                    return Err(left("interrupted"));
                }
                // The host is not answering now (Setup restarts WinRM and IIS; a restart): the
                // task goes on without salve; look again.
                Err(Fail::Module(ModuleError::Transport(e))) => {
                    tracing::info!(%job, "task poll failed, retrying: {e}");
                    self.link.reset().await;
                }
                Err(other) => return Err(other),
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
        let output = ScriptOutput {
            exit_code,
            stdout,
            stderr: last,
        };
        Ok((output, removed))
    }

    /// Take one look's new output (streamed as progress, added to `output`, `offset` moved
    /// on); the task's exit code and whether it was removed once it has finished.
    fn take(
        &self,
        id: ScriptId,
        job: &str,
        answer: JobPollAnswer,
        offset: &mut u64,
        output: &mut String,
    ) -> Result<Option<(i32, bool)>, Fail> {
        for line in answer.output.lines() {
            if !line.starts_with(RESULT_MARKER.trim_end()) {
                self.say(line.to_string());
            }
        }
        output.push_str(&answer.output);
        *offset = answer.next_offset;
        match answer.state {
            JobState::Running => Ok(None),
            JobState::Finished => Ok(Some((answer.exit_code.unwrap_or(-1), answer.removed))),
            JobState::Missing => Err(Fail::failed(format!(
                "task \\salve\\{job} ({}) is gone from the host before salve read its result; \
                 check the server (Setup logs, services) before running this step again",
                id.as_str()
            ))),
        }
    }

    /// Remove a finished task and its files; a failure leaves them for the next run to collect.
    async fn remove(&self, job: &str) {
        let request = JobControlRequest {
            action: JobAction::Remove,
            job: job.to_string(),
            script_id: None,
            script: None,
            become_user: None,
            become_password: None,
            share_credential: None,
            download_token: None,
            wait_ms: 0,
            remove_finished: false,
        };
        let removed: Result<Reply<JobControlAnswer>, Fail> =
            self.control(ScriptId::JobControl, &request, false).await;
        if let Err(Fail::Module(e)) = removed {
            tracing::warn!(%job, "finished task not removed: {e}");
        }
    }
}
