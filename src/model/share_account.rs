//! The account a host's package shares are read as when a `unc:` source names none of its own:
//! `salve_share_username` and `salve_share_password` (a secret reference), the host-wide form
//! of a source's `username` and `password`.

use super::host_var::{Reader, SettingError};
use crate::secret::SecretRef;

/// A share account for every `unc:` source of a host without its own.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareLogin {
    pub user: String,
    pub password: SecretRef,
}

/// Read the host's share account; `None` when neither variable is set.
pub fn read(reader: &mut Reader) -> Option<ShareLogin> {
    let user = reader.text(&["salve_share_username"]);
    let password = reader.text(&["salve_share_password"]);
    match (user, password) {
        (None, None) => None,
        (Some((_, user)), Some((_, password))) => Some(ShareLogin {
            user,
            password: SecretRef::parse(&password),
        }),
        (Some((var, value)), None) | (None, Some((var, value))) => {
            reader.fail(SettingError::expected(
                var,
                "salve_share_username and salve_share_password together",
                &serde_json::Value::String(value),
                "the host's package shares are read as salve_share_username with \
                 salve_share_password (a secret reference such as env:NAME); set both, or neither",
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read_from(v: serde_json::Value) -> (Option<ShareLogin>, usize) {
        let mut reader = Reader::new(v.as_object().unwrap());
        let login = read(&mut reader);
        (login, reader.into_errors().len())
    }

    #[test]
    fn a_host_share_account_needs_both_variables() {
        let (login, errors) = read_from(
            json!({"salve_share_username": "CONTOSO\\svc-media", "salve_share_password": "env:PW"}),
        );
        assert_eq!(errors, 0);
        assert_eq!(
            login,
            Some(ShareLogin {
                user: "CONTOSO\\svc-media".into(),
                password: SecretRef::parse("env:PW")
            })
        );
        assert_eq!(read_from(json!({})), (None, 0));
        assert_eq!(read_from(json!({"salve_share_username": "x"})), (None, 1));
        let (_, errors) = read_from(json!({"salve_share_password": "env:PW"}));
        assert_eq!(errors, 1);
    }
}
