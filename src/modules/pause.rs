//! `pause`: wait a fixed time (`seconds` and/or `minutes`). Unattended runs never wait for a
//! key press, so a duration is required. Check mode does not wait.

use serde::Deserialize;
use serde_json::Value;

use super::spec::ModuleSpec;
use super::{CheckCtx, HostCtx, Module, ModuleError, Num, Outcome};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawArgs")]
pub struct Args {
    seconds: f64,
    prompt: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArgs {
    seconds: Option<Num>,
    minutes: Option<Num>,
    prompt: Option<String>,
}

/// `pause` without a duration.
#[derive(Debug, thiserror::Error)]
#[error("give `seconds` or `minutes`: unattended runs cannot wait for a key press")]
pub struct NoDuration;

impl TryFrom<RawArgs> for Args {
    type Error = NoDuration;

    fn try_from(raw: RawArgs) -> Result<Self, NoDuration> {
        if raw.seconds.is_none() && raw.minutes.is_none() {
            return Err(NoDuration);
        }
        let seconds = raw.seconds.map_or(0.0, |n| n.0) + raw.minutes.map_or(0.0, |n| n.0 * 60.0);
        Ok(Args {
            seconds,
            prompt: raw.prompt,
        })
    }
}

pub struct Pause;

/// What `pause` is, for the module table.
pub const SPEC: ModuleSpec = ModuleSpec::read_only("pause", &Pause, super::args::validator::<Args>);

#[async_trait::async_trait]
impl Module for Pause {
    async fn check(&self, args: &Value, _ctx: &CheckCtx<'_>) -> Result<Outcome, ModuleError> {
        let args: Args = super::args::parse(args).map_err(|p| ModuleError::Args(p.message))?;
        Ok(Outcome::ok().with_msg(format!("would pause {} s", args.seconds)))
    }

    async fn apply(&self, args: &Value, ctx: &HostCtx<'_>) -> Result<Outcome, ModuleError> {
        let args: Args = super::args::parse(args).map_err(|p| ModuleError::Args(p.message))?;
        let wait = Num(args.seconds)
            .seconds()
            .map_err(|e| ModuleError::Args(e.to_string()))?;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = ctx.cancel.cancelled() => return Err(crate::transport::TransportError::Cancelled.into()),
        }
        let msg = args
            .prompt
            .unwrap_or_else(|| format!("paused {} s", args.seconds));
        Ok(Outcome::ok().with_msg(msg).with("elapsed", args.seconds))
    }
}
