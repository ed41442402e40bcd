//! Task modules. Each module is first *asked* what it would change ([`Module::check`]) and
//! only then *told* to act ([`Module::apply`]). Check mode (`salve run --check`) stops after
//! the asking; later, plan mode will too.
//!
//! The asking cannot change a host, by construction: `check` gets a [`CheckCtx`], whose only
//! way to the host is a [`Probe`] that runs nothing but [`crate::script::ReadOnlyScript`]s.
//! `apply` gets a [`HostCtx`] with the full [`HostLink`]. Modules that only read implement
//! [`ReadOnlyModule`] instead, and run the same read-only code in both modes.
//!
//! A module receives its arguments already rendered (templates replaced by values) and
//! deserialises them into its own typed, `deny_unknown_fields` argument struct. The config
//! loader validates arguments *as written* with [`validate_args`], before anything runs.
//!
//! What a module *is* (read-only or changing hosts, whether it restarts, how long a step takes,
//! what a plan says about it and how its steps count) is its [`ModuleSpec`], declared once as
//! `SPEC` beside its code and collected in [`table`]; nothing outside this folder treats a
//! module by its name (a test in `spec.rs` scans for it). A call ends in an [`Outcome`] whose
//! [`Status`] is one of ok, changed, failed or skipped.

mod ansible_names;
mod args;
mod assert;
mod debug;
mod detached;
mod exchange_facts;
mod exchange_health;
mod exchange_ioc_scan;
mod exchange_maintenance;
mod exchange_mitigate;
mod exchange_script;
mod exchange_update;
mod exchange_verify;
pub mod exclusive;
mod fail;
mod pause;
mod powershell;
mod probe;
mod reboot;
mod set_fact;
mod spec;
mod wait_for_connection;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::model::run_as::RunAs;
use crate::model::{Host, Vars};
use crate::transport::{OutputChunk, Transport, TransportError};

pub use ansible_names::{Resolved, resolve};
pub use args::{ArgProblem, Num};
pub use exchange_maintenance::carried_over_facts;
pub use probe::{Probe, ProbeLink, ProbeRequest};
pub use spec::{
    Action, Counting, Effect, Estimate, Foresight, ModuleSpec, Pair, PairKind, Provides, Reason,
};

/// What a module did, or would do in check mode.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub status: Status,
    /// One-line message for humans (debug text, failure reason, skip reason).
    pub msg: Option<String>,
    /// Result fields, registered with `register:` (e.g. `rc`, `stdout`, `result`).
    pub data: Map<String, Value>,
    /// Facts to add to the host's variables (`set_fact`).
    pub facts: Option<Vars>,
}

/// How a module call ended (before `ignore_errors`, which is the task's business).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Status {
    /// Nothing needed changing.
    #[default]
    Ok,
    Changed,
    /// It could not do its work. `changed`: it changed the host before it failed (a script
    /// that ran and exited non-zero, a restart that did not come back).
    Failed {
        changed: bool,
    },
    /// It did not run (check mode, for a script whose effects cannot be predicted).
    Skipped,
}

impl Status {
    /// [`Status::Changed`] when `changed`, else [`Status::Ok`].
    pub fn done(changed: bool) -> Status {
        if changed { Status::Changed } else { Status::Ok }
    }

    /// The host was changed (successfully or not).
    pub fn changed(self) -> bool {
        matches!(self, Status::Changed | Status::Failed { changed: true })
    }

    pub fn failed(self) -> bool {
        matches!(self, Status::Failed { .. })
    }

    pub fn skipped(self) -> bool {
        self == Status::Skipped
    }

    /// The same ending, judged changed or not (`changed_when`). A call that did not run
    /// changed nothing, so a skip stays a skip.
    pub fn with_changed(self, changed: bool) -> Status {
        match self {
            Status::Ok | Status::Changed => Status::done(changed),
            Status::Failed { .. } => Status::Failed { changed },
            Status::Skipped => Status::Skipped,
        }
    }

    /// The same ending, judged failed or not (`failed_when`); what it changed stays.
    pub fn with_failed(self, failed: bool) -> Status {
        match (self, failed) {
            (Status::Failed { changed }, false) => Status::done(changed),
            (Status::Failed { .. }, true) | (_, false) => self,
            (_, true) => Status::Failed {
                changed: self.changed(),
            },
        }
    }
}

impl Outcome {
    pub fn ok() -> Self {
        Outcome::default()
    }

    pub fn changed() -> Self {
        Outcome::ending(Status::Changed)
    }

    /// [`Outcome::changed`] when `changed`, else [`Outcome::ok`].
    pub fn done(changed: bool) -> Self {
        Outcome::ending(Status::done(changed))
    }

