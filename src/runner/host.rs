//! One host through one play: its task flow in order (blocks with their `rescue` and
//! `always`, included task files once or per loop item), then the handlers its changed tasks
//! notified. A failure inside a block with a `rescue` is the block's to handle (it counts as
//! ignored, as Ansible counts it `rescued`): when the rescue tasks succeed the host goes on. A failure nobody rescued drops the host out of the play (and of later plays)
//! after the play's own `rescue` tasks; with `any_errors_fatal` it stops the play on every
//! host. The first Ctrl-C stops a host before its next task.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::RunEnv;
use super::task::TaskRun;
use super::vars::PlayScope;
use crate::events::{Event, HostCounts, HostOutcome, TaskStatus};
use crate::model::{Block, Host, Include, LoopSpec, Play, Step, Task, TaskSection, Vars};
use crate::modules::HostLink;
use crate::template;

/// How a host left a play.
#[derive(Debug, Default)]
pub struct HostPlayEnd {
    pub counts: HostCounts,
    /// `None` when the host finished the play and may go on.
    pub outcome: Option<HostOutcome>,
    /// For an interrupted host: the step it was in, or the one it stopped before.
    pub left_in: Option<String>,
}

/// Where a host's play stands after some steps.
enum Flow {
    /// Go on with the next step.
    Next,
    /// A task failed (not ignored); an enclosing block's `rescue` may take it.
    Failed { index: usize, result: Value },
    /// The host is done with the play; its outcome is set.
    Stop,
}

/// Results of a play's `run_once` tasks, by `task_index`: the first host to reach such a task
/// runs it; the others wait for its result and take it as theirs (its registered value and
/// facts), as Ansible applies a `run_once` result to every host.
#[derive(Default)]
pub struct RunOnce(Mutex<BTreeMap<usize, Arc<OnceCell<OnceResult>>>>);

/// What a `run_once` task gave, for the hosts that did not run it.
#[derive(Debug, Clone)]
struct OnceResult {
    host: String,
    status: TaskStatus,
    registered: Value,
    facts: Option<Vars>,
}

impl RunOnce {
    fn cell(&self, index: usize) -> Arc<OnceCell<OnceResult>> {
        let mut cells = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(cells.entry(index).or_default())
    }
}

/// The links a host's tasks run through: its own, and the controller's for
/// `delegate_to: localhost`.
pub struct Links<'a> {
    pub host: &'a dyn HostLink,
    pub controller: &'a dyn HostLink,
}

/// What one host's run through a play needs and keeps.
struct HostRun<'a> {
    env: &'a RunEnv,
    play: &'a Play,
    host: &'a Host,
    links: Links<'a>,
    /// Cancelled when a host of an `any_errors_fatal` play failed.
    fatal: &'a CancellationToken,
    once: &'a RunOnce,
    end: HostPlayEnd,
    /// Handler names and `listen` topics notified so far.
    notified: BTreeSet<String>,
}

type StepFuture<'f> = Pin<Box<dyn Future<Output = Flow> + Send + 'f>>;

pub async fn run_host_play(
    env: &RunEnv,
    scope: &PlayScope<'_>,
    play: &Play,
    host: &Host,
    links: Links<'_>,
    fatal: &CancellationToken,
    once: &RunOnce,
) -> HostPlayEnd {
    let mut run = HostRun {
        env,
        play,
        host,
        links,
        fatal,
        once,
        end: HostPlayEnd::default(),
        notified: BTreeSet::new(),
    };
    let mut flow = run.steps(&play.body, scope).await;
    if matches!(flow, Flow::Next) {
        flow = run.handlers(scope).await;
    }
    if let Flow::Failed { index, .. } = flow {
        run.drop_failed(scope, index).await;
    }
    run.end
}

impl<'a> HostRun<'a> {
    /// Run steps in order until one does not lead on.
    fn steps<'f>(&'f mut self, steps: &'f [Step], scope: &'f PlayScope<'_>) -> StepFuture<'f> {
        Box::pin(async move {
            for step in steps {
                let flow = match step {
                    Step::Task(index) => self.task(*index, scope).await,
                    Step::Block(block) => self.block(block, scope).await,
                    Step::Include(include) => self.include(include, scope).await,
                };
                if !matches!(flow, Flow::Next) {
                    return flow;
                }
            }
            Flow::Next
        })
    }

