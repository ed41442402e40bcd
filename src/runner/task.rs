//! One task on one host: `loop`, `when`, argument rendering, the module call (check or
//! apply) under the task's timeout with slow-step warnings and streamed output, `retries` /
//! `until` with `delay`, `changed_when` / `failed_when`, and what gets registered.
//!
//! **Check mode cannot change the host.** [`TaskRun::run`] turns the host's link into an
//! [`Access`] once, before anything else, and the rest of the task sees only that. In check
//! mode it is [`Access::Inspect`], holding a [`ProbeLink`] (which keeps the link private and
//! runs only read-only shipped scripts); the module call can then build only a [`CheckCtx`],
//! so only [`Module::check`](modules::Module::check) can be called. [`Module::apply`](modules::Module::apply) takes a [`HostCtx`], which needs
//! the link itself: only [`Access::Execute`] has it.

use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::RunEnv;
use super::vars::{LoopItem, PlayScope};
use crate::events::{Event, Stream, TaskStatus};
use crate::model::{Host, LoopSpec, Task, Vars, run_as};
use crate::modules::{
    self, CheckCtx, Effect, HostCtx, HostLink, ModuleError, ModuleSpec, Outcome, ProbeLink, Status,
};
use crate::template::{self, Context};
use crate::transport::{OutputChunk, TransportError};

/// Pause between tries of a read-only step while its host does not answer.
const RECONNECT_PAUSE: Duration = Duration::from_secs(2);

/// Ansible's default number of retries when `until` is given without `retries`.
const DEFAULT_UNTIL_RETRIES: u32 = 3;

/// Why a task's `loop` gives no list of items.
#[derive(Debug, thiserror::Error)]
enum LoopError {
    #[error("loop: {0}")]
    Render(#[from] template::TemplateError),
    #[error("loop: expected a list, got {0}")]
    NotAList(Value),
}

/// How a task ended on a host.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskResult {
    pub status: TaskStatus,
    pub changed: bool,
    pub msg: Option<String>,
    /// What `register` stores.
    pub registered: Value,
    pub facts: Option<Vars>,
}

/// Everything a task run needs.
pub struct TaskRun<'a> {
    pub env: &'a RunEnv,
    pub scope: &'a PlayScope<'a>,
    pub host: &'a Host,
    pub link: &'a dyn HostLink,
    pub task: &'a Task,
    pub task_index: usize,
}

/// What a task may do to its host, fixed when it starts.
enum Access<'a> {
    /// Check mode: read-only scripts through a probe, so only [`Module::check`](modules::Module::check).
    Inspect(ProbeLink<'a>),
    /// The link itself, so [`Module::apply`](modules::Module::apply).
    Execute(&'a dyn HostLink),
}

/// A task on a host once its [`Access`] is fixed; it never sees the link itself.
struct TaskOnHost<'a> {
    env: &'a RunEnv,
    scope: &'a PlayScope<'a>,
    host: &'a Host,
    task: &'a Task,
    task_index: usize,
    access: Access<'a>,
}

/// Result of one loop item (or of the task when it does not loop).
enum ItemEnd {
    Done(Outcome),
    Skipped(String),
    Unreachable(String),
    /// Stopped by Ctrl-C, or waiting stopped with a detached step left running (its message).
    Interrupted(Option<String>),
}

impl TaskRun<'_> {
    pub async fn run(&self) -> TaskResult {
        let access = if self.env.options.check_mode {
            Access::Inspect(ProbeLink::new(self.link))
        } else {
            Access::Execute(self.link)
        };
        TaskOnHost {
            env: self.env,
            scope: self.scope,
            host: self.host,
            task: self.task,
            task_index: self.task_index,
            access,
        }
        .run()
        .await
    }
}

