//! `fail`: fail the host with a message (usually behind a `when`).

use serde::Deserialize;
use serde_json::Value;

use super::spec::ModuleSpec;
use super::{CheckCtx, ModuleError, Outcome, ReadOnlyModule};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    msg: Option<String>,
}

pub struct Fail;

/// What `fail` is, for the module table.
pub const SPEC: ModuleSpec = ModuleSpec::read_only("fail", &Fail, super::args::validator::<Args>);

#[async_trait::async_trait]
impl ReadOnlyModule for Fail {
    async fn run(&self, args: &Value, _ctx: &CheckCtx<'_>) -> Result<Outcome, ModuleError> {
        let args: Args = super::args::parse(args).map_err(|p| ModuleError::Args(p.message))?;
        Ok(Outcome::failed(args.msg.unwrap_or_else(|| {
            "failed as requested by the playbook".into()
        })))
    }
}
