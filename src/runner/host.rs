//! One host through one play: its tasks in order, then the handlers its changed tasks
//! notified. A failed or unreachable host drops out of the play (and of later plays); the
//! first Ctrl-C stops it before its next task.

use std::collections::BTreeSet;

use super::RunEnv;
use super::task::TaskRun;
use super::vars::PlayScope;
use crate::events::{Event, HostCounts, HostOutcome, TaskStatus};
use crate::model::{Host, Play, Task, TaskSection};
use crate::modules::HostLink;

/// How a host left a play.
#[derive(Debug, Default)]
pub struct HostPlayEnd {
    pub counts: HostCounts,
    /// `None` when the host finished the play and may go on.
    pub outcome: Option<HostOutcome>,
    /// For an interrupted host: the step it was in, or the one it stopped before.
    pub left_in: Option<String>,
}

pub async fn run_host_play(
    env: &RunEnv,
    scope: &PlayScope<'_>,
    play: &Play,
    host: &Host,
    link: &dyn HostLink,
) -> HostPlayEnd {
    let mut end = HostPlayEnd::default();
    let mut notified = BTreeSet::new();
    let steps = play
        .indexed_tasks()
        .filter(|(_, section, _)| *section != TaskSection::Rescue);
    for (index, section, task) in steps {
        let is_handler = section == TaskSection::Handlers;
        if is_handler && !notified.contains(&task.name) {
            continue;
        }
        if !is_handler && !env.options.selects(&task.tags) {
            continue;
        }
        if env.interrupt.drain.is_cancelled() {
            end.outcome = Some(HostOutcome::Interrupted);
            end.left_in = Some(format!("before `{}`", task.name));
            return end;
        }
        if let Some(gate) = &env.options.gate
            && !gate.allows(&host.name, scope.play_index, index, &task.call.module)
        {
            env.emit(Event::TaskFinished {
                host: host.name.clone(),
                tenant: host.tenant.clone(),
                task: task.name.clone(),
                play_index: scope.play_index,
                task_index: index,
                status: TaskStatus::Skipped,
                msg: Some("not a step of the approved plan".into()),
                duration_ms: 0,
                result: serde_json::json!({"skipped": true, "skip_reason": "not in the approved plan"}),
            });
            end.counts.add(TaskStatus::Skipped);
            continue;
        }
        let status = run_one(env, scope, host, link, task, index).await;
        end.counts.add(status);
        if let Some(gate) = &env.options.gate
            && crate::modules::spec(&task.call.module)
                .is_some_and(|s| s.provides == crate::modules::Provides::ExchangeFacts)
            && let Some(why) = gate.drift(&host.name, &scope.facts.get(&host.name)["exchange"])
        {
            env.emit(Event::HostDropped {
                host: host.name.clone(),
                tenant: host.tenant.clone(),
                status: TaskStatus::Skipped,
                task: task.name.clone(),
                msg: format!("{why}; nothing was changed: plan again"),
            });
            end.outcome = Some(HostOutcome::Drifted);
            return end;
        }
        match status {
            TaskStatus::Failed | TaskStatus::Unreachable => {
                let outcome = if status == TaskStatus::Failed {
                    HostOutcome::Failed
                } else {
                    HostOutcome::Unreachable
                };
                let rescued = status == TaskStatus::Failed && !play.rescue.is_empty();
                let what = if is_handler {
                    "handler failed;"
                } else {
                    "task failed;"
                };
                let next = if rescued {
                    "the play's rescue tasks run, then no further tasks"
                } else {
                    "no further tasks run on this host"
                };
                env.emit(Event::HostDropped {
                    host: host.name.clone(),
                    tenant: host.tenant.clone(),
                    status,
                    task: task.name.clone(),
                    msg: format!("{what} {next}"),
                });
                if rescued {
                    run_rescue(env, scope, play, host, link, &mut end.counts).await;
                }
                end.outcome = Some(outcome);
                return end;
            }
            TaskStatus::Interrupted => {
                end.outcome = Some(HostOutcome::Interrupted);
                end.left_in = Some(task.name.clone());
                return end;
            }
            TaskStatus::Changed => notified.extend(task.notify.iter().cloned()),
            TaskStatus::Ok | TaskStatus::Skipped | TaskStatus::Ignored => {}
        }
    }
    end
}

/// The play's rescue tasks, after a failure: each runs whatever the previous one did (they are
/// the way back to a safe state), unless the run is being aborted.
async fn run_rescue(
    env: &RunEnv,
    scope: &PlayScope<'_>,
    play: &Play,
    host: &Host,
    link: &dyn HostLink,
    counts: &mut HostCounts,
) {
    let rescue = play
        .indexed_tasks()
        .filter(|(_, section, _)| *section == TaskSection::Rescue);
    for (index, _, task) in rescue {
        if env.interrupt.abort.is_cancelled() {
            return;
        }
        counts.add(run_one(env, scope, host, link, task, index).await);
    }
}

async fn run_one(
    env: &RunEnv,
    scope: &PlayScope<'_>,
    host: &Host,
    link: &dyn HostLink,
    task: &Task,
    index: usize,
) -> TaskStatus {
    env.set_in_flight(&host.name, Some(&task.name));
    env.emit(Event::TaskStarted {
        host: host.name.clone(),
        tenant: host.tenant.clone(),
        task: task.name.clone(),
        play_index: scope.play_index,
        task_index: index,
        item: None,
    });
    let started = tokio::time::Instant::now();
    let result = TaskRun {
        env,
        scope,
        host,
        link,
        task,
        task_index: index,
    }
    .run()
    .await;
    if let Some(facts) = result.facts.clone() {
        scope.facts.merge(&host.name, facts);
    }
    if let Some(name) = &task.register {
        let mut reg = crate::model::Vars::new();
        reg.insert(name.clone(), result.registered.clone());
        scope.facts.merge(&host.name, reg);
    }
    env.emit(Event::TaskFinished {
        host: host.name.clone(),
        tenant: host.tenant.clone(),
        task: task.name.clone(),
        play_index: scope.play_index,
        task_index: index,
        status: result.status,
        msg: result.msg,
        duration_ms: started.elapsed().as_millis() as u64,
        result: result.registered,
    });
    env.set_in_flight(&host.name, None);
    result.status
}
