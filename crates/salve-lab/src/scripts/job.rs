//! `job_control` and `job_poll`: salve's detached steps, as Windows runs a scheduled task.
//!
//! `job_control start` registers a task under `\salve\` and starts it at once. The task runs
//! its script as a process of its own, outside the WinRM shell that registered it: a WS-Man
//! Signal, a deleted or expired shell, a dropped connection or the controller's end never
//! reaches it, and it has no execution time limit (ExecutionTimeLimit PT0S). Its output is
//! appended to a UTF-8 file as it is written; its exit code is the task's last result. A
//! restart of the host ends it, as Windows ends every process at shutdown. `job_poll` reads the
//! task's state and the file from an offset, whole lines only while it runs. A finished task
//! stays, with its output, until `job_control remove` (or a start or poll that asks to remove
//! it once its whole output is answered); a running one is never removed.
//!
//! With `wait_ms`, `job_control start` then waits in the host's shell, as the script does:
//! after 25 ms, 50, 100, 200, then every 250 ms (Start-Sleep, the host's time) it looks at the
//! task's state (Get-ScheduledTask and Get-ScheduledTaskInfo: Running, or LastTaskResult
//! SCHED_S_TASK_RUNNING, until the task's process has exited; then LastTaskResult is its exit
//! code), and stops at the first look that finds the task no longer running or once `wait_ms`
//! has passed; a finished task is answered with its output, as a poll from offset 0 answers
//! it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::command::{EXIT_TERMINATED, Out, sim_sleep};
use crate::fleet_core::FleetCore;
use crate::host_api::ProcessOutput;
use crate::log::LabEvent;
use crate::shares::ShareLogon;
use crate::state::SimJob;
use salve_contract::contract::{
    JobAction, JobControlAnswer, JobControlRequest, JobPollAnswer, JobPollRequest, JobState,
    ScriptId,
};
use salve_contract::wire::{Script, parse_rendered};

/// `job_control.ps1`'s first pause between two looks at the task it waits for; it doubles up to
/// [`LOOK_AT_MOST`].
const FIRST_LOOK: Duration = Duration::from_millis(25);
const LOOK_AT_MOST: Duration = Duration::from_millis(250);

/// `job_control`: start (and, with `wait_ms`, wait for) or remove a task. `kill` is the
/// WinRM command's end (a Signal, the shell's deletion): it ends the wait, never the task.
pub(super) async fn control(
    core: &Arc<FleetCore>,
    idx: usize,
    req: &JobControlRequest,
    out: &Out,
    kill: &CancellationToken,
) -> i32 {
    let existing = core.with_host(idx, |s| {
        s.jobs
            .iter()
            .find(|j| j.job == req.job)
            .map(|j| (j.state, j.run_as.clone()))
    });
    let mut answer = JobControlAnswer {
        job: req.job.clone(),
        started: false,
        state: existing.as_ref().map_or(JobState::Missing, |(s, _)| *s),
        run_as: existing.as_ref().map(|(_, r)| r.clone()),
        reason: None,
        output: String::new(),
        next_offset: 0,
        exit_code: None,
        removed: false,
    };
    match req.action {
        JobAction::Start if existing.is_some() => {
            answer.reason = Some("a task with this id exists already; nothing was started".into());
        }
        JobAction::Start => match start(core, idx, req) {
            Ok(run_as) => {
                answer.started = true;
                answer.state = JobState::Running;
                answer.run_as = Some(run_as);
                if req.wait_ms > 0 {
                    let Some(state) = wait(core, idx, &req.job, req.wait_ms, kill).await else {
                        return EXIT_TERMINATED;
                    };
                    answer.state = state;
                }
                if answer.state == JobState::Finished {
                    let look = look(core, idx, &req.job, 0, req.remove_finished);
                    answer.output = look.output;
                    answer.next_offset = look.next_offset;
                    answer.exit_code = look.exit_code;
                    answer.removed = look.removed;
                }
            }
            Err(why) => {
                out.error(&[format!("job_control: {why}")]);
                return 1;
            }
        },
        JobAction::Remove if answer.state == JobState::Running => {
            answer.reason = Some("still running; a running task is never removed".into());
        }
        JobAction::Remove => {
            remove(core, idx, &req.job);
            answer.state = JobState::Missing;
        }
    }
    out.result(&answer);
    0
}

