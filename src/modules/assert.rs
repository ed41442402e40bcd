//! `assert`: fail the host unless every expression in `that` holds. Read-only, so it runs the
//! same in check mode.

use serde::Deserialize;
use serde_json::Value;

use super::args::OneOrMany;
use super::spec::ModuleSpec;
use super::{CheckCtx, ModuleError, Outcome, ReadOnlyModule};
use crate::template;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    that: OneOrMany,
    #[serde(alias = "msg")]
    fail_msg: Option<String>,
    success_msg: Option<String>,
    #[serde(default)]
    quiet: bool,
}

pub struct Assert;

/// What `assert` is, for the module table.
pub const SPEC: ModuleSpec =
    ModuleSpec::read_only("assert", &Assert, super::args::validator::<Args>);

#[async_trait::async_trait]
impl ReadOnlyModule for Assert {
    async fn run(&self, args: &Value, ctx: &CheckCtx<'_>) -> Result<Outcome, ModuleError> {
        let args: Args = super::args::parse(args).map_err(|p| ModuleError::Args(p.message))?;
        for expr in &args.that.0 {
            if !template::eval_bool(expr, ctx.vars)? {
                let msg = args
                    .fail_msg
                    .clone()
                    .unwrap_or_else(|| format!("assertion failed: {expr}"));
                return Ok(Outcome::failed(msg).with("assertion", expr.as_str()));
            }
        }
        let msg = match (&args.success_msg, args.quiet) {
            (Some(m), _) => Some(m.clone()),
            (None, false) => Some("all assertions passed".to_string()),
            (None, true) => None,
        };
        Ok(Outcome {
            msg,
            ..Outcome::ok()
        })
    }
}