impl TaskOnHost<'_> {
    async fn run(&self) -> TaskResult {
        let items = match &self.task.loop_spec {
            None => None,
            Some(spec) => match self.loop_items(spec) {
                Ok(items) => Some(items),
                Err(e) => return failed(e.to_string()),
            },
        };
        match items {
            None => self.finish(self.run_item(None).await),
            Some(items) => {
                let mut ends = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    if i > 0
                        && let Some(pause) = self.task.loop_control.pause
                    {
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = self.env.interrupt.abort.cancelled() => {}
                        }
                    }
                    let end = self.run_item(Some((i, item))).await;
                    let stop = matches!(end, ItemEnd::Unreachable(_) | ItemEnd::Interrupted(_));
                    let result = self.finish(end);
                    self.announce_item((i, item), &result);
                    ends.push((item.clone(), result));
                    if stop {
                        break;
                    }
                }
                self.finish_loop(ends)
            }
        }
    }

    fn loop_items(&self, spec: &LoopSpec) -> Result<Vec<Value>, LoopError> {
        let ctx = self.scope.context(self.host, None);
        let rendered = match spec {
            LoopSpec::Items(items) => template::render_value(&Value::Array(items.clone()), &ctx),
            LoopSpec::Template(t) => template::render_value(&Value::String(t.clone()), &ctx),
        }?;
        match rendered {
            Value::Array(items) => Ok(items),
            other => Err(LoopError::NotAList(other)),
        }
    }

    /// The variables for one item: the item under its `loop_var` (default `item`), its
    /// position under `index_var`.
    fn item_context(&self, item: Option<(usize, &Value)>) -> Context {
        let control = &self.task.loop_control;
        let item = item.map(|(i, value)| LoopItem {
            name: control.item_name(),
            value,
            index: control.index_var.as_deref().map(|v| (v, i)),
        });
        self.scope.context(self.host, item)
    }

    /// Tell the reporters how one item ended, named by its `label` if the loop has one.
    fn announce_item(&self, item: (usize, &Value), result: &TaskResult) {
        let shown = match &self.task.loop_control.label {
            Some(label) => {
                let ctx = self.item_context(Some(item));
                template::render_value(&Value::String(label.clone()), &ctx)
                    .unwrap_or_else(|e| Value::String(format!("(label: {e})")))
            }
            None => item.1.clone(),
        };
        self.env.emit(Event::LoopItem {
            host: self.host.name.clone(),
            tenant: self.host.tenant.clone(),
            task: self.task.name.clone(),
            play_index: self.scope.play_index,
            task_index: self.task_index,
            item: shown,
            status: result.status,
            msg: result.msg.clone(),
        });
    }

    async fn run_item(&self, item: Option<(usize, &Value)>) -> ItemEnd {
        let ctx = self.item_context(item);
        for cond in &self.task.when {
            match template::eval_bool(&cond.source, &ctx) {
                Ok(true) => {}
                Ok(false) => {
                    return ItemEnd::Skipped(format!(
                        "conditional result was false: {}",
                        cond.source
                    ));
                }
                Err(e) => return ItemEnd::Done(Outcome::failed(format!("when: {e}"))),
            }
        }
        let args = match template::render_value(&self.task.call.args, &ctx) {
            Ok(a) => a,
            Err(e) => {
                return ItemEnd::Done(Outcome::failed(format!("{}: {e}", self.task.call.module)));
            }
        };
        let Some(module) = modules::spec(&self.task.call.module) else {
            return ItemEnd::Done(Outcome::failed(format!(
                "unknown module `{}`",
                self.task.call.module
            )));
        };
        let attempts = 1 + match (&self.task.until, self.task.retries) {
            (Some(_), 0) => DEFAULT_UNTIL_RETRIES,
            (_, n) => n,
        };
        let mut attempt = 1;
        let mut silent_since: Option<tokio::time::Instant> = None;
        loop {
            let outcome = match self.call(module, &args, &ctx).await {
                Ok(o) => o,
                Err(ModuleError::Transport(TransportError::Cancelled)) => {
                    return ItemEnd::Interrupted(None);
                }
                Err(ModuleError::LeftRunning(left)) => {
                    return ItemEnd::Interrupted(Some(left.to_string()));
                }
                Err(ModuleError::Transport(e)) if e.is_unreachable() => {
                    let since = *silent_since.get_or_insert_with(tokio::time::Instant::now);
                    if !self.may_wait_for_host(module, since).await {
                        return ItemEnd::Unreachable(e.to_string());
                    }
                    tracing::info!(host = %self.host.name, task = %self.task.name,
                        "the host does not answer ({e}); trying again");
                    continue;
                }
                Err(e) => Outcome::failed(e.to_string()),
            };
            let outcome = self.judge(outcome, &ctx);
            let retry_reason = match &self.task.until {
                Some(until) => {
                    match template::eval_bool(&until.source, &self.with_result(&ctx, &outcome)) {
                        Ok(true) => None,
                        Ok(false) => Some(format!("until `{}` does not hold yet", until.source)),
                        Err(e) => return ItemEnd::Done(Outcome::failed(format!("until: {e}"))),
                    }
                }
                None if outcome.status.failed() => outcome.msg.clone(),
                None => None,
            };
            let Some(reason) = retry_reason else {
                return ItemEnd::Done(outcome);
            };
            if attempt >= attempts {
                return ItemEnd::Done(match &self.task.until {
                    Some(u) if !outcome.status.failed() => Outcome::failed(format!(
                        "until `{}` still false after {attempts} attempts",
                        u.source
                    )),
                    _ => outcome,
                });
            }
            self.env.emit(Event::TaskRetry {
                host: self.host.name.clone(),
                task: self.task.name.clone(),
                attempt,
                of: attempts,
                msg: reason,
            });
            tokio::select! {
                _ = tokio::time::sleep(self.task.delay) => {}
                _ = self.env.interrupt.abort.cancelled() => return ItemEnd::Interrupted(None),
            }
            attempt += 1;
        }
    }

    /// Call the module (`check` or `apply`, as the [`Access`] allows) under the task's
    /// timeout, relaying its output.
    /// Whether a read-only step that found the host silent since `since` should try again:
    /// within the run's reconnect grace, after a pause (the link is re-opened). Host-changing
    /// steps never repeat on their own: they may have acted before the connection dropped.
    async fn may_wait_for_host(&self, module: &ModuleSpec, since: tokio::time::Instant) -> bool {
        let grace = self.env.options.reconnect_grace;
        if module.effect != Effect::ReadOnly || since.elapsed() >= grace {
            return false;
        }
        match &self.access {
            Access::Inspect(probe) => crate::modules::Probe::reset(probe).await,
            Access::Execute(link) => link.reset().await,
        }
        tokio::select! {
            _ = tokio::time::sleep(RECONNECT_PAUSE.min(grace)) => true,
            _ = self.env.interrupt.abort.cancelled() => false,
        }
    }

    async fn call(
        &self,
        module: &ModuleSpec,
        args: &Value,
        vars: &Context,
    ) -> Result<Outcome, ModuleError> {
        let timeout = self
            .task
            .timeout
            .unwrap_or(self.env.options.default_timeout);
        let (output, rx) = mpsc::unbounded_channel();
        let relay = tokio::spawn(relay_output(
            self.env.events.clone(),
            self.host.name.clone(),
            self.task.name.clone(),
            rx,
        ));
        let cancel = self.env.interrupt.abort.child_token();
        let base_dir = self.env.base_dir.clone();
        let run_as = match run_as::for_task(self.host.settings.run_as.as_ref(), &self.task.become_)
        {
            Ok(r) => r,
            Err(e) => {
                relay.abort();
                return Ok(Outcome::failed(e.to_string()));
            }
        };
        // Each context (and with it the last output sender) is dropped at the end of its arm.
        let result = match &self.access {
            Access::Inspect(probe) => {
                let ctx = CheckCtx {
                    host: self.host,
                    run_as: run_as.as_ref(),
                    probe,
                    vars,
                    timeout,
                    cancel,
                    output,
                    base_dir,
                };
                self.guarded(timeout, module.module.check(args, &ctx)).await
            }
            Access::Execute(link) => {
                let intents = self
                    .env
                    .options
                    .intents
                    .as_ref()
                    .filter(|_| module.effect == Effect::ChangesHosts);
                let intent = match intents {
                    Some(log) => {
                        let begun = log
                            .begin(
                                &self.host.name,
                                self.scope.play_index,
                                self.task_index,
                                &self.task.name,
                            )
                            .await;
                        match begun {
                            Ok(id) => id,
                            Err(refused) => {
                                // Nothing ran, so there is no output to relay.
                                relay.abort();
                                return Err(refused.into());
                            }
                        }
                    }
                    None => None,
                };
                let ctx = HostCtx {
                    host: self.host,
                    run_as: run_as.as_ref(),
                    link: *link,
                    exclusive: &*self.env.options.exclusive,
                    vars,
                    timeout,
                    poll: self.task.poll,
                    cancel,
                    output,
                    base_dir,
                };
                let result = self.guarded(timeout, module.module.apply(args, &ctx)).await;
                if let (Some(log), Some(id)) = (intents, intent) {
                    let outcome = match &result {
                        Ok(o) => {
                            serde_json::json!({"changed": o.status.changed(), "failed": o.status.failed(), "msg": o.msg})
                        }
                        Err(e) => serde_json::json!({"failed": true, "msg": e.to_string()}),
                    };
                    log.complete(&id, &outcome).await;
                }
                result
            }
        };
        // Wait so output precedes the result.
        let _ = relay.await;
        result
    }

    /// Await a module call, warning when it runs long.
    async fn guarded(
        &self,
        timeout: Duration,
        work: impl Future<Output = Result<Outcome, ModuleError>>,
    ) -> Result<Outcome, ModuleError> {
        // Transports enforce the timeout themselves; this backstop catches modules that wait
        // on something else.
        let guarded = tokio::time::timeout(timeout + Duration::from_secs(5), work);
        tokio::pin!(guarded);
        let slow = self.env.options.slow_step;
        let started = tokio::time::Instant::now();
        let mut ticker = tokio::time::interval_at(started + slow, slow);
        loop {
            tokio::select! {
                r = &mut guarded => break r.unwrap_or(Err(ModuleError::Transport(TransportError::Timeout { after: timeout }))),
                _ = ticker.tick() => self.env.emit(Event::SlowStep {
                    host: self.host.name.clone(),
                    task: self.task.name.clone(),
                    elapsed_ms: started.elapsed().as_millis() as u64,
                }),
            }
        }
    }

    /// Apply `changed_when` and `failed_when` to a module's outcome.
    fn judge(&self, mut outcome: Outcome, ctx: &Context) -> Outcome {
        if self.task.changed_when.is_none() && self.task.failed_when.is_none() {
            return outcome;
        }
        let ctx = self.with_result(ctx, &outcome);
        if let Some(expr) = &self.task.changed_when {
            match template::eval_bool(&expr.source, &ctx) {
                Ok(b) => outcome.status = outcome.status.with_changed(b),
                Err(e) => return Outcome::failed(format!("changed_when: {e}")),
            }
        }
        if let Some(expr) = &self.task.failed_when {
            match template::eval_bool(&expr.source, &ctx) {
                Ok(b) => {
                    outcome.status = outcome.status.with_failed(b);
                    if b && outcome.msg.is_none() {
                        outcome.msg = Some(format!("failed_when `{}` holds", expr.source));
                    }
                }
                Err(e) => return Outcome::failed(format!("failed_when: {e}")),
            }
        }
        outcome
    }

    /// The context plus this attempt's result, under the `register` name (and `result`).
    fn with_result(&self, ctx: &Context, outcome: &Outcome) -> Context {
        let r = registered(outcome);
        let mut layer = Map::new();
        if let Some(name) = &self.task.register {
            layer.insert(name.clone(), r.clone());
        }
        layer.insert("result".into(), r);
        ctx.clone().with_layer(std::sync::Arc::new(layer))
    }

    fn finish(&self, end: ItemEnd) -> TaskResult {
        match end {
            ItemEnd::Done(mut o) => {
                let status = status_of(&o, self.task.ignore_errors);
                let data = std::mem::take(&mut o.data);
                TaskResult {
                    status,
                    changed: o.status.changed(),
                    msg: o.msg.clone(),
                    registered: registered_with(data, &o),
                    facts: o.facts,
                }
            }
            ItemEnd::Skipped(reason) => TaskResult {
                status: TaskStatus::Skipped,
                changed: false,
                registered: serde_json::json!({"skipped": true, "skip_reason": reason}),
                msg: Some(reason),
                facts: None,
            },
            ItemEnd::Unreachable(msg) => TaskResult {
                status: TaskStatus::Unreachable,
                changed: false,
                registered: serde_json::json!({"unreachable": true, "msg": msg}),
                msg: Some(msg),
                facts: None,
            },
            ItemEnd::Interrupted(why) => {
                let msg = why.unwrap_or_else(|| "interrupted".into());
                TaskResult {
                    status: TaskStatus::Interrupted,
                    changed: false,
                    registered: serde_json::json!({"failed": true, "msg": msg}),
                    msg: Some(msg),
                    facts: None,
                }
            }
        }
    }

    fn finish_loop(&self, ends: Vec<(Value, TaskResult)>) -> TaskResult {
        let mut results = Vec::with_capacity(ends.len());
        let mut facts: Option<Vars> = None;
        let (mut changed, mut worst, mut msg) = (false, TaskStatus::Skipped, None);
        for (item, r) in ends {
            changed |= r.changed;
            // Severity order: skipped < ok < changed < ignored < failed < unreachable < interrupted.
            if rank(r.status) > rank(worst) {
                worst = r.status;
                msg = r.msg.clone();
            }
            if let Some(f) = r.facts {
                facts.get_or_insert_with(Map::new).extend(f);
            }
            let mut entry = r.registered;
            if let Value::Object(m) = &mut entry {
                m.insert("item".into(), item);
            }
            results.push(entry);
        }
        let status = if worst == TaskStatus::Ok && changed {
            TaskStatus::Changed
        } else {
            worst
        };
        let registered = serde_json::json!({
            "results": results,
            "changed": changed,
            "failed": status == TaskStatus::Failed,
            "msg": msg.clone().unwrap_or_else(|| "all items completed".into()),
        });
        TaskResult {
            status,
            changed,
            msg,
            registered,
            facts,
        }
    }
}