    /// A block: its body; on a failure its rescue (which may recover the host); then always.
    async fn block(&mut self, block: &Block, scope: &PlayScope<'_>) -> Flow {
        let mut flow = self.steps(&block.body, scope).await;
        if let Flow::Failed { index, result } = &flow
            && !block.rescue.is_empty()
        {
            let failed = self.play.task_at(*index).map(|(_, t)| t);
            let mut locals = Vars::new();
            locals.insert(
                "ansible_failed_task".into(),
                failed.map_or(Value::Null, failed_task),
            );
            locals.insert("ansible_failed_result".into(), result.clone());
            // A failure a rescue takes over is not the host's failure: it counts as ignored
            // (Ansible counts it `rescued`); a failure of the rescue itself counts on its own.
            self.end.counts.failed = self.end.counts.failed.saturating_sub(1);
            self.end.counts.ignored += 1;
            let rescue_scope = scope.with_locals(locals);
            flow = self.steps(&block.rescue, &rescue_scope).await;
        }
        if !matches!(flow, Flow::Stop) && !block.always.is_empty() {
            let after = self.steps(&block.always, scope).await;
            if !matches!(after, Flow::Next) {
                flow = after;
            }
        }
        flow
    }

    /// An included task file: once, or once per loop item with the item bound.
    async fn include(&mut self, include: &Include, scope: &PlayScope<'_>) -> Flow {
        let Some(spec) = &include.loop_spec else {
            return match self.include_wanted(include, scope) {
                Ok(true) => self.steps(&include.body, scope).await,
                Ok(false) => Flow::Next,
                Err(flow) => flow,
            };
        };
        let ctx = scope.context(self.host, None);
        let rendered = match spec {
            LoopSpec::Items(items) => template::render_value(&Value::Array(items.clone()), &ctx),
            LoopSpec::Template(t) => template::render_value(&Value::String(t.clone()), &ctx),
        };
        let items = match rendered {
            Ok(Value::Array(items)) => items,
            Ok(other) => {
                return self.include_failed(include, format!("loop: expected a list, got {other}"));
            }
            Err(e) => return self.include_failed(include, format!("loop: {e}")),
        };
        let control = &include.loop_control;
        for (i, item) in items.into_iter().enumerate() {
            if i > 0
                && let Some(pause) = control.pause
            {
                tokio::time::sleep(pause).await;
            }
            let mut locals = Vars::new();
            locals.insert(control.item_name().to_string(), item);
            if let Some(index_var) = &control.index_var {
                locals.insert(index_var.clone(), i.into());
            }
            let item_scope = scope.with_locals(locals);
            // As for a looping task, `when` is evaluated for each item.
            let flow = match self.include_wanted(include, &item_scope) {
                Ok(true) => self.steps(&include.body, &item_scope).await,
                Ok(false) => Flow::Next,
                Err(flow) => flow,
            };
            if !matches!(flow, Flow::Next) {
                return flow;
            }
        }
        Flow::Next
    }

    /// Whether the include's `when` holds in `scope`; a condition that cannot be evaluated
    /// fails the host.
    fn include_wanted(&mut self, include: &Include, scope: &PlayScope<'_>) -> Result<bool, Flow> {
        let ctx = scope.context(self.host, None);
        for cond in &include.when {
            match template::eval_bool(&cond.source, &ctx) {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                Err(e) => return Err(self.include_failed(include, format!("when: {e}"))),
            }
        }
        Ok(true)
    }

    /// An include that cannot run (its `when` or `loop` does not evaluate) fails the host
    /// like a task; it has no task of its own to blame, so the host drops out here.
    fn include_failed(&mut self, include: &Include, msg: String) -> Flow {
        self.env.emit(Event::HostDropped {
            host: self.host.name.clone(),
            tenant: self.host.tenant.clone(),
            status: TaskStatus::Failed,
            task: include.name.clone(),
            msg: format!("{msg}; no further tasks run on this host"),
        });
        self.end.counts.add(TaskStatus::Failed);
        self.end.outcome = Some(HostOutcome::Failed);
        Flow::Stop
    }

