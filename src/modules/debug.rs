//! `debug`: show a message (`msg`) or a variable's value (`var`, an expression).

use serde::Deserialize;
use serde_json::Value;

use super::{HostCtx, Module, ModuleError, Outcome};
use crate::template;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    msg: Option<Value>,
    var: Option<String>,
}

pub struct Debug;

#[async_trait::async_trait]
impl Module for Debug {
    async fn check(&self, args: &Value, ctx: &HostCtx<'_>) -> Result<Outcome, ModuleError> {
        self.apply(args, ctx).await
    }

    async fn apply(&self, args: &Value, ctx: &HostCtx<'_>) -> Result<Outcome, ModuleError> {
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
