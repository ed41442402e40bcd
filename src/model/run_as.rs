//! The account detached steps run as: Ansible's `become` with `become_method: runas`, from the
//! host's variables (`ansible_become_user`, `ansible_become_password`, `ansible_become_method`).
//!
//! A WinRM or SSH logon is a network logon: it holds no credentials for a second machine, so a
//! package on a file share, Active Directory and the other DAG members are out of its reach
//! (the "double hop"). A detached step registered as a scheduled task under this account logs
//! on with its password and has network credentials. Without it, detached steps run as SYSTEM.

use super::host_var::{Reader, SettingError};
use crate::secret::SecretRef;

/// `become_user` and its password (a secret reference like any password).
#[derive(Debug, Clone, PartialEq)]
pub struct RunAs {
    pub user: String,
    pub password: Option<SecretRef>,
}

/// Read the host's `become` settings; `None` when no `ansible_become_user` is set.
pub fn read(reader: &mut Reader) -> Option<RunAs> {
    if let Some((var, value)) = reader.first(&["ansible_become_method", "salve_become_method"])
        && value.as_str() != Some("runas")
    {
        reader.fail(SettingError::expected(
            var,
            "runas",
            value,
            "salve becomes another account on Windows with runas only (a scheduled task under that account); remove the variable or set it to runas",
        ));
    }
    let user = reader
        .text(&["ansible_become_user", "salve_become_user"])
        .map(|(_, v)| v)?;
    let password = reader
        .text(&[
            "ansible_become_password",
            "ansible_become_pass",
            "salve_become_password",
        ])
        .map(|(_, v)| SecretRef::parse(&v));
    Some(RunAs { user, password })
}
