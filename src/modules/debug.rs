//! `debug`: show a message (`msg`) or a variable's value (`var`, an expression).

use serde::Deserialize;
use serde_json::Value;

use super::spec::ModuleSpec;
use super::{CheckCtx, ModuleError, Outcome, ReadOnlyModule};
use crate::template;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    msg: Option<Value>,
    var: Option<String>,
}

pub struct Debug;

/// What `debug` is, for the module table.
pub const SPEC: ModuleSpec = ModuleSpec::read_only("debug", &Debug, super::args::validator::<Args>);

#[async_trait::async_trait]
impl ReadOnlyModule for Debug {
    async fn run(&self, args: &Value, ctx: &CheckCtx<'_>) -> Result<Outcome, ModuleError> {
        let args: Args = super::args::parse(args).map_err(|p| ModuleError::Args(p.message))?;
        Ok(match (args.msg, args.var) {
            (Some(_), Some(_)) => {
                return Err(ModuleError::Args("give `msg` or `var`, not both".into()));
            }
            (_, Some(var)) => {
                let value = template::eval(&var, ctx.vars)?;
                Outcome::ok()
                    .with_msg(format!("{var} = {value}"))
                    .with(&var, value)
            }
            (Some(Value::String(s)), None) => Outcome::ok().with_msg(s.clone()).with("msg", s),
            (Some(other), None) => Outcome::ok().with_msg(other.to_string()).with("msg", other),
            (None, None) => Outcome::ok().with_msg("Hello world!"),
        })
    }
}
