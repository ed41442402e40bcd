//! `fail`: fail the host with a message (usually behind a `when`).

use serde::Deserialize;
use serde_json::Value;

use super::{HostCtx, Module, ModuleError, Outcome};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    msg: Option<String>,
}

pub struct Fail;

#[async_trait::async_trait]
impl Module for Fail {
    async fn check(&self, args: &Value, ctx: &HostCtx<'_>) -> Result<Outcome, ModuleError> {
        self.apply(args, ctx).await
    }

    async fn apply(&self, args: &Value, _ctx: &HostCtx<'_>) -> Result<Outcome, ModuleError> {
        let args: Args = super::args::parse(args).map_err(|p| ModuleError::Args(p.message))?;
        Ok(Outcome::failed(args.msg.unwrap_or_else(|| {
            "failed as requested by the playbook".into()
        })))
    }
}
