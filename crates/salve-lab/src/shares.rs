//! File shares and who may read them, as a Windows file server decides.
//!
//! Windows rules modelled here (the share's permissions and the caller's network identity):
//! - A process reaches a share as its logon's network identity. A WinRM or SSH logon (NTLM,
//!   Kerberos without delegation, a key) is a network logon and holds no credentials for a
//!   second machine: "Access is denied" (the double hop). A scheduled task registered with an
//!   account's password has that account's credentials. SYSTEM would reach it as the computer
//!   account, which the lab's shares never admit.
//! - An explicit connection to the share (`New-PSDrive -Credential`, `net use \\server\share
//!   /user:`) authenticates as the account given, whatever the process runs as; a wrong password
//!   fails as Windows words it ("The user name or password is incorrect").
//! - A share whose permissions name its readers admits only those accounts ("Access to the path
//!   ... is denied." for anyone else). A share the scenario does not list admits every domain
//!   account (read for Domain Users), which is how the lab's `\\lab-repo\exchange` starts.

use serde::{Deserialize, Serialize};

use salve_contract::share::share_root;

/// A share whose permissions name who may read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareAcl {
    /// `\\server\share`.
    pub path: String,
    /// The accounts granted read (`LAB\svc-pkgread`).
    pub read: Vec<String>,
}

/// A domain account other than the lab's own logon account, with its password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// The fleet's file shares with permissions, and the domain's accounts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shares {
    #[serde(default)]
    pub acls: Vec<ShareAcl>,
    #[serde(default)]
    pub accounts: Vec<Account>,
}

/// An explicit connection a process made to a share, with the account and password it gave.
#[derive(Clone, PartialEq, Eq)]
pub struct ShareLogon {
    pub share: String,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for ShareLogon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareLogon")
            .field("share", &self.share)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Who a process is on the network.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The logon's account when the logon holds network credentials; `None` for a network
    /// logon (WinRM, SSH) or SYSTEM.
    pub account: Option<&'a str>,
    /// A connection the process made to a share with explicit credentials.
    pub explicit: Option<&'a ShareLogon>,
}

impl Shares {
    /// Read the file at `path` as `caller` (`(user, password)` is the lab's own account, which
    /// is a domain account too): `Ok` for a local path or a share that admits the caller,
    /// otherwise Windows' error.
    pub fn read(
        &self,
        path: &str,
        caller: Caller<'_>,
        lab_account: (&str, &str),
    ) -> Result<(), String> {
        let Some(root) = share_root(path) else {
            return Ok(());
        };
        let explicit = caller
            .explicit
            .filter(|l| l.share.eq_ignore_ascii_case(root));
        let who = match (explicit, caller.account) {
            (Some(logon), _) => {
                let known = std::iter::once(lab_account)
                    .chain(
                        self.accounts
                            .iter()
                            .map(|a| (a.user.as_str(), a.password.as_str())),
                    )
                    .any(|(u, p)| u.eq_ignore_ascii_case(&logon.user) && p == logon.password);
                if !known {
                    return Err(format!(
                        "New-PSDrive : The user name or password is incorrect ({root} as {})",
                        logon.user
                    ));
                }
                logon.user.as_str()
            }
            (None, Some(account)) => account,
            (None, None) => {
                return Err(format!(
                    "Copy-Item : Access to the path '{path}' is denied. (this logon has no \
                     credentials for another machine: the double hop)"
                ));
            }
        };
        match self.acls.iter().find(|a| a.path.eq_ignore_ascii_case(root)) {
            Some(acl) if !acl.read.iter().any(|r| r.eq_ignore_ascii_case(who)) => Err(format!(
                "Copy-Item : Access to the path '{path}' is denied. ({root} grants read to {}, \
                 not to {who})",
                acl.read.join(", ")
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: (&str, &str) = ("salve-lab", "pw");

    fn shares() -> Shares {
        Shares {
            acls: vec![ShareAcl {
                path: "\\\\fs01\\restricted".into(),
                read: vec!["LAB\\svc-pkgread".into()],
            }],
            accounts: vec![Account {
                user: "LAB\\svc-pkgread".into(),
                password: "read-pw".into(),
            }],
        }
    }

    fn logon(password: &str) -> ShareLogon {
        ShareLogon {
            share: "\\\\fs01\\restricted".into(),
            user: "LAB\\svc-pkgread".into(),
            password: password.into(),
        }
    }

    #[test]
    fn a_share_admits_its_readers_and_the_explicit_logon_of_one() {
        let s = shares();
        let file = "\\\\fs01\\restricted\\cu.iso";
        let none = Caller {
            account: None,
            explicit: None,
        };
        let as_lab = Caller {
            account: Some("salve-lab"),
            explicit: None,
        };
        assert!(s.read(file, none, LAB).unwrap_err().contains("double hop"));
        assert!(
            s.read(file, as_lab, LAB)
                .unwrap_err()
                .contains("not to salve-lab")
        );
        assert_eq!(s.read("\\\\lab-repo\\exchange\\x.msp", as_lab, LAB), Ok(()));
        assert_eq!(s.read("C:\\salve\\x.msp", none, LAB), Ok(()));
        let good = logon("read-pw");
        let with = Caller {
            account: None,
            explicit: Some(&good),
        };
        assert_eq!(s.read(file, with, LAB), Ok(()));
        let bad = logon("nope");
        let wrong = Caller {
            account: Some("salve-lab"),
            explicit: Some(&bad),
        };
        assert!(
            s.read(file, wrong, LAB)
                .unwrap_err()
                .contains("password is incorrect")
        );
        assert!(!format!("{good:?}").contains("read-pw"));
    }
}