    pub fn failed(msg: impl Into<String>) -> Self {
        Outcome::ending(Status::Failed { changed: false }).with_msg(msg)
    }

    /// Not run, for this reason.
    pub fn skipped(msg: impl Into<String>) -> Self {
        Outcome::ending(Status::Skipped).with_msg(msg)
    }

    fn ending(status: Status) -> Self {
        Outcome {
            status,
            ..Outcome::default()
        }
    }

    /// The same outcome, having changed the host or not (see [`Status::with_changed`]).
    pub fn having_changed(mut self, changed: bool) -> Self {
        self.status = self.status.with_changed(changed);
        self
    }

    pub fn with_msg(mut self, msg: impl Into<String>) -> Self {
        self.msg = Some(msg.into());
        self
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.data.insert(key.to_string(), value.into());
        self
    }
}

/// Why a module could not run at all (as opposed to running and reporting failure).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ModuleError {
    #[error("invalid arguments: {0}")]
    Args(String),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{0}")]
    Template(#[from] crate::template::TemplateError),
    /// The intent log refused the change before it started: nothing was done on the host.
    #[error("not started: {0}")]
    Refused(#[from] Refused),
    /// salve stopped waiting for a detached step (timeout, Ctrl-C) that keeps running on the
    /// host: never stopped, to be re-attached to.
    #[error(transparent)]
    LeftRunning(#[from] detached::LeftRunning),
}

/// Why a change must not start: the intent log (see `runner::IntentLog`) knows the host is no
/// longer this process's to change (a queue runner whose claim was taken over) or cannot keep
/// the record it must keep. Defined here, below the runner, so modules need not import it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Opens (and re-opens) the connection to one host on demand.
#[async_trait]
pub trait HostLink: Send + Sync {
    /// The live transport, connecting first if needed.
    async fn transport(&self) -> Result<Arc<dyn Transport>, TransportError>;
    /// Forget the current connection (after a reboot); the next call reconnects.
    async fn reset(&self);
}

/// Everything a module may use while it runs on one host.
pub struct HostCtx<'a> {
    pub host: &'a Host,
    /// The account detached steps run as for this task (its `become` over the host's),
    /// `None` for SYSTEM.
    pub run_as: Option<&'a RunAs>,
    pub link: &'a dyn HostLink,
    /// Where steps that must run once at a time (a forest's AD preparation) hold their key.
    pub exclusive: &'a dyn exclusive::Exclusive,
    /// The host's variables and facts, as templates see them.
    pub vars: &'a crate::template::Context,
    /// Wall-clock limit of the task.
    pub timeout: Duration,
    /// The longest pause between looks at a detached step (the task's `poll`); `None`: the
    /// default, 2 s.
    pub poll: Option<Duration>,
    /// Cancelled when the run is aborted; modules must stop promptly.
    pub cancel: CancellationToken,
    /// Output as it arrives, relayed to reporters.
    pub output: mpsc::UnboundedSender<OutputChunk>,
    /// Folder of the playbook, for relative script paths.
    pub base_dir: PathBuf,
}

impl HostCtx<'_> {
    /// The read-only half of this context, reaching the host through `probe` (a
    /// [`ProbeLink`] over [`HostCtx::link`]): what `apply` decides with before it acts.
    pub fn read_only<'p>(&'p self, probe: &'p dyn Probe) -> CheckCtx<'p> {
        CheckCtx {
            host: self.host,
            run_as: self.run_as,
            probe,
            vars: self.vars,
            timeout: self.timeout,
            cancel: self.cancel.clone(),
            output: self.output.clone(),
            base_dir: self.base_dir.clone(),
        }
    }
}

/// What a module may use while it works out what it would change on one host: a [`HostCtx`]
/// whose link is replaced by a read-only [`Probe`].
///
/// Nothing turns a `CheckCtx` into a [`HostCtx`], so code holding one cannot call `apply`:
///
/// ```compile_fail,E0308
/// use salve::modules::{CheckCtx, Module, ModuleError, Outcome};
/// async fn sneak(
///     m: &dyn Module,
///     args: &serde_json::Value,
///     ctx: &CheckCtx<'_>,
/// ) -> Result<Outcome, ModuleError> {
///     m.apply(args, ctx).await
/// }
/// ```
pub struct CheckCtx<'a> {
    pub host: &'a Host,
    /// The account detached steps would run as (see [`HostCtx::run_as`]).
    pub run_as: Option<&'a RunAs>,
    pub probe: &'a dyn Probe,
    /// The host's variables and facts, as templates see them.
    pub vars: &'a crate::template::Context,
    /// Wall-clock limit of the task.
    pub timeout: Duration,
    /// Cancelled when the run is aborted; modules must stop promptly.
    pub cancel: CancellationToken,
    /// Output as it arrives, relayed to reporters.
    pub output: mpsc::UnboundedSender<OutputChunk>,
    /// Folder of the playbook, for relative paths.
    pub base_dir: PathBuf,
}