/// `job_control.ps1`'s wait: look at the task's state until it is no longer running or
/// `wait_ms` of the host's time has passed; `None` when the command was ended first.
async fn wait(
    core: &FleetCore,
    idx: usize,
    job: &str,
    wait_ms: u64,
    kill: &CancellationToken,
) -> Option<JobState> {
    let limit = Duration::from_millis(wait_ms);
    let (mut waited, mut pause) = (Duration::ZERO, FIRST_LOOK);
    let mut state = JobState::Running;
    while state == JobState::Running && waited < limit {
        let nap = pause.min(limit - waited);
        if !sim_sleep(core, nap, kill).await {
            return None;
        }
        waited += nap;
        pause = (pause * 2).min(LOOK_AT_MOST);
        state = core.with_host(idx, |s| {
            s.jobs
                .iter()
                .find(|j| j.job == job)
                .map_or(JobState::Missing, |j| j.state)
        });
    }
    Some(state)
}

/// Unregister task `job` and delete its folder (Unregister-ScheduledTask, Remove-Item).
fn remove(core: &FleetCore, idx: usize, job: &str) {
    let removed = core.with_host(idx, |s| {
        let at = s.jobs.iter().position(|j| j.job == job)?;
        Some(s.jobs.remove(at).script_id)
    });
    if let Some(script_id) = removed {
        core.record(
            idx,
            LabEvent::JobRemoved {
                job: job.to_string(),
                script_id,
            },
        );
    }
}