fn rank(s: TaskStatus) -> u8 {
    match s {
        TaskStatus::Skipped => 0,
        TaskStatus::Ok => 1,
        TaskStatus::Changed => 2,
        TaskStatus::Ignored => 3,
        TaskStatus::Failed => 4,
        TaskStatus::Unreachable => 5,
        TaskStatus::Interrupted => 6,
    }
}

fn status_of(o: &Outcome, ignore_errors: bool) -> TaskStatus {
    match o.status {
        Status::Failed { .. } if ignore_errors => TaskStatus::Ignored,
        Status::Failed { .. } => TaskStatus::Failed,
        Status::Skipped => TaskStatus::Skipped,
        Status::Changed => TaskStatus::Changed,
        Status::Ok => TaskStatus::Ok,
    }
}

/// What `register` stores for an outcome: its data plus `changed`, `failed`, `skipped`, `msg`.
fn registered(o: &Outcome) -> Value {
    registered_with(o.data.clone(), o)
}

/// [`registered`], given the outcome's data (taken from it rather than copied: a module's
/// result can be large).
fn registered_with(mut m: Map<String, Value>, o: &Outcome) -> Value {
    m.insert("changed".into(), o.status.changed().into());
    m.insert("failed".into(), o.status.failed().into());
    if o.status.skipped() {
        m.insert("skipped".into(), true.into());
    }
    if let Some(msg) = &o.msg {
        m.insert("msg".into(), msg.clone().into());
    }
    Value::Object(m)
}

fn failed(msg: String) -> TaskResult {
    TaskResult {
        status: TaskStatus::Failed,
        changed: false,
        registered: serde_json::json!({"failed": true, "msg": msg}),
        msg: Some(msg),
        facts: None,
    }
}

async fn relay_output(
    events: mpsc::UnboundedSender<Event>,
    host: String,
    task: String,
    mut rx: mpsc::UnboundedReceiver<OutputChunk>,
) {
    while let Some(chunk) = rx.recv().await {
        let (stream, text) = match chunk {
            OutputChunk::Stdout(t) => (Stream::Stdout, t),
            OutputChunk::Stderr(t) => (Stream::Stderr, t),
        };
        // Result lines are data for the module, not output for people.
        if text.starts_with(crate::script::RESULT_MARKER) {
            continue;
        }
        let _ = events.send(Event::TaskOutput {
            host: host.clone(),
            task: task.clone(),
            stream,
            text,
        });
    }
}
