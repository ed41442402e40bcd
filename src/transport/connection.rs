//! Connection settings for one host, read from its merged variables.
//!
//! Ansible's spellings are honoured so existing inventories work (`ansible_host`,
//! `ansible_port`, `ansible_user`, `ansible_password`, `ansible_connection`,
//! `ansible_winrm_transport`, `ansible_winrm_scheme`, `ansible_winrm_server_cert_validation`),
//! next to salve's own `salve_*` variables for what salve adds (CA bundles, pinning, SSH keys).

use std::path::PathBuf;

use serde_json::Value;

use crate::model::Vars;
use crate::secret::SecretRef;

/// Which transport a host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionKind {
    Winrm,
    Ssh,
    Local,
}

/// WinRM authentication method (`ansible_winrm_transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WinrmAuth {
    Ntlm,
    Basic,
    Kerberos,
    Certificate,
}

/// Everything needed to open a connection to one host.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
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

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
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
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SshOptions {
    /// Private key file (`ansible_ssh_private_key_file`).
    pub key_file: Option<PathBuf>,
    /// known_hosts file (`salve_ssh_known_hosts`, default ~/.ssh/known_hosts).
    pub known_hosts: Option<PathBuf>,
    /// `strict` (default) or `accept-new` (`salve_ssh_host_key_checking`).
    pub accept_new_host_keys: bool,
}

/// A connection variable with a value salve cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("variable `{var}` = {value}: {message}")]
pub struct ConnectionVarError {
    pub var: String,
    pub value: String,
    pub message: String,
}

fn text(vars: &Vars, names: &[&str]) -> Option<(String, String)> {
    names.iter().find_map(|n| {
        vars.get(*n).and_then(|v| match v {
            Value::String(s) => Some((n.to_string(), s.clone())),
            Value::Number(x) => Some((n.to_string(), x.to_string())),
            Value::Bool(b) => Some((n.to_string(), b.to_string())),
            _ => None,
        })
    })
}

fn bad(var: &str, value: &str, message: &str) -> ConnectionVarError {
    ConnectionVarError {
        var: var.into(),
        value: value.into(),
        message: message.into(),
    }
}

fn flag(vars: &Vars, name: &str) -> Result<bool, ConnectionVarError> {
    match vars.get(name) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if matches!(s.as_str(), "yes" | "true" | "True") => Ok(true),
        Some(Value::String(s)) if matches!(s.as_str(), "no" | "false" | "False") => Ok(false),
        Some(v) => Err(bad(name, &v.to_string(), "expected true or false")),
    }
}

