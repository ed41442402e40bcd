//! Connection settings for one host, read from its merged variables when the inventory is
//! loaded (see [`super::settings`]); the transports open connections from them.
//!
//! Ansible's spellings are honoured so existing inventories work (`ansible_host`,
//! `ansible_port`, `ansible_user`, `ansible_password`, `ansible_connection`,
//! `ansible_winrm_transport`, `ansible_winrm_scheme`, `ansible_winrm_server_cert_validation`),
//! next to salve's own `salve_*` variables for what salve adds (CA bundles, pinning, SSH keys).

use std::path::PathBuf;

use super::host_var::Reader;
use crate::secret::SecretRef;

/// Which transport a host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionKind {
    Winrm,
    Ssh,
    Local,
}

/// WinRM authentication method (`ansible_winrm_transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WinrmAuth {
    Ntlm,
    Basic,
    Kerberos,
    /// Windows' Negotiate: Kerberos when the host is named by its DNS name (or a Kerberos host
    /// name override is set), NTLM when it is reached by address (Kerberos needs names).
    Negotiate,
    Certificate,
}

/// Where a Kerberos ticket comes from (`ansible_winrm_kinit_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KinitMode {
    /// Get one from `ansible_user` and `ansible_password` (Ansible's `managed`, its default
    /// when a password is set).
    Managed,
    /// Use the credential cache `kinit` filled (`KRB5CCNAME`; Ansible's `manual`).
    Manual,
}

/// Everything needed to open a connection to one host.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionSpec {
    /// Inventory name, used in messages.
    pub name: String,
    pub kind: ConnectionKind,
    /// Address to connect to (`ansible_host`, else the inventory name).
    pub address: String,
    /// Explicit port; `None` means the transport default (5985/5986 for WinRM, 22 for SSH).
    pub port: Option<u16>,
    pub user: Option<String>,
    pub password: Option<SecretRef>,
    pub winrm: WinrmOptions,
    pub ssh: SshOptions,
    /// Program used by the `local` transport (`salve_local_shell`, default `pwsh`).
    pub local_shell: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WinrmOptions {
    pub auth: WinrmAuth,
    /// `https` or `http`.
    pub https: bool,
    /// TLS verification (`ansible_winrm_server_cert_validation: ignore` turns it off).
    pub verify_tls: bool,
    /// Extra CA bundle (`salve_winrm_ca_file` / `ansible_winrm_ca_trust_path`).
    pub ca_file: Option<PathBuf>,
    /// Pinned server certificate SHA-256 (`salve_winrm_cert_sha256`).
    pub pin_sha256: Option<String>,
    /// Client certificate and key for certificate auth.
    pub cert_pem: Option<PathBuf>,
    pub key_pem: Option<PathBuf>,
    /// Allow Basic over plain HTTP (`salve_winrm_allow_basic_http`); refused by default.
    pub allow_basic_http: bool,
    /// WS-Man OperationTimeout in seconds (`ansible_winrm_operation_timeout_sec`).
    pub operation_timeout_secs: u64,
    /// Use environment proxies (`salve_winrm_proxy`: URL); none unless configured.
    pub proxy: Option<String>,
    /// Host name of the Kerberos SPN `HTTP/<name>` when it is not `ansible_host`
    /// (`ansible_winrm_kerberos_hostname_override`).
    pub kerberos_hostname: Option<String>,
    /// Where the Kerberos ticket comes from (`ansible_winrm_kinit_mode`).
    pub kinit_mode: KinitMode,
}

impl WinrmOptions {
    /// The method actually used on `address`: Negotiate resolves to Kerberos for a DNS name
    /// (or with a Kerberos host name override), to NTLM for an IP address, as Windows'
    /// Negotiate package falls back to NTLM when no SPN can be named.
    pub fn effective_auth(&self, address: &str) -> WinrmAuth {
        match self.auth {
            WinrmAuth::Negotiate if self.kerberos_hostname.is_none() && is_ip_address(address) => {
                WinrmAuth::Ntlm
            }
            WinrmAuth::Negotiate => WinrmAuth::Kerberos,
            other => other,
        }
    }
}

/// Whether `address` is an IPv4 or IPv6 address (with or without brackets), not a name.
pub fn is_ip_address(address: &str) -> bool {
    address
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok()
}

#[derive(Debug, Clone, PartialEq)]
pub struct SshOptions {
    /// Private key file (`ansible_ssh_private_key_file`).
    pub key_file: Option<PathBuf>,
    /// known_hosts file (`salve_ssh_known_hosts`, default ~/.ssh/known_hosts).
    pub known_hosts: Option<PathBuf>,
    /// `strict` (default) or `accept-new` (`salve_ssh_host_key_checking`).
    pub accept_new_host_keys: bool,
}

