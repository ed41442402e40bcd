//! Exchange management from a process's logon: the rule every shipped script that runs
//! Exchange cmdlets (facts, health, verify, maintenance) meets first on a real server.
//!
//! **Windows/Exchange behaviour modelled.** Exchange's cmdlets read and write Active Directory,
//! and Exchange's own management shell reaches them through a Remote PowerShell session to the
//! server's `/PowerShell` endpoint, authenticated with Kerberos as the caller. Both are a second
//! hop: a WinRM or SSH logon (NTLM, Kerberos without delegation, a key) is a network logon that
//! holds no credentials for it. How it fails depends on how the script loads Exchange, which the
//! lab reads from the script's text, as PowerShell would run it:
//!
//! - `Connect-ExchangeServer` (from `RemoteExchange.ps1`, the supported way, as Microsoft's
//!   CSS-Exchange scripts load it): its `New-PSSession` to the server fails with WinRM's
//!   Kerberos error `0x8009030e`, "A specified logon session does not exist" (the error
//!   PowerShell remoting gives from an SSH-key or WinRM logon, e.g. PowerShell/Win32-OpenSSH
//!   issue 2100).
//! - `Add-PSSnapin Microsoft.Exchange.Management.PowerShell.SnapIn` (unsupported: it bypasses
//!   RBAC): the snap-in loads, and its first AD read binds without credentials, which AD
//!   refuses ("a successful bind must be completed", LDAP error 000004DC). The exact DSID in
//!   that text is not verified against a server.
//!
//! The AD versions the facts read over ADSI fail the same way ("An operations error
//! occurred."). A process whose logon has credentials (a scheduled task registered with an
//! account's password, see [`crate::command::Out::has_network_credentials`]) manages Exchange.

use crate::catalog::Family;
use crate::command::Out;
use crate::state::HostState;

/// How a script loads Exchange's cmdlets, read from its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    /// `. RemoteExchange.ps1` + `Connect-ExchangeServer -Auto` (Remote PowerShell, RBAC).
    RemoteShell,
    /// `Add-PSSnapin Microsoft.Exchange.Management.PowerShell.SnapIn` (local, no RBAC).
    SnapIn,
}

impl Loader {
    /// The way `body` loads Exchange, `None` when it never does.
    pub fn of(body: &str) -> Option<Loader> {
        let text = body.to_ascii_lowercase();
        if text.contains("connect-exchangeserver") {
            Some(Loader::RemoteShell)
        } else if text.contains("microsoft.exchange.management.powershell.snapin") {
            Some(Loader::SnapIn)
        } else {
            None
        }
    }
}

/// The error loading Exchange through Remote PowerShell without network credentials.
pub const REMOTE_SHELL_REFUSED: &str = "New-PSSession : [{fqdn}] Connecting to remote server \
    {fqdn} failed with the following error message : WinRM cannot process the request. The \
    following error with errorcode 0x8009030e occurred while using Kerberos authentication: A \
    specified logon session does not exist. It may already have been terminated.";

/// The error of the snap-in's first AD read without network credentials.
pub const SNAPIN_REFUSED: &str = "Active Directory operation failed on DC01. This error is not \
    retriable. Additional information: An operations error occurred. Active directory \
    response: 000004DC: LdapErr: DSID-0C090A5C, comment: In order to perform this operation a \
    successful bind must be completed on the connection., data 0, v3839";

/// ADSI's error for an LDAP read without network credentials.
pub const ADSI_REFUSED: &str = "An operations error occurred.";

/// Why the script `body`, run by this process on host `s`, cannot manage Exchange (the message
/// of the exception its `catch` sees); `None`
/// when it can (the logon has network credentials, or the script never loads Exchange, or the
/// server has no Exchange 2013-or-later management shell to load).
pub fn refusal(body: &str, out: &Out, s: &HostState) -> Option<String> {
    if out.has_network_credentials() {
        return None;
    }
    if matches!(s.family(), None | Some(Family::Ex2010)) || s.build.is_none() {
        return None;
    }
    match Loader::of(body)? {
        Loader::RemoteShell => {
            // The forest root's DNS name from its distinguished name (`DC=contoso,DC=lab`).
            let domain: Vec<&str> = s
                .forest
                .root
                .split(',')
                .filter_map(|part| part.trim().strip_prefix("DC="))
                .collect();
            let fqdn = format!("{}.{}", s.name, domain.join("."));
            // The shipped scripts' own words when Connect-ExchangeServer leaves no cmdlets.
            Some(format!(
                "Exchange's management shell could not be loaded: {}",
                REMOTE_SHELL_REFUSED.replace("{fqdn}", &fqdn)
            ))
        }
        Loader::SnapIn => Some(SNAPIN_REFUSED.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loader_is_read_from_the_script_text() {
        assert_eq!(
            Loader::of(
                ". \"$env:ExchangeInstallPath\\bin\\RemoteExchange.ps1\"\nConnect-ExchangeServer -Auto -ClientApplication:ManagementShell"
            ),
            Some(Loader::RemoteShell)
        );
        assert_eq!(
            Loader::of(
                "Add-PSSnapin Microsoft.Exchange.Management.PowerShell.SnapIn -ErrorAction Stop"
            ),
            Some(Loader::SnapIn)
        );
        assert_eq!(Loader::of("Get-Service"), None);
    }
}
