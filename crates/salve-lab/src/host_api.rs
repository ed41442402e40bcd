//! The seam between the lab's protocol front ends and its simulated hosts.
//!
//! A front end (WinRM server, SSH ForceCommand) authenticates a client, then starts commands
//! with [`SimHost::spawn`] and relays stdin/stdout/stderr/exit code. It never looks inside the
//! host state. The simulation decides what a command does, when the host is down (rebooting,
//! unreachable) and which network faults apply, and records everything in the fleet's state log.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Stdin sent to a running command (WS-Man `Send`, or SSH channel data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdinChunk {
    pub data: Vec<u8>,
    /// The client closed stdin after this chunk.
    pub eof: bool,
}

/// Output of a running command, in order. `Exit` is always the last message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessOutput {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(i32),
}

/// A command started on a simulated host.
#[derive(Debug)]
pub struct LabProcess {
    pub stdin: mpsc::UnboundedSender<StdinChunk>,
    pub output: mpsc::UnboundedReceiver<ProcessOutput>,
    /// Cancel to terminate the command (WS-Man `Signal terminate`/`ctrl_c`, shell deleted,
    /// connection dropped). The process then sends `Exit` promptly.
    pub kill: CancellationToken,
}

/// Network-level faults a front end must apply to one host (from the scenario file).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetFaults {
    /// Extra delay before answering each request.
    pub latency: Duration,
    /// Refuse every authentication attempt (the scenario's "wrong credentials").
    pub reject_auth: bool,
    /// Break TLS: the HTTPS listener presents a certificate for another name / expired one.
    pub bad_tls: bool,
    /// Drop the TCP connection in the middle of the Nth command's output (1-based), once.
    pub drop_mid_command: Option<u32>,
    /// Answer every Create with the quota fault, as if MaxShellsPerUser were exhausted.
    pub quota_exhausted: bool,
}

/// A protocol-level happening, recorded in the fleet's state log by the front end.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProtocolEvent {
    /// A client authenticated (`method`: basic, ntlm); NTLM counts one per handshake.
    Authenticated {
        method: String,
        user: String,
    },
    AuthFailed {
        method: String,
        user: String,
    },
    ShellCreated {
        shell_id: String,
    },
    ShellDeleted {
        shell_id: String,
    },
    /// A shell was removed by the idle timeout (a leaked shell).
    ShellExpired {
        shell_id: String,
    },
    CommandStarted {
        shell_id: String,
        command_id: String,
    },
    CommandSignalled {
        shell_id: String,
        command_id: String,
        signal: String,
    },
    Fault {
        action: String,
        code: String,
    },
    ConnectionDropped {
        reason: String,
    },
}

/// What a front end needs from one simulated host.
pub trait SimHost: Send + Sync + 'static {
    /// The host's inventory name.
    fn name(&self) -> &str;
    /// User name and password the host accepts (the lab's credentials).
    fn credentials(&self) -> (&str, &str);
    /// Start a command as Windows would: `command` is WS-Man's `rsp:Command` (e.g.
    /// `powershell.exe`), `arguments` its `rsp:Arguments` in order. Over SSH the front end
    /// splits `SSH_ORIGINAL_COMMAND` into the same shape.
    fn spawn(&self, command: &str, arguments: &[String]) -> LabProcess;
    /// [`SimHost::spawn`] inside a WinRM shell, whose processes together may use at most
    /// `max_memory_mb` (MaxMemoryPerShellMB); a host that does not model memory ignores it.
    fn spawn_in_shell(
        &self,
        command: &str,
        arguments: &[String],
        max_memory_mb: u64,
    ) -> LabProcess {
        let _ = max_memory_mb;
        self.spawn(command, arguments)
    }
    /// Whether the host accepts connections now (false while rebooting or unreachable).
    fn accepting(&self) -> bool;
    /// Boot counter; it changes on every reboot, and front ends then drop the host's open
    /// connections and shells, as a real reboot does.
    fn boot_watch(&self) -> watch::Receiver<u64>;
    /// Counter of WinRM service restarts that are not reboots (Exchange Setup restarts WinRM
    /// mid-install); the WinRM front end drops its shells, and their processes, when it
    /// changes. `None`: this host never restarts WinRM on its own.
    fn winrm_restarts(&self) -> Option<watch::Receiver<u64>> {
        None
    }
    /// Whether the host's WinRM service takes connections now.
    fn winrm_accepting(&self) -> bool {
        self.accepting()
    }
    fn faults(&self) -> NetFaults;
    fn record(&self, event: ProtocolEvent);
}
