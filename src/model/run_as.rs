//! The account detached steps run as: Ansible's `become` with `become_method: runas`, from the
//! host's variables (`ansible_become_user`, `ansible_become_password`, `ansible_become_method`).
//!
//! A WinRM or SSH logon is a network logon: it holds no credentials for a second machine, so a
//! package on a file share, Active Directory and the other DAG members are out of its reach
//! (the "double hop"). A detached step registered as a scheduled task under this account logs
//! on with its password and has network credentials. Without it, detached steps run as SYSTEM.

use super::host_var::{Reader, SettingError};
use super::playbook::Become;
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

/// Why a task's `become` cannot be honoured on a host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BecomeError {
    #[error(
        "become_user `{user}` has no password on this host: set ansible_become_password (a \
         secret reference) for it in the inventory"
    )]
    NoPassword { user: String },
    #[error(
        "become: true names no account: set become_user on the task or play, or \
         ansible_become_user in the inventory"
    )]
    NoUser,
}

/// The account a task's detached steps run as on a host: the play's, block's or task's
/// `become`/`become_user` (Ansible's keywords, inherited inward) over the host's inventory
/// setting. `become: false` runs them as SYSTEM; a `become_user` of the task takes the host's
/// become password (Ansible's `ansible_become_password`); without any `become` keyword the
/// host's setting holds.
pub fn for_task(host: Option<&RunAs>, become_: &Become) -> Result<Option<RunAs>, BecomeError> {
    match (become_.enabled, &become_.user) {
        (Some(false), _) => Ok(None),
        (_, Some(user)) => match host.and_then(|h| h.password.clone()) {
            Some(password) => Ok(Some(RunAs {
                user: user.clone(),
                password: Some(password),
            })),
            None => Err(BecomeError::NoPassword { user: user.clone() }),
        },
        (Some(true), None) => host.cloned().map(Some).ok_or(BecomeError::NoUser),
        (None, None) => Ok(host.cloned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> RunAs {
        RunAs {
            user: "CONTOSO\\svc-patch".into(),
            password: Some(SecretRef::parse("env:PW")),
        }
    }

    fn become_(enabled: Option<bool>, user: Option<&str>) -> Become {
        Become {
            enabled,
            user: user.map(Into::into),
        }
    }

    #[test]
    fn a_tasks_become_overrides_the_hosts_account() {
        let h = host();
        assert_eq!(
            for_task(Some(&h), &become_(None, None)),
            Ok(Some(h.clone()))
        );
        assert_eq!(for_task(Some(&h), &become_(Some(false), None)), Ok(None));
        let other = for_task(
            Some(&h),
            &become_(Some(true), Some("CONTOSO\\schema-admin")),
        );
        assert_eq!(other.unwrap().unwrap().user, "CONTOSO\\schema-admin");
        assert_eq!(
            for_task(None, &become_(Some(true), None)),
            Err(BecomeError::NoUser)
        );
        assert!(matches!(
            for_task(None, &become_(None, Some("x"))),
            Err(BecomeError::NoPassword { .. })
        ));
        assert_eq!(for_task(None, &become_(None, None)), Ok(None));
    }
}
