//! Where salve serves packages itself, for hosts that can reach neither a URL nor a share:
//! `salve_package_server` in the inventory.
//!
//! ```yaml
//! salve_package_server:
//!   url: https://salve-ctl.contoso.com:8443   # what the hosts connect to
//!   listen: 0.0.0.0:8443                      # optional; default: every address, url's port
//!   certificate: /etc/salve/packages.crt      # PEM chain; its SHA-256 is pinned in each step
//!   key: /etc/salve/packages.key              # PEM private key
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::Value;

use super::host_var::{Reader, SettingError};

/// The variable.
pub const VAR: &str = "salve_package_server";

/// A package server's settings, as the hosts that use it name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PackageServerSpec {
    /// `https://name:port`, without a trailing slash.
    pub url: String,
    pub listen: SocketAddr,
    pub certificate: PathBuf,
    pub key: PathBuf,
}

const HINT: &str = "salve_package_server is a mapping: url (https://name:port the hosts reach), certificate and key (PEM files), and optionally listen (address:port)";

/// Read `salve_package_server`; `None` when it is not set.
pub fn read(reader: &mut Reader) -> Option<PackageServerSpec> {
    let (var, value) = reader.first(&[VAR])?;
    let text = |k: &str| value.get(k).and_then(Value::as_str).map(str::trim);
    let url = text("url").map(|u| u.trim_end_matches('/').to_string());
    let port = url
        .as_deref()
        .and_then(|u| u.strip_prefix("https://"))
        .map(|rest| rest.split('/').next().unwrap_or_default())
        .and_then(|authority| authority.rsplit_once(':'))
        .and_then(|(_, p)| p.parse::<u16>().ok());
    let listen = match text("listen") {
        Some(l) => l.parse::<SocketAddr>().ok(),
        None => port.map(|p| SocketAddr::from(([0, 0, 0, 0], p))),
    };
    let known = ["url", "listen", "certificate", "key"];
    let extra = value
        .as_object()
        .is_some_and(|m| m.keys().any(|k| !known.contains(&k.as_str())));
    match (url, port, listen, text("certificate"), text("key")) {
        (Some(url), Some(_), Some(listen), Some(cert), Some(key)) if !extra => {
            Some(PackageServerSpec {
                url,
                listen,
                certificate: PathBuf::from(cert),
                key: PathBuf::from(key),
            })
        }
        _ => {
            reader.fail(SettingError::expected(
                var,
                "a mapping with url: https://name:port, certificate and key",
                value,
                HINT,
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read_from(v: Value) -> (Option<PackageServerSpec>, usize) {
        let vars = json!({ VAR: v });
        let vars = vars.as_object().unwrap();
        let mut reader = Reader::new(vars);
        let spec = read(&mut reader);
        (spec, reader.into_errors().len())
    }

    #[test]
    fn a_package_server_needs_an_https_url_with_a_port_a_certificate_and_a_key() {
        let (spec, errors) = read_from(json!({"url": "https://ctl.contoso.test:8443/",
            "certificate": "/etc/salve/p.crt", "key": "/etc/salve/p.key"}));
        let spec = spec.unwrap();
        assert_eq!(errors, 0);
        assert_eq!(spec.url, "https://ctl.contoso.test:8443");
        assert_eq!(spec.listen, "0.0.0.0:8443".parse().unwrap());
        let (spec, _) = read_from(
            json!({"url": "https://127.0.0.1:9443", "listen": "127.0.0.1:9443",
            "certificate": "c", "key": "k"}),
        );
        assert_eq!(spec.unwrap().listen, "127.0.0.1:9443".parse().unwrap());
        for bad in [
            json!("https://ctl:8443"),
            json!({"url": "http://ctl:8443", "certificate": "c", "key": "k"}),
            json!({"url": "https://ctl", "certificate": "c", "key": "k"}),
            json!({"url": "https://ctl:8443", "certificate": "c"}),
            json!({"url": "https://ctl:8443", "certificate": "c", "key": "k", "port": 1}),
        ] {
            assert_eq!(read_from(bad.clone()), (None, 1), "{bad}");
        }
    }
}