impl ConnectionSpec {
    /// Read the connection settings from a host's merged variables; every unusable value is
    /// recorded in `reader` (and its setting takes the default).
    pub(super) fn read(name: &str, reader: &mut Reader) -> Self {
        let kind = reader
            .parsed(
                &["ansible_connection", "salve_connection"],
                "winrm, ssh or local",
                "`winrm` (the default) for WinRM, `ssh` for OpenSSH on Windows, `local` to run on this machine",
                |v| match v {
                    "winrm" | "psrp" => Some(ConnectionKind::Winrm),
                    "ssh" => Some(ConnectionKind::Ssh),
                    "local" => Some(ConnectionKind::Local),
                    _ => None,
                },
            )
            .unwrap_or(ConnectionKind::Winrm);
        let address = reader
            .text(&["ansible_host", "salve_host"])
            .map(|(_, v)| v)
            .unwrap_or_else(|| name.to_string());
        let port = reader.parsed(
            &["ansible_port", "salve_port"],
            "a port number 1-65535",
            "leave the port out for the transport's default (5985 or 5986 for WinRM, 22 for SSH)",
            |v| v.parse::<u16>().ok().filter(|p| *p != 0),
        );
        let user = reader
            .text(&["ansible_user", "salve_user", "ansible_winrm_user"])
            .map(|(_, v)| v);
        let password = reader
            .text(&[
                "ansible_password",
                "salve_password",
                "ansible_winrm_password",
                "ansible_ssh_pass",
            ])
            .map(|(_, v)| SecretRef::parse(&v));

        let auth = reader
            .parsed(
                &["ansible_winrm_transport", "salve_winrm_transport"],
                "ntlm, negotiate, basic, kerberos or certificate",
                "`ntlm` (the default) works with a local or domain account; `kerberos` with a domain account",
                |v| match v.to_ascii_lowercase().as_str() {
                    "ntlm" => Some(WinrmAuth::Ntlm),
                    "negotiate" => Some(WinrmAuth::Negotiate),
                    "basic" | "plaintext" => Some(WinrmAuth::Basic),
                    "kerberos" => Some(WinrmAuth::Kerberos),
                    "certificate" => Some(WinrmAuth::Certificate),
                    _ => None,
                },
            )
            .unwrap_or(WinrmAuth::Ntlm);
        let https = reader
            .parsed(
                &["ansible_winrm_scheme", "salve_winrm_scheme"],
                "http or https",
                "leave the scheme out to use https, or http on port 5985",
                |v| match v {
                    "https" => Some(true),
                    "http" => Some(false),
                    _ => None,
                },
            )
            // Ansible's rule: port 5985 means http, anything else (default 5986) https.
            .unwrap_or(port != Some(5985));
        let verify_tls = reader
            .parsed(
                &[
                    "ansible_winrm_server_cert_validation",
                    "salve_winrm_server_cert_validation",
                ],
                "validate or ignore",
                "`validate` (the default) checks the server's certificate; prefer a CA file or a pin to `ignore`",
                |v| match v {
                    "validate" => Some(true),
                    "ignore" => Some(false),
                    _ => None,
                },
            )
            .unwrap_or(true);
        let operation_timeout_secs = reader
            .parsed(
                &["ansible_winrm_operation_timeout_sec"],
                "a whole number of seconds",
                "the default is 20 seconds",
                |v| v.parse().ok(),
            )
            .unwrap_or(20);
        let mut path = |names: &[&'static str]| reader.text(names).map(|(_, v)| PathBuf::from(v));
        let ca_file = path(&["salve_winrm_ca_file", "ansible_winrm_ca_trust_path"]);
        let cert_pem = path(&["ansible_winrm_cert_pem", "salve_winrm_cert_pem"]);
        let key_pem = path(&["ansible_winrm_cert_key_pem", "salve_winrm_cert_key_pem"]);
        let key_file = path(&["ansible_ssh_private_key_file", "salve_ssh_key_file"]);
        let known_hosts = path(&["salve_ssh_known_hosts"]);
        let local_shell = match reader.text(&["salve_local_shell"]) {
            None => vec!["pwsh".to_string()],
            Some((_, v)) => v.split_whitespace().map(str::to_string).collect(),
        };
        let kinit_mode = reader
            .parsed(
                &["ansible_winrm_kinit_mode"],
                "managed or manual",
                "`managed` gets a Kerberos ticket with ansible_user and ansible_password; `manual` uses the ticket `kinit` put in KRB5CCNAME",
                |v| match v {
                    "managed" => Some(KinitMode::Managed),
                    "manual" => Some(KinitMode::Manual),
                    _ => None,
                },
            )
            .unwrap_or(if password.is_some() {
                KinitMode::Managed
            } else {
                KinitMode::Manual
            });
        let kerberos_hostname = reader
            .text(&["ansible_winrm_kerberos_hostname_override"])
            .map(|(_, v)| v);
        let accept_new_host_keys = reader
            .parsed(
                &["salve_ssh_host_key_checking"],
                "strict or accept-new",
                "`strict` (the default) refuses hosts not in known_hosts; `accept-new` records them on first use",
                |v| match v {
                    "strict" => Some(false),
                    "accept-new" => Some(true),
                    _ => None,
                },
            )
            .unwrap_or(false);
        ConnectionSpec {
            name: name.to_string(),
            kind,
            address,
            port,
            user,
            password,
            winrm: WinrmOptions {
                auth,
                https,
                verify_tls,
                ca_file,
                pin_sha256: reader.text(&["salve_winrm_cert_sha256"]).map(|(_, v)| v),
                cert_pem,
                key_pem,
                allow_basic_http: reader.flag("salve_winrm_allow_basic_http"),
                operation_timeout_secs,
                proxy: reader.text(&["salve_winrm_proxy"]).map(|(_, v)| v),
                kerberos_hostname,
                kinit_mode,
            },
            ssh: SshOptions {
                key_file,
                known_hosts,
                accept_new_host_keys,
            },
            local_shell,
        }
    }

    /// `host:port` with the transport's default port filled in.
    pub fn endpoint(&self) -> String {
        let port = self.port.unwrap_or(match self.kind {
            ConnectionKind::Winrm if self.winrm.https => 5986,
            ConnectionKind::Winrm => 5985,
            ConnectionKind::Ssh => 22,
            ConnectionKind::Local => 0,
        });
        format!("{}:{port}", self.address)
    }
}
