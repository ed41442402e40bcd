//! `powershell`: run a user-written PowerShell script on the host.
//!
//! The script is inline (`script:`) or a file relative to the playbook (`file:`). Values for it
//! go in `args:` and arrive on the host as `$SalveArgs` (a JSON document, never spliced into the
//! script text, see [`crate::script`]). A script's effects cannot be predicted, so check mode
//! skips it.

use serde::Deserialize;
use serde_json::Value;

use super::spec::{Action, Counting, Effect, Estimate, Foresight, ModuleSpec, Provides, Reason};
use super::{CheckCtx, HostCtx, Module, ModuleError, Outcome};
use crate::script::{self, Script};
use crate::transport::RunRequest;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArgs {
    script: Option<String>,
    file: Option<String>,
    args: Option<Value>,
}

/// Arguments of `powershell`: exactly one of `script` or `file`, and optional `args`.
#[derive(Debug, Deserialize)]
#[serde(try_from = "RawArgs")]
pub struct Args {
    source: Source,
    args: Option<Value>,
}

#[derive(Debug)]
enum Source {
    Inline(String),
    File(String),
}

/// `powershell` without exactly one script.
#[derive(Debug, thiserror::Error)]
#[error("give exactly one of `script` (inline text) or `file` (a .ps1 path)")]
pub struct NotOneScript;

impl TryFrom<RawArgs> for Args {
    type Error = NotOneScript;

    fn try_from(raw: RawArgs) -> Result<Self, NotOneScript> {
        let source = match (raw.script, raw.file) {
            (Some(s), None) => Source::Inline(s),
            (None, Some(f)) => Source::File(f),
            _ => return Err(NotOneScript),
        };
        Ok(Args {
            source,
            args: raw.args,
        })
    }
}

pub struct Powershell;

/// What `powershell` is, for the module table.
pub const SPEC: ModuleSpec = ModuleSpec {
    name: "powershell",
    module: &Powershell,
    validate: super::args::validator::<Args>,
    effect: Effect::ChangesHosts,
    reboots: false,
    estimate: Estimate::Seconds(60),
    action: Action::Text("run a user script (its effects cannot be predicted)"),
    reason: Reason::Check,
    foresight: Foresight::Unpredictable,
    counting: Counting::Plain,
    provides: Provides::Nothing,
    manages_exchange: false,
};

#[async_trait::async_trait]
impl Module for Powershell {
    async fn check(&self, args: &Value, _ctx: &CheckCtx<'_>) -> Result<Outcome, ModuleError> {
        super::args::parse::<Args>(args).map_err(|p| ModuleError::Args(p.message))?;
        Ok(Outcome::skipped(
            "not run in check mode: a script's effects cannot be predicted",
        ))
    }

    async fn apply(&self, args: &Value, ctx: &HostCtx<'_>) -> Result<Outcome, ModuleError> {
        let args: Args = super::args::parse(args).map_err(|p| ModuleError::Args(p.message))?;
        let body = match args.source {
            Source::Inline(text) => text,
            Source::File(path) => {
                let full = ctx.base_dir.join(&path);
                std::fs::read_to_string(&full).map_err(|e| {
                    ModuleError::Args(format!("cannot read script file {}: {e}", full.display()))
                })?
            }
        };
        let mut script = Script::raw(body);
        script.args = args.args;
        let transport = ctx.link.transport().await?;
        let mut request = RunRequest::new(script, ctx.timeout);
        request.cancel = ctx.cancel.clone();
        request.output = Some(ctx.output.clone());
        let out = transport.run(request).await?;
        Ok(script_outcome(out))
    }
}

/// Turn a finished script's output into an outcome: failed on a non-zero exit code, with the
/// parsed `##salve-result##` document (if any) under `result`.
pub fn script_outcome(out: crate::transport::ScriptOutput) -> Outcome {
    let result = script::extract_result(&out.stdout).and_then(Result::ok);
    let stdout = script::strip_result(&out.stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| Value::String(l.to_string()))
        .collect();
    let mut outcome = if out.exit_code == 0 {
        Outcome::changed()
    } else {
        let last = out
            .stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no error output");
        Outcome::failed(format!("script exited with code {}: {last}", out.exit_code))
            .having_changed(true)
    };
    outcome = outcome
        .with("rc", out.exit_code)
        .with("stdout", stdout)
        .with("stdout_lines", Value::Array(lines))
        .with("stderr", out.stderr);
    if let Some(result) = result {
        outcome = outcome.with("result", result);
    }
    outcome
}
