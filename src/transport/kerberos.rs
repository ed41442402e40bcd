//! What a Kerberos failure means and how to fix it. The GSSAPI library (MIT krb5 on Linux,
//! loaded at run time by `salve-gssapi`, which says so when it is missing) reports failures as
//! its minor status text ("Clock skew too great", "Server ... not found
//! in Kerberos database"); [`diagnose`] turns that text into a [`KerberosProblem`] whose
//! message names the cause and the fix. The WinRM transport and `salve doctor` both use it.

use std::fmt;

/// A recognised Kerberos failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KerberosProblem {
    /// The KDC refused the password (preauthentication failed).
    WrongPassword,
    /// The KDC does not know the user principal.
    UnknownUser,
    /// No ticket to use: the credential cache is missing or empty.
    NoTicket,
    /// The ticket in the credential cache has expired.
    TicketExpired,
    /// This machine's clock and the KDC's differ by more than the realm allows.
    ClockSkew,
    /// krb5.conf names no KDC for the realm.
    UnknownRealm { realm: String },
    /// No KDC of the realm answered.
    KdcUnreachable,
    /// The realm has no service principal for the host (no SPN registered).
    MissingSpn { spn: String },
    /// MIT Kerberos' GSS-API library (loaded at run time) is not on this machine.
    NoLibrary,
}

impl KerberosProblem {
    /// The one-line fix.
    pub fn fix(&self) -> String {
        match self {
            KerberosProblem::WrongPassword => "check ansible_password for the user (a locked or \
                disabled account fails the same way)"
                .into(),
            KerberosProblem::UnknownUser => "check ansible_user: Kerberos needs the domain \
                account as user@REALM (e.g. admin@CONTOSO.COM)"
                .into(),
            KerberosProblem::NoTicket => "run `kinit user@REALM` (KRB5CCNAME names the cache), \
                or set ansible_password so salve gets the ticket itself \
                (ansible_winrm_kinit_mode: managed)"
                .into(),
            KerberosProblem::TicketExpired => "run `kinit` again, or set ansible_password so \
                salve gets a fresh ticket for each run (ansible_winrm_kinit_mode: managed)"
                .into(),
            KerberosProblem::ClockSkew => "synchronise this machine's clock with the domain \
                controller's (NTP: `timedatectl set-ntp true` or chrony); Kerberos allows 5 \
                minutes of difference by default"
                .into(),
            KerberosProblem::UnknownRealm { realm } => format!(
                "add the realm to krb5.conf (KRB5_CONFIG or /etc/krb5.conf): `[realms] {realm} = \
                 {{ kdc = <domain controller> }}`, or set `dns_lookup_kdc = true` in \
                 [libdefaults]"
            ),
            KerberosProblem::KdcUnreachable => "check the `kdc` entries of the realm in \
                krb5.conf and that port 88 of the domain controller is reachable from here"
                .into(),
            KerberosProblem::NoLibrary => "install MIT Kerberos' GSS-API library \
                (Debian/Ubuntu: `apt-get install libgssapi-krb5-2`; RHEL/Fedora: `dnf install \
                krb5-libs`), or name its file in SALVE_GSSAPI_LIBRARY"
                .into(),
            KerberosProblem::MissingSpn { spn } => {
                let host = spn.split_once('/').map_or(spn.as_str(), |(_, h)| h);
                let host = host.split('@').next().unwrap_or(host);
                format!(
                    "register the SPN on the host's computer account (`setspn -S HTTP/{host} \
                     <COMPUTER>` on a domain controller), or reach the host by the name its \
                     SPN uses (ansible_host, or ansible_winrm_kerberos_hostname_override)"
                )
            }
        }
    }
}

impl fmt::Display for KerberosProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KerberosProblem::WrongPassword => f.write_str("the KDC refused the password"),
            KerberosProblem::UnknownUser => f.write_str("the KDC does not know the user"),
            KerberosProblem::NoTicket => f.write_str("no Kerberos ticket in the credential cache"),
            KerberosProblem::TicketExpired => f.write_str("the Kerberos ticket has expired"),
            KerberosProblem::ClockSkew => f.write_str(
                "clock skew: this machine's clock and the KDC's differ by more than the realm allows",
            ),
            KerberosProblem::UnknownRealm { realm } => {
                write!(f, "unknown realm: krb5.conf names no KDC for {realm}")
            }
            KerberosProblem::KdcUnreachable => f.write_str("no KDC of the realm answered"),
            KerberosProblem::NoLibrary => {
                f.write_str("MIT Kerberos' GSS-API library (libgssapi_krb5.so.2) cannot be loaded")
            }
            KerberosProblem::MissingSpn { spn } => write!(
                f,
                "missing SPN: the realm has no service principal {spn}"
            ),
        }
    }
}