/// Register and start the task; returns the account it runs as.
fn start(core: &Arc<FleetCore>, idx: usize, req: &JobControlRequest) -> Result<String, String> {
    let encoded = req.script.as_deref().ok_or("start needs `script`")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| format!("`script` is not base64: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|e| format!("`script` is not UTF-8: {e}"))?;
    let script = parse_rendered(&text).map_err(|e| e.to_string())?;
    let id = script
        .id
        .as_deref()
        .and_then(ScriptId::parse)
        .ok_or("the lab runs shipped scripts only as detached tasks")?;
    let run_as = req
        .become_user
        .clone()
        .unwrap_or_else(|| "SYSTEM".to_string());
    // Register-ScheduledTask checks the account's password when it registers the task.
    if req.become_user.is_some() && req.become_password.as_deref() != Some(core.credentials().1) {
        return Err(
            "Register-ScheduledTask : The user name or password is incorrect. (0x8007052E)"
                .to_string(),
        );
    }
    let logon = Logon {
        download_token: req.download_token.clone(),
        account: req.become_user.clone(),
        share: req.share_credential.as_ref().map(|c| ShareLogon {
            share: c.share.clone(),
            user: c.user.clone(),
            password: c.password.clone(),
        }),
    };
    core.with_host(idx, |s| {
        s.jobs.push(SimJob {
            job: req.job.clone(),
            script_id: id.as_str().to_string(),
            run_as: run_as.clone(),
            state: JobState::Running,
            output: String::new(),
            exit_code: None,
        })
    });
    core.record(
        idx,
        LabEvent::JobStarted {
            job: req.job.clone(),
            script_id: id.as_str().to_string(),
            run_as: run_as.clone(),
        },
    );
    spawn(Arc::clone(core), idx, req.job.clone(), id, script, logon);
    Ok(run_as)
}

/// Who the task's process is: its logon's account (`None`: SYSTEM), and the secrets salve left
/// for it: explicit credentials for its package share, the token for a package salve serves.
struct Logon {
    account: Option<String>,
    share: Option<ShareLogon>,
    download_token: Option<String>,
}

/// The task's process: the script's simulation, its output appended to the job's file; ended
/// only by its own end or by a restart of the host.
fn spawn(
    core: Arc<FleetCore>,
    idx: usize,
    job: String,
    id: ScriptId,
    script: Script,
    logon: Logon,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    // Under a `become` account the task logs on with its password: network credentials.
    // SYSTEM reaches other machines as the computer account, which the lab's shares refuse.
    let out = match logon.account {
        Some(account) => Out::new(tx).with_network_credentials(&account),
        None => Out::new(tx),
    };
    // The step connects to its package share with the credentials job_control left for it.
    let out = match logon.share {
        Some(share) => out.with_share_logon(share),
        None => out,
    };
    let out = match logon.download_token {
        Some(token) => out.with_download_token(token),
        None => out,
    };
    // The task's runner merges every stream (`*>&1`) into output.log, as UTF-8 text.
    out.console().set_output_utf8();
    out.console().merge_streams();
    let kill = CancellationToken::new();
    let process: Pin<Box<dyn Future<Output = ()> + Send>> = {
        let (core, kill) = (Arc::clone(&core), kill.clone());
        Box::pin(async move {
            let code = super::run(&core, idx, id, script, &out, &kill).await;
            out.exit(code);
        })
    };
    tokio::spawn(process);
    let mut boot = core.boot_watch(idx);
    tokio::spawn(async move {
        let code = loop {
            tokio::select! {
                o = rx.recv() => match o {
                    Some(ProcessOutput::Stdout(b) | ProcessOutput::Stderr(b)) => {
                        let text = String::from_utf8_lossy(&b).into_owned();
                        core.with_host(idx, |s| {
                            if let Some(j) = s.jobs.iter_mut().find(|j| j.job == job) {
                                j.output.push_str(&text);
                            }
                        });
                    }
                    Some(ProcessOutput::Exit(code)) => break code,
                    None => break EXIT_TERMINATED,
                },
                // Shutdown ends the process; its simulation then exits promptly.
                _ = boot.changed() => kill.cancel(),
            }
        };
        core.with_host(idx, |s| {
            if let Some(j) = s.jobs.iter_mut().find(|j| j.job == job) {
                j.state = JobState::Finished;
                j.exit_code = Some(code);
            }
        });
        core.record(
            idx,
            LabEvent::JobFinished {
                job,
                script_id: id.as_str().to_string(),
                exit_code: code,
            },
        );
    });
}

/// `job_poll`: the task's state and its new output.
pub(super) fn poll(core: &FleetCore, idx: usize, req: &JobPollRequest, out: &Out) -> i32 {
    out.result(&look(core, idx, &req.job, req.offset, req.remove_finished));
    0
}

/// Task `job`'s state and its output from byte `offset` on (whole lines while it runs); with
/// `remove_finished`, a finished task whose rest of output this look carries is removed.
fn look(
    core: &FleetCore,
    idx: usize,
    job: &str,
    offset: u64,
    remove_finished: bool,
) -> JobPollAnswer {
    let mut answer = core.with_host(idx, |s| match s.jobs.iter().find(|j| j.job == job) {
        None => JobPollAnswer {
            job: job.to_string(),
            state: JobState::Missing,
            output: String::new(),
            next_offset: offset,
            exit_code: None,
            removed: false,
        },
        Some(j) => {
            let bytes = j.output.as_bytes();
            let from = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let rest = &bytes[from..];
            // While the task runs, a line still being written is read next time.
            let take = match j.state {
                JobState::Running => rest.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1),
                _ => rest.len(),
            };
            JobPollAnswer {
                job: j.job.clone(),
                state: j.state,
                output: String::from_utf8_lossy(&rest[..take]).into_owned(),
                next_offset: (from + take) as u64,
                exit_code: j.exit_code,
                removed: false,
            }
        }
    });
    if remove_finished && answer.state == JobState::Finished {
        remove(core, idx, job);
        answer.removed = true;
    }
    answer
}
