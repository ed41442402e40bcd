//! `wait_for_connection`: wait until the host answers a trivial command again (after a reboot
//! or network change), reconnecting from scratch on every attempt. Read-only: it needs only a
//! [`super::Probe`], so check mode runs it too.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::spec::ModuleSpec;
use super::{CheckCtx, ModuleError, Num, Outcome, ReadOnlyModule};
use crate::transport::TransportError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Give up after this many seconds (default 600).
    timeout: Option<Num>,
    /// Wait this long before the first attempt (default 0).
    delay: Option<Num>,
    /// Wait between attempts (default 1).
    sleep: Option<Num>,
    /// Limit for each attempt (default 5).
    connect_timeout: Option<Num>,
}

fn secs(n: Option<Num>, default: f64) -> Result<Duration, ModuleError> {
    n.unwrap_or(Num(default))
        .seconds()
        .map_err(|e| ModuleError::Args(e.to_string()))
}

pub struct WaitForConnection;

/// What `wait_for_connection` is, for the module table.
pub const SPEC: ModuleSpec = ModuleSpec::read_only(
    "wait_for_connection",
    &WaitForConnection,
    super::args::validator::<Args>,
);

#[async_trait::async_trait]
impl ReadOnlyModule for WaitForConnection {
    async fn run(&self, args: &Value, ctx: &CheckCtx<'_>) -> Result<Outcome, ModuleError> {
        let args: Args = super::args::parse(args).map_err(|p| ModuleError::Args(p.message))?;
        let (timeout, delay) = (secs(args.timeout, 600.0)?, secs(args.delay, 0.0)?);
        let (sleep, attempt_limit) = (secs(args.sleep, 1.0)?, secs(args.connect_timeout, 5.0)?);
        let start = tokio::time::Instant::now();
        let deadline = start + timeout;
        cancellable_sleep(delay, ctx).await?;
        let mut last_error;
        loop {
            ctx.probe.reset().await;
            match tokio::time::timeout(attempt_limit, ctx.probe.ping(attempt_limit)).await {
                Ok(Ok(())) => {
                    let elapsed = start.elapsed().as_secs_f64();
                    return Ok(Outcome::ok()
                        .with_msg(format!("host answered after {elapsed:.1} s"))
                        .with("elapsed", elapsed));
                }
                Ok(Err(e)) => last_error = e.to_string(),
                Err(_) => last_error = format!("no answer within {attempt_limit:?}"),
            }
            if tokio::time::Instant::now() + sleep >= deadline {
                return Ok(Outcome::failed(format!(
                    "host did not answer within {} s; last error: {last_error}",
                    timeout.as_secs()
                )));
            }
            cancellable_sleep(sleep, ctx).await?;
        }
    }
}

async fn cancellable_sleep(d: Duration, ctx: &CheckCtx<'_>) -> Result<(), ModuleError> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        _ = ctx.cancel.cancelled() => Err(TransportError::Cancelled.into()),
    }
}
