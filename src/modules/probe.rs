//! The read-only way to a host: what [`super::Module::check`] gets instead of a
//! [`HostLink`](super::HostLink).
//!
//! A [`Probe`] runs only [`ReadOnlyScript`]s (salve's own scripts whose ids are declared
//! read-only, see [`crate::contract::ScriptId::read_only`]) — in the session, or as a detached
//! task under the `become` account for those that manage Exchange — checks that the host answers, and
//! drops the connection so the next call reconnects. Nothing else: no user text, no
//! state-changing script, no file transfer. [`ProbeLink`] is the one implementation over a
//! live link; it keeps the link private, so code holding only a probe cannot get the
//! transport back.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::HostLink;
use crate::model::run_as::RunAs;
use crate::script::ReadOnlyScript;
use crate::transport::{OutputChunk, RunRequest, ScriptOutput, TransportError};

/// A read-only script to run, with the limits of [`RunRequest`].
#[derive(Debug, Clone)]
pub struct ProbeRequest {
    pub script: ReadOnlyScript,
    /// Hard wall-clock limit.
    pub timeout: Duration,
    /// Cancelled on Ctrl-C or when the runner gives up on the host.
    pub cancel: CancellationToken,
    /// Where to stream output as it arrives (optional).
    pub output: Option<mpsc::UnboundedSender<OutputChunk>>,
    /// Run the script as a detached task under this account rather than in the session (a
    /// script that manages Exchange needs a logon with network credentials; see
    /// [`super::detached::read`]).
    pub run_as: Option<RunAs>,
}

/// Read-only access to one host.
#[async_trait]
pub trait Probe: Send + Sync {
    /// Run a read-only shipped script, connecting first if needed.
    async fn run(&self, request: ProbeRequest) -> Result<ScriptOutput, TransportError>;
    /// Succeeds when the host answers a trivial command within `limit`.
    async fn ping(&self, limit: Duration) -> Result<(), TransportError>;
    /// Forget the current connection (after a reboot); the next call reconnects.
    async fn reset(&self);
}

/// A [`Probe`] over a host's link. The link stays private: a `ProbeLink` can be made from a
/// link, never turned back into one.
///
/// ```compile_fail,E0616
/// use salve::modules::{HostLink, ProbeLink};
/// fn back<'a>(probe: &ProbeLink<'a>) -> &'a dyn HostLink {
///     probe.link
/// }
/// ```
pub struct ProbeLink<'a> {
    link: &'a dyn HostLink,
}

impl<'a> ProbeLink<'a> {
    pub fn new(link: &'a dyn HostLink) -> Self {
        ProbeLink { link }
    }
}

#[async_trait]
impl Probe for ProbeLink<'_> {
    async fn run(&self, mut request: ProbeRequest) -> Result<ScriptOutput, TransportError> {
        if let Some(run_as) = request.run_as.take() {
            return super::detached::read(self.link, request, &run_as).await;
        }
        let transport = self.link.transport().await?;
        let mut run = RunRequest::new(request.script.into_script(), request.timeout);
        run.cancel = request.cancel;
        run.output = request.output;
        transport.run(run).await
    }

    async fn ping(&self, limit: Duration) -> Result<(), TransportError> {
        self.link.transport().await?.probe(limit).await
    }

    async fn reset(&self) {
        self.link.reset().await;
    }
}

#[cfg(test)]
mod tests {
    use super::super::exchange_script::testing::{FakeLink, id};
    use super::*;
    use crate::contract::{ReadOnlyId, ScriptId};
    use crate::transport::fake::{FakeFleet, FakeReply};

    #[tokio::test(start_paused = true)]
    async fn a_probe_link_runs_the_read_only_script_it_is_given_and_reconnects_on_reset() {
        let fleet = FakeFleet::new(|_, _| FakeReply::ok("up\n"));
        let link = FakeLink::new(&fleet);
        let probe = ProbeLink::new(&link);
        let out = probe
            .run(ProbeRequest {
                script: ReadOnlyScript::shipped(ReadOnlyId::BootId, serde_json::json!({})),
                timeout: Duration::from_secs(5),
                cancel: CancellationToken::new(),
                output: None,
                run_as: None,
            })
            .await
            .unwrap();
        assert_eq!(out.stdout, "up\n");
        probe.ping(Duration::from_secs(5)).await.unwrap();
        probe.reset().await;
        let sent = fleet.commands();
        assert_eq!(sent.len(), 2);
        assert_eq!(id(&sent[0].1), ScriptId::BootId);
        assert_eq!(sent[1].1.id, None, "the ping is the transport's own probe");
        assert_eq!(link.resets.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