    /// The notified handlers, in the order the play lists them.
    async fn handlers(&mut self, scope: &PlayScope<'_>) -> Flow {
        let first = self.play.tasks.len();
        for (i, handler) in self.play.handlers.iter().enumerate() {
            let wanted = std::iter::once(&handler.name)
                .chain(&handler.listen)
                .any(|n| self.notified.contains(n));
            if !wanted {
                continue;
            }
            let flow = self.task(first + i, scope).await;
            if !matches!(flow, Flow::Next) {
                return flow;
            }
        }
        Flow::Next
    }

    /// One task (or handler) by its `task_index`.
    async fn task(&mut self, index: usize, scope: &PlayScope<'_>) -> Flow {
        let Some((section, task)) = self.play.task_at(index) else {
            return Flow::Next;
        };
        let (env, host) = (self.env, self.host);
        if section != TaskSection::Handlers && !env.options.selects(&task.tags) {
            return Flow::Next;
        }
        if self.fatal.is_cancelled() {
            env.emit(Event::HostDropped {
                host: host.name.clone(),
                tenant: host.tenant.clone(),
                status: TaskStatus::Failed,
                task: task.name.clone(),
                msg: "another host failed and the play has `any_errors_fatal`".into(),
            });
            self.end.outcome = Some(HostOutcome::Failed);
            return Flow::Stop;
        }
        if env.interrupt.drain.is_cancelled() {
            self.end.outcome = Some(HostOutcome::Interrupted);
            self.end.left_in = Some(format!("before `{}`", task.name));
            return Flow::Stop;
        }
        if let Some(gate) = &env.options.gate
            && !gate.allows(&host.name, scope.play_index, index, &task.call.module)
        {
            self.skip(
                scope,
                task,
                index,
                "not a step of the approved plan",
                "not in the approved plan",
            );
            return Flow::Next;
        }
        let link = if task.on_controller {
            self.links.controller
        } else {
            self.links.host
        };
        let (status, result) = if task.run_once {
            let cell = self.once.cell(index);
            let once = cell
                .get_or_init(|| async {
                    let (status, registered, facts) =
                        run_one(env, scope, host, link, task, index).await;
                    OnceResult {
                        host: host.name.clone(),
                        status,
                        registered,
                        facts,
                    }
                })
                .await;
            if once.host != host.name {
                self.adopt(scope, task, index, once);
                return Flow::Next;
            }
            (once.status, once.registered.clone())
        } else {
            let (status, registered, _) = run_one(env, scope, host, link, task, index).await;
            (status, registered)
        };
        self.end.counts.add(status);
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
            self.end.outcome = Some(HostOutcome::Drifted);
            return Flow::Stop;
        }
        match status {
            TaskStatus::Failed => Flow::Failed { index, result },
            TaskStatus::Unreachable if task.ignore_unreachable => Flow::Next,
            TaskStatus::Unreachable => {
                env.emit(Event::HostDropped {
                    host: host.name.clone(),
                    tenant: host.tenant.clone(),
                    status,
                    task: task.name.clone(),
                    msg: "task failed; no further tasks run on this host".into(),
                });
                self.end.outcome = Some(HostOutcome::Unreachable);
                Flow::Stop
            }
            TaskStatus::Interrupted => {
                self.end.outcome = Some(HostOutcome::Interrupted);
                self.end.left_in = Some(task.name.clone());
                Flow::Stop
            }
            TaskStatus::Changed => {
                self.notified.extend(task.notify.iter().cloned());
                Flow::Next
            }
            TaskStatus::Ok | TaskStatus::Skipped | TaskStatus::Ignored => Flow::Next,
        }
    }

    /// Take the result of a `run_once` task another host ran: its registered value and facts
    /// become this host's; the task counts as skipped here.
    fn adopt(&mut self, scope: &PlayScope<'_>, task: &Task, index: usize, once: &OnceResult) {
        if let Some(facts) = &once.facts {
            scope.facts.merge(&self.host.name, facts.clone());
        }
        if let Some(name) = &task.register {
            let mut reg = Vars::new();
            reg.insert(name.clone(), once.registered.clone());
            scope.facts.merge(&self.host.name, reg);
        }
        let why = format!("run_once: ran on {}", once.host);
        self.env.emit(Event::TaskFinished {
            host: self.host.name.clone(),
            tenant: self.host.tenant.clone(),
            task: task.name.clone(),
            play_index: scope.play_index,
            task_index: index,
            status: TaskStatus::Skipped,
            msg: Some(why),
            duration_ms: 0,
            result: once.registered.clone(),
        });
        self.end.counts.add(TaskStatus::Skipped);
    }

    /// Report a task as skipped without running it.
    fn skip(&mut self, scope: &PlayScope<'_>, task: &Task, index: usize, msg: &str, reason: &str) {
        self.env.emit(Event::TaskFinished {
            host: self.host.name.clone(),
            tenant: self.host.tenant.clone(),
            task: task.name.clone(),
            play_index: scope.play_index,
            task_index: index,
            status: TaskStatus::Skipped,
            msg: Some(msg.into()),
            duration_ms: 0,
            result: json!({"skipped": true, "skip_reason": reason}),
        });
        self.end.counts.add(TaskStatus::Skipped);
    }

    /// A failure nobody rescued: the host leaves the play after the play's `rescue` tasks;
    /// with `any_errors_fatal` every other host stops too.
    async fn drop_failed(&mut self, scope: &PlayScope<'_>, index: usize) {
        let (section, name) = match self.play.task_at(index) {
            Some((section, task)) => (section, task.name.clone()),
            None => (TaskSection::Tasks, String::new()),
        };
        let rescued = !self.play.rescue.is_empty();
        let what = if section == TaskSection::Handlers {
            "handler failed;"
        } else {
            "task failed;"
        };
        let next = if rescued {
            "the play's rescue tasks run, then no further tasks"
        } else {
            "no further tasks run on this host"
        };
        self.env.emit(Event::HostDropped {
            host: self.host.name.clone(),
            tenant: self.host.tenant.clone(),
            status: TaskStatus::Failed,
            task: name,
            msg: format!("{what} {next}"),
        });
        if self.play.any_errors_fatal {
            self.fatal.cancel();
        }
        if rescued {
            self.play_rescue(scope).await;
        }
        self.end.outcome = Some(HostOutcome::Failed);
    }

    /// The play's rescue tasks, after a failure: each runs whatever the previous one did (they
    /// are the way back to a safe state), unless the run is being aborted.
    async fn play_rescue(&mut self, scope: &PlayScope<'_>) {
        let rescue = self
            .play
            .indexed_tasks()
            .filter(|(_, section, _)| *section == TaskSection::Rescue);
        for (index, _, task) in rescue {
            if self.env.interrupt.abort.is_cancelled() {
                return;
            }
            let (status, ..) =
                run_one(self.env, scope, self.host, self.links.host, task, index).await;
            self.end.counts.add(status);
        }
    }
}

