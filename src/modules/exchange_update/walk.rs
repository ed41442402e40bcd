//! `walk: true`: the whole update path in one task. Each round is one call's work ([`install`]:
//! wait for a running installer, re-attach to an update salve started earlier, or decide from
//! fresh facts and install the next step, .NET included), then the restart it asks for, then
//! the facts again, until nothing is left.
//!
//! Why one task rather than one task per step: the path's length is known only from the
//! host's facts, and changes as steps land (a .NET step already satisfied, a CU that jumps
//! further than planned), so no fixed list of playbook tasks fits every server; a playbook
//! with three "install the next step" tasks left a 2016 CU8 server three steps short. The
//! runner still sees each step: every round is a line of the task's output (journalled with
//! the task), the plan lists every step of the path for this one task, and the result lists
//! what each round did. A run cut off mid-path resumes where the server stands, since every
//! round starts from the facts.
//!
//! A restart that leaves its pending-reboot markers behind is taken again once; markers that
//! survive two restarts in a row stop the walk with their names (a flag that never clears is
//! not something another restart fixes).

use serde_json::{Value, json};

use super::super::exchange_script::Fail;
use super::super::reboot::restart_between_steps;
use super::super::{HostCtx, Outcome, Status};
use super::args::Args;
use super::install::install;
use crate::transport::OutputChunk;

/// Restarts in a row without an install between them before the walk gives up.
const RESTARTS_WITHOUT_PROGRESS: usize = 2;

pub(super) async fn walk(args: &Args, ctx: &HostCtx<'_>) -> Result<Outcome, Fail> {
    let mut rounds: Vec<Value> = Vec::new();
    let mut installed = 0usize;
    let mut restarts = 0usize;
    let mut idle_restarts = 0usize;
    let mut last_step: Option<String> = None;
    loop {
        let outcome = install(args, ctx).await?;
        let step = outcome
            .data
            .get("step")
            .and_then(Value::as_str)
            .map(str::to_string);
        let remaining = outcome
            .data
            .get("remaining")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let reboot = outcome.data.get("reboot_required") == Some(&Value::Bool(true));
        let did = outcome.status.changed();
        let msg = outcome.msg.clone().unwrap_or_default();
        say(ctx, &format!("step {}: {msg}", rounds.len() + 1));
        rounds.push(json!({
            "step": step,
            "msg": msg,
            "status": status_word(outcome.status),
            "exit_code": outcome.data.get("exit_code"),
        }));
        if outcome.status.failed() {
            return Ok(finished(outcome, rounds, installed, restarts));
        }
        if did {
            // The same step installed twice in a row: the restart did not bring the build
            // the installer promised, and installing it again would not either.
            if step.is_some() && step == last_step {
                let again = step.unwrap_or_default();
                let o = Outcome::failed(format!(
                    "{again} was installed, yet after the restart the server still needs it: \
                     read the installer's log on the host before running again"
                ))
                .having_changed(true);
                return Ok(finished(o, rounds, installed, restarts));
            }
            installed += 1;
            last_step = step;
            idle_restarts = 0;
        }
        if !reboot {
            if did && remaining > 0 {
                continue;
            }
            return Ok(finished(outcome, rounds, installed, restarts));
        }
        if !did {
            idle_restarts += 1;
            if idle_restarts > RESTARTS_WITHOUT_PROGRESS {
                let o = Outcome::failed(format!(
                    "a restart is still pending after {RESTARTS_WITHOUT_PROGRESS} restarts in a \
                     row ({msg}); find what sets the marker before running again"
                ))
                .having_changed(installed > 0 || restarts > 0);
                return Ok(finished(o, rounds, installed, restarts));
            }
        }
        say(ctx, "restarting before the next step");
        let restarted = restart_between_steps(args.poll_interval, ctx).await?;
        restarts += 1;
        if restarted.status.failed() {
            let o = Outcome::failed(format!(
                "restart after step {}: {}",
                rounds.len(),
                restarted.msg.unwrap_or_default()
            ))
            .having_changed(true);
            return Ok(finished(o, rounds, installed, restarts));
        }
    }
}

/// The walk's outcome: the last round's, counted over the whole walk.
fn finished(mut last: Outcome, rounds: Vec<Value>, installed: usize, restarts: usize) -> Outcome {
    let changed = installed > 0 || restarts > 0;
    last.status = last.status.with_changed(last.status.changed() || changed);
    if !last.status.failed() && changed {
        last.msg = Some(format!(
            "walked the path: {installed} step{} installed, {restarts} restart{}; {}",
            plural(installed),
            plural(restarts),
            last.msg.unwrap_or_default()
        ));
    }
    // Every restart the walk needed has been taken.
    if !last.status.failed() {
        last.data
            .insert("reboot_required".into(), Value::Bool(false));
    }
    last.with("walked", rounds)
        .with("installed", installed)
        .with("restarts", restarts)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn status_word(status: Status) -> &'static str {
    if status.failed() {
        "failed"
    } else if status.changed() {
        "changed"
    } else {
        "ok"
    }
}

fn say(ctx: &HostCtx<'_>, line: &str) {
    let _ = ctx.output.send(OutputChunk::Stdout(line.to_string()));
}