/// A task module.
#[async_trait]
pub trait Module: Send + Sync {
    /// Read-only: what would change and why. It cannot change the host: [`CheckCtx`] reaches
    /// it only through a [`Probe`].
    async fn check(&self, args: &Value, ctx: &CheckCtx<'_>) -> Result<Outcome, ModuleError>;
    /// Make the change.
    async fn apply(&self, args: &Value, ctx: &HostCtx<'_>) -> Result<Outcome, ModuleError>;
}

/// A module that only reads (facts, verification, scans, templates): one `run` serves as both
/// `check` and `apply`, and sees only a [`CheckCtx`] in either mode.
#[async_trait]
pub trait ReadOnlyModule: Send + Sync {
    async fn run(&self, args: &Value, ctx: &CheckCtx<'_>) -> Result<Outcome, ModuleError>;
}

#[async_trait]
impl<M: ReadOnlyModule> Module for M {
    async fn check(&self, args: &Value, ctx: &CheckCtx<'_>) -> Result<Outcome, ModuleError> {
        self.run(args, ctx).await
    }

    async fn apply(&self, args: &Value, ctx: &HostCtx<'_>) -> Result<Outcome, ModuleError> {
        let probe = ProbeLink::new(ctx.link);
        self.run(args, &ctx.read_only(&probe)).await
    }
}

/// Every module, each declared once beside its code. The single source for validation,
/// dispatch, the apply gate, the intent log and the plan.
const TABLE: &[&ModuleSpec] = &[
    &powershell::SPEC,
    &assert::SPEC,
    &set_fact::SPEC,
    &debug::SPEC,
    &fail::SPEC,
    &pause::SPEC,
    &wait_for_connection::SPEC,
    &exchange_facts::SPEC,
    &exchange_mitigate::SPEC,
    &exchange_update::SPEC,
    &exchange_maintenance::SPEC,
    &reboot::SPEC,
    &exchange_verify::SPEC,
    &exchange_ioc_scan::SPEC,
    &exchange_health::SPEC,
];

/// Every module's spec.
pub fn table() -> &'static [&'static ModuleSpec] {
    TABLE
}

/// The spec of the module called `name`.
pub fn spec(name: &str) -> Option<&'static ModuleSpec> {
    TABLE.iter().copied().find(|s| s.name == name)
}

/// Names of every module a task may use.
pub fn names() -> Vec<&'static str> {
    TABLE.iter().map(|s| s.name).collect()
}

/// Check a module's arguments as written (templates unrendered). Strings holding `{{ }}`
/// are accepted wherever a scalar is expected: they are checked again once rendered.
pub fn validate_args(module: &str, args: &Value) -> Result<(), Vec<ArgProblem>> {
    match spec(module) {
        Some(spec) => (spec.validate)(args),
        None => Err(vec![ArgProblem {
            field: String::new(),
            message: format!("unknown module `{module}`"),
            hint: crate::diag::did_you_mean(module, names()),
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn judging_an_ending_keeps_what_it_changed() {
        let ran_and_failed = Status::Failed { changed: true };
        assert_eq!(ran_and_failed.with_failed(false), Status::Changed);
        assert_eq!(
            ran_and_failed.with_changed(false),
            Status::Failed { changed: false }
        );
        assert_eq!(
            Status::Changed.with_failed(true),
            Status::Failed { changed: true }
        );
        assert_eq!(Status::Ok.with_failed(false), Status::Ok);
        assert_eq!(Status::Ok.with_changed(true), Status::Changed);
        assert_eq!(
            Status::Skipped.with_failed(true),
            Status::Failed { changed: false }
        );
        assert_eq!(Status::Skipped.with_changed(true), Status::Skipped);
    }

    #[test]
    fn unknown_modules_get_a_suggestion() {
        let e = validate_args("powershel", &json!({})).unwrap_err();
        assert_eq!(e[0].hint.as_deref(), Some("did you mean `powershell`?"));
    }

    #[test]
    fn unknown_arguments_are_named() {
        let e = validate_args("powershell", &json!({"script": "x", "scrpit": "y"})).unwrap_err();
        assert_eq!(e[0].field, "scrpit");
        assert!(
            e[0].hint.as_deref().unwrap_or_default().contains("script"),
            "{e:?}"
        );
    }

    #[test]
    fn templates_stand_in_for_numbers() {
        validate_args("pause", &json!({"seconds": "{{ wait }}"})).unwrap();
        let e = validate_args("pause", &json!({"seconds": "soon"})).unwrap_err();
        assert_eq!(e[0].field, "seconds");
    }
}