/// The problem a GSSAPI/krb5 failure text describes, if it is one salve knows.
pub fn diagnose(text: &str) -> Option<KerberosProblem> {
    let lower = text.to_ascii_lowercase();
    let has = |needle: &str| lower.contains(needle);
    if has("gss-api library") && (has("could not be loaded") || has("not a usable")) {
        Some(KerberosProblem::NoLibrary)
    } else if has("clock skew too great") {
        Some(KerberosProblem::ClockSkew)
    } else if has("preauthentication failed")
        || has("decrypt integrity check failed")
        || has("password incorrect")
    {
        Some(KerberosProblem::WrongPassword)
    } else if let Some(spn) = server_not_found(text) {
        Some(KerberosProblem::MissingSpn { spn })
    } else if has("client") && has("not found in kerberos database") {
        Some(KerberosProblem::UnknownUser)
    } else if has("ticket expired") || has("credential has expired") {
        Some(KerberosProblem::TicketExpired)
    } else if let Some(realm) = after(text, "Cannot find KDC for realm") {
        Some(KerberosProblem::UnknownRealm { realm })
    } else if has("cannot contact any kdc") {
        Some(KerberosProblem::KdcUnreachable)
    } else if has("no credentials cache found")
        || has("no kerberos credentials available")
        || (has("credentials cache") && has("not found"))
    {
        Some(KerberosProblem::NoTicket)
    } else {
        None
    }
}

/// `HTTP/host@REALM` from "Server HTTP/host@REALM not found in Kerberos database".
fn server_not_found(text: &str) -> Option<String> {
    let (_, rest) = text.split_once("Server ")?;
    let (spn, _) = rest.split_once(" not found in Kerberos database")?;
    Some(spn.trim().to_string())
}

/// The quoted or bare word after `marker` ("Cannot find KDC for realm \"X\"" gives `X`).
fn after(text: &str, marker: &str) -> Option<String> {
    let (_, rest) = text.split_once(marker)?;
    let word = rest
        .trim_start()
        .trim_start_matches('"')
        .split(['"', ' ', ')'])
        .next()?;
    Some(word.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts are MIT krb5 1.20's, as they reach salve through libgssapi.
    #[test]
    fn recognises_mit_failure_texts() {
        let cases = [
            (
                "No credentials were supplied, or the credentials were unavailable or inaccessible (Decrypt integrity check failed)",
                KerberosProblem::WrongPassword,
            ),
            (
                "Unspecified GSS failure.  Minor code may provide more information (Server HTTP/ex01.lab.test@LAB.TEST not found in Kerberos database)",
                KerberosProblem::MissingSpn {
                    spn: "HTTP/ex01.lab.test@LAB.TEST".into(),
                },
            ),
            (
                "Unspecified GSS failure.  Minor code may provide more information (Ticket expired)",
                KerberosProblem::TicketExpired,
            ),
            ("(Clock skew too great)", KerberosProblem::ClockSkew),
            (
                "(Cannot find KDC for realm \"NOWHERE.TEST\")",
                KerberosProblem::UnknownRealm {
                    realm: "NOWHERE.TEST".into(),
                },
            ),
            (
                "(Client 'bob@LAB.TEST' not found in Kerberos database)",
                KerberosProblem::UnknownUser,
            ),
            (
                "(No Kerberos credentials available (default cache: FILE:/tmp/krb5cc_0))",
                KerberosProblem::NoTicket,
            ),
        ];
        for (text, problem) in cases {
            assert_eq!(diagnose(text), Some(problem), "{text}");
        }
        assert_eq!(diagnose("HTTP 500"), None);
        // salve-gssapi's own words when the library is missing or foreign.
        for text in [
            "Kerberos needs MIT Kerberos' GSS-API library, and libgssapi_krb5.so.2 could not be \
             loaded (libgssapi_krb5.so.2: cannot open shared object file)",
            "/opt/x.so is not a usable MIT GSS-API library: it has no gss_wrap_iov",
        ] {
            assert_eq!(diagnose(text), Some(KerberosProblem::NoLibrary), "{text}");
        }
    }

    #[test]
    fn the_missing_spn_fix_names_the_setspn_command() {
        let p = KerberosProblem::MissingSpn {
            spn: "HTTP/ex01.lab.test@LAB.TEST".into(),
        };
        assert!(
            p.fix().contains("setspn -S HTTP/ex01.lab.test <COMPUTER>"),
            "{}",
            p.fix()
        );
    }
}