/// What `ansible_failed_task` shows of the task that failed.
fn failed_task(task: &Task) -> Value {
    json!({
        "name": task.name,
        "action": task.call.module,
        "args": task.call.args,
    })
}

/// Run one task and record what it registers; its status, and its registered result and facts
/// where the caller needs them (a `run_once` task; the registered result of a failure), else
/// null and `None`.
async fn run_one(
    env: &RunEnv,
    scope: &PlayScope<'_>,
    host: &Host,
    link: &dyn HostLink,
    task: &Task,
    index: usize,
) -> (TaskStatus, Value, Option<Vars>) {
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
    // A result can be large (an `exchange_facts` answer is ~16 KB of JSON): it is copied only
    // where it must live on. The caller keeps facts and the registered value only for a
    // `run_once` task (the other hosts adopt them) and a failure (a rescue reads it).
    let facts = match result.facts {
        Some(facts) if task.run_once => {
            scope.facts.merge(&host.name, facts.clone());
            Some(facts)
        }
        Some(facts) => {
            scope.facts.merge(&host.name, facts);
            None
        }
        None => None,
    };
    if let Some(name) = &task.register {
        let mut reg = crate::model::Vars::new();
        reg.insert(name.clone(), result.registered.clone());
        scope.facts.merge(&host.name, reg);
    }
    let (reported, kept) = if task.run_once || result.status == TaskStatus::Failed {
        (result.registered.clone(), result.registered)
    } else {
        (result.registered, Value::Null)
    };
    env.emit(Event::TaskFinished {
        host: host.name.clone(),
        tenant: host.tenant.clone(),
        task: task.name.clone(),
        play_index: scope.play_index,
        task_index: index,
        status: result.status,
        msg: result.msg,
        duration_ms: started.elapsed().as_millis() as u64,
        result: reported,
    });
    env.set_in_flight(&host.name, None);
    (result.status, kept, facts)
}
