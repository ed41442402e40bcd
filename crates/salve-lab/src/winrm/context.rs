//! What a WinRM listener knows about its host: the listener's configuration (scheme, allowed
//! authentication, quotas, envelope size, as `winrm get winrm/config` would show) and the
//! per-host state every connection shares (shells, operations in progress, the access log).
//! The server, authentication and shell operations all read it; it depends on none of them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::StatusCode;

use super::kerberos::KerberosService;
use super::shell::{Shell, lock};
use super::soap::Fault;
use super::tls::HostTls;
use crate::host_api::{ProtocolEvent, SimHost};

/// Windows' default `MaxEnvelopeSizekb` (500 KB) on the service side.
pub const DEFAULT_MAX_ENVELOPE: usize = 500 * 1024;

/// HTTP or HTTPS (with the host's certificate).
#[derive(Debug, Clone)]
pub enum Scheme {
    Http,
    Https(HostTls),
}

/// Per-user quotas of the WinRM service (`winrm get winrm/config/service` and `.../winrs`).
#[derive(Debug, Clone)]
pub struct Quotas {
    pub max_shells_per_user: usize,
    pub max_concurrent_operations_per_user: usize,
    pub idle_timeout: Duration,
    /// MaxMemoryPerShellMB: the memory all processes of one shell may use together.
    pub max_memory_per_shell_mb: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            max_shells_per_user: 30,
            max_concurrent_operations_per_user: 1500,
            idle_timeout: Duration::from_secs(7200),
            max_memory_per_shell_mb: 1024,
        }
    }
}

/// How a listener behaves; defaults are a stock Windows Server listener.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub scheme: Scheme,
    pub allow_basic: bool,
    pub allow_ntlm: bool,
    /// Kerberos through Negotiate, when the host has an SPN (`HTTP/<fqdn>`) and its key;
    /// `None` for a host outside a domain (Windows then offers only NTLM under Negotiate).
    pub kerberos: Option<KerberosService>,
    /// Client certificate subjects (UPNs) mapped to the host's account over HTTPS
    /// (`WSMan:\localhost\ClientCertificate`); empty: certificate authentication maps nobody.
    pub mapped_certificates: Vec<String>,
    /// Windows' `AllowUnencrypted`: when false, HTTP requests must be sealed (NTLM) and Basic
    /// over HTTP is refused.
    pub allow_unencrypted: bool,
    /// Status for a plaintext body on a connection that must encrypt (Windows: 500 or 401).
    pub plaintext_refusal: StatusCode,
    pub quotas: Quotas,
    /// The service's MaxEnvelopeSize in bytes; replies never exceed the smaller of this and
    /// the client's MaxEnvelopeSize.
    pub max_envelope_size: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            scheme: Scheme::Http,
            allow_basic: true,
            allow_ntlm: true,
            kerberos: None,
            mapped_certificates: Vec::new(),
            allow_unencrypted: false,
            plaintext_refusal: StatusCode::INTERNAL_SERVER_ERROR,
            quotas: Quotas::default(),
            max_envelope_size: DEFAULT_MAX_ENVELOPE,
        }
    }
}

/// One request served, for per-host access statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEntry {
    /// The WS-Addressing action's last segment (`Create`, `Receive`...), or `-` before SOAP.
    pub action: String,
    pub status: u16,
    /// The client's address and port: one per TCP connection, so the entries of one
    /// connection, and how many connections a client opened, can be told apart.
    pub peer: SocketAddr,
}

/// Per-host state shared by the host's connections.
pub(super) struct HostCtx {
    pub(super) host: Arc<dyn SimHost>,
    pub(super) config: ListenerConfig,
    /// The endpoint URL clients use.
    pub(super) address: String,
    /// The machine name in faults.
    pub(super) machine: String,
    pub(super) shells: Mutex<HashMap<String, Arc<Shell>>>,
    /// Operations in progress per user (MaxConcurrentOperationsPerUser).
    pub(super) operations: Mutex<HashMap<String, usize>>,
    pub(super) commands_started: AtomicU32,
    pub(super) dropped_mid_command: AtomicBool,
    pub(super) access_log: Mutex<Vec<AccessEntry>>,
}

impl HostCtx {
    /// Remove every shell and kill its commands (reboot, shutdown).
    pub(super) fn drop_all_shells(&self) {
        let shells: Vec<_> = lock(&self.shells).drain().map(|(_, s)| s).collect();
        for shell in shells {
            shell.kill_all();
        }
    }

    /// Remove shells idle for `idle` or longer, recording each as expired.
    pub(super) fn expire_idle_shells(&self, idle: Duration) {
        let mut expired = Vec::new();
        lock(&self.shells).retain(|_, shell| {
            let keep = shell.idle_for() < idle;
            if !keep {
                expired.push(shell.clone());
            }
            keep
        });
        for shell in expired {
            shell.kill_all();
            self.host.record(ProtocolEvent::ShellExpired {
                shell_id: shell.id.clone(),
            });
        }
    }

    pub(super) fn log(&self, peer: SocketAddr, action: &str, status: StatusCode) {
        let action = action.rsplit('/').next().unwrap_or(action).to_string();
        lock(&self.access_log).push(AccessEntry {
            action,
            status: status.as_u16(),
            peer,
        });
    }

    pub(super) fn fault(
        &self,
        action: &str,
        relates_to: &str,
        fault: Fault,
    ) -> (StatusCode, String) {
        self.host.record(ProtocolEvent::Fault {
            action: action.to_string(),
            code: fault.wsman_code.to_string(),
        });
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            fault.to_xml(relates_to, &self.machine),
        )
    }
}