impl ConnectionSpec {
    /// Read the connection settings from a host's merged variables.
    pub fn from_vars(name: &str, vars: &Vars) -> Result<Self, ConnectionVarError> {
        let kind = match text(vars, &["ansible_connection", "salve_connection"]) {
            None => ConnectionKind::Winrm,
            Some((var, v)) => match v.as_str() {
                "winrm" | "psrp" => ConnectionKind::Winrm,
                "ssh" => ConnectionKind::Ssh,
                "local" => ConnectionKind::Local,
                _ => return Err(bad(&var, &v, "expected winrm, ssh or local")),
            },
        };
        let address = text(vars, &["ansible_host", "salve_host"])
            .map(|(_, v)| v)
            .unwrap_or_else(|| name.to_string());
        let port = match text(vars, &["ansible_port", "salve_port"]) {
            None => None,
            Some((var, v)) => Some(
                v.parse::<u16>()
                    .map_err(|_| bad(&var, &v, "expected a port number 1-65535"))?,
            ),
        };
        let user =
            text(vars, &["ansible_user", "salve_user", "ansible_winrm_user"]).map(|(_, v)| v);
        let password = text(
            vars,
            &[
                "ansible_password",
                "salve_password",
                "ansible_winrm_password",
                "ansible_ssh_pass",
            ],
        )
        .map(|(_, v)| SecretRef::parse(&v));

        let auth = match text(vars, &["ansible_winrm_transport", "salve_winrm_transport"]) {
            None => WinrmAuth::Ntlm,
            Some((var, v)) => match v.to_ascii_lowercase().as_str() {
                "ntlm" | "negotiate" => WinrmAuth::Ntlm,
                "basic" | "plaintext" => WinrmAuth::Basic,
                "kerberos" => WinrmAuth::Kerberos,
                "certificate" => WinrmAuth::Certificate,
                _ => {
                    return Err(bad(
                        &var,
                        &v,
                        "expected ntlm, basic, kerberos or certificate",
                    ));
                }
            },
        };
        let https = match text(vars, &["ansible_winrm_scheme", "salve_winrm_scheme"]) {
            Some((var, v)) => match v.as_str() {
                "https" => true,
                "http" => false,
                _ => return Err(bad(&var, &v, "expected http or https")),
            },
            // Ansible's rule: port 5985 means http, anything else (default 5986) https.
            None => port != Some(5985),
        };
        let verify_tls = match text(
            vars,
            &[
                "ansible_winrm_server_cert_validation",
                "salve_winrm_server_cert_validation",
            ],
        ) {
            None => true,
            Some((var, v)) => match v.as_str() {
                "validate" => true,
                "ignore" => false,
                _ => return Err(bad(&var, &v, "expected validate or ignore")),
            },
        };
        let operation_timeout_secs = match text(vars, &["ansible_winrm_operation_timeout_sec"]) {
            None => 20,
            Some((var, v)) => v
                .parse()
                .map_err(|_| bad(&var, &v, "expected a whole number of seconds"))?,
        };
        let path = |names: &[&str]| text(vars, names).map(|(_, v)| PathBuf::from(v));
        let local_shell = match text(vars, &["salve_local_shell"]) {
            None => vec!["pwsh".to_string()],
            Some((_, v)) => v.split_whitespace().map(str::to_string).collect(),
        };
        let accept_new_host_keys = match text(vars, &["salve_ssh_host_key_checking"]) {
            None => false,
            Some((var, v)) => match v.as_str() {
                "strict" => false,
                "accept-new" => true,
                _ => return Err(bad(&var, &v, "expected strict or accept-new")),
            },
        };
        Ok(ConnectionSpec {
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
                ca_file: path(&["salve_winrm_ca_file", "ansible_winrm_ca_trust_path"]),
                pin_sha256: text(vars, &["salve_winrm_cert_sha256"]).map(|(_, v)| v),
                cert_pem: path(&["ansible_winrm_cert_pem", "salve_winrm_cert_pem"]),
                key_pem: path(&["ansible_winrm_cert_key_pem", "salve_winrm_cert_key_pem"]),
                allow_basic_http: flag(vars, "salve_winrm_allow_basic_http")?,
                operation_timeout_secs,
                proxy: text(vars, &["salve_winrm_proxy"]).map(|(_, v)| v),
            },
            ssh: SshOptions {
                key_file: path(&["ansible_ssh_private_key_file", "salve_ssh_key_file"]),
                known_hosts: path(&["salve_ssh_known_hosts"]),
                accept_new_host_keys,
            },
            local_shell,
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: Value) -> Vars {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn ansible_defaults_are_ntlm_over_http() {
        let s = ConnectionSpec::from_vars("ex01", &vars(json!({"ansible_port": 5985}))).unwrap();
        assert_eq!(
            (s.kind, s.winrm.auth, s.winrm.https),
            (ConnectionKind::Winrm, WinrmAuth::Ntlm, false)
        );
        assert_eq!(s.endpoint(), "ex01:5985");
    }

    #[test]
    fn basic_on_5986_is_https() {
        let s = ConnectionSpec::from_vars(
            "ex01",
            &vars(json!({"ansible_host": "127.0.0.2", "ansible_port": "5986", "ansible_winrm_transport": "basic",
                          "ansible_winrm_server_cert_validation": "ignore", "ansible_password": "env:PW"})),
        )
        .unwrap();
        assert!(s.winrm.https && !s.winrm.verify_tls);
        assert_eq!(s.password, Some(SecretRef::Env("PW".into())));
        assert_eq!(s.endpoint(), "127.0.0.2:5986");
    }

    #[test]
    fn rejects_unknown_values_with_the_variable_name() {
        let e = ConnectionSpec::from_vars("x", &vars(json!({"ansible_connection": "telnet"})))
            .unwrap_err();
        assert_eq!(e.var, "ansible_connection");
    }
}
