//! Transports: how salve reaches a host. One small object-safe trait, [`Transport`], with
//! implementations for WinRM and SSH (real hosts), `local` (a child process on the controller)
//! and a scripted [`fake`] for unit tests.
//!
//! A transport runs a [`Script`] with a timeout and a cancellation token, streaming output as it
//! arrives, and reports failures as a classified [`TransportError`] with a one-line fix hint.
//! The runner keeps one transport per host for a whole run (its per-host link, a
//! [`crate::modules::HostLink`]) and re-opens it
//! after a reboot.

pub mod clixml;
pub mod dispatch;
mod error;
pub mod fake;
pub mod kerberos;
pub mod local;
pub mod ssh;
mod streams;
pub mod winrm;

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::script::Script;

pub use crate::model::connection::{ConnectionKind, ConnectionSpec};
pub use error::{Cause, TransportError};

/// A chunk of output as it arrives from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputChunk {
    Stdout(String),
    Stderr(String),
}

/// What a finished script produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptOutput {
    pub exit_code: i32,
    pub stdout: String,
    /// Stderr as text (CLIXML already decoded to its messages).
    pub stderr: String,
}

/// A request to run a script.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub script: Script,
    /// Hard wall-clock limit; on expiry the command is signalled and its shell cleaned up.
    pub timeout: Duration,
    /// Cancelled on Ctrl-C or when the runner gives up on the host; the transport must stop
    /// the remote command and release its resources before returning.
    pub cancel: CancellationToken,
    /// Where to stream output as it arrives (optional).
    pub output: Option<mpsc::UnboundedSender<OutputChunk>>,
}

impl RunRequest {
    pub fn new(script: Script, timeout: Duration) -> Self {
        Self {
            script,
            timeout,
            cancel: CancellationToken::new(),
            output: None,
        }
    }
}

/// A live connection to one host.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Run a script to completion, timeout or cancellation.
    async fn run(&self, request: RunRequest) -> Result<ScriptOutput, TransportError>;

    /// Cheap liveness probe used after reboots: returns the host's boot id when it answers.
    async fn probe(&self, timeout: Duration) -> Result<(), TransportError> {
        self.run(RunRequest::new(
            Script::raw("Write-Output 'salve-probe'"),
            timeout,
        ))
        .await
        .map(|_| ())
    }

    /// Drop the session (after a reboot, the next `run` re-opens it).
    async fn reset(&self) {}

    /// Release every remote resource (shells, sessions). Called once at the end of a run.
    async fn close(&self) {}
}

/// Opens transports from connection specs. The runner holds one per run; tests swap in fakes.
#[async_trait]
pub trait Connector: Send + Sync {
    async fn connect(
        &self,
        spec: &ConnectionSpec,
    ) -> Result<std::sync::Arc<dyn Transport>, TransportError>;
}
