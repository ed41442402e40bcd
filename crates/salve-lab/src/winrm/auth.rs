//! Authentication on the lab's WinRM listener, as Windows does it: Basic (only where the
//! listener allows it, and over HTTP only with `AllowUnencrypted`), NTLM through Negotiate, and
//! Kerberos through Negotiate, on hosts whose SPN key the lab holds, as a raw Kerberos token
//! (winrm-rs, pywinrm's default) or wrapped in SPNEGO as Windows clients send it
//! ([`super::spnego`]; the AP-REP then goes back inside a `NegTokenResp`), the answer in the
//! 200's `WWW-Authenticate` and the context kept per connection. Over
//! HTTPS, a client certificate with the mutual-authentication profile is mapped to the account
//! ([`super::certmap`]).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::certmap::{MUTUAL_SECPROFILE, certificate_upn};
use super::context::HostCtx;
use super::kerberos::{KerberosAcceptor, KerberosError, is_kerberos_token};
use super::ntlm::{NtlmAcceptor, NtlmError, Step};
use super::spnego::{accept_completed, is_spnego_init, kerberos_offer};
use crate::host_api::ProtocolEvent;

/// How a connection is authenticated so far.
#[derive(Default)]
pub(super) enum ConnAuth {
    #[default]
    None,
    /// An NTLM handshake is half-way (challenge sent).
    NtlmPending(NtlmAcceptor),
    Ntlm {
        session: NtlmAcceptor,
        user: String,
    },
    Kerberos {
        session: KerberosAcceptor,
        user: String,
    },
    /// Basic credentials were accepted once on this connection (recorded once).
    Basic {
        user: String,
    },
    /// A mapped client certificate was accepted on this connection (recorded once).
    Certificate {
        user: String,
    },
}

impl ConnAuth {
    /// The authenticated user and, for NTLM and Kerberos, the context that seals messages.
    pub(super) fn established(&mut self) -> Option<(String, Option<Session<'_>>)> {
        match self {
            ConnAuth::Ntlm { session, user } => Some((user.clone(), Some(Session::Ntlm(session)))),
            ConnAuth::Kerberos { session, user } => {
                Some((user.clone(), Some(Session::Kerberos(session))))
            }
            ConnAuth::Basic { user } | ConnAuth::Certificate { user } => Some((user.clone(), None)),
            ConnAuth::None | ConnAuth::NtlmPending(_) => None,
        }
    }

    /// Whether the connection holds a context that later requests without a header reuse.
    pub(super) fn has_session(&self) -> bool {
        matches!(self, ConnAuth::Ntlm { .. } | ConnAuth::Kerberos { .. })
    }
}

/// The security context of an authenticated connection, for MS-WSMV message encryption.
pub(super) enum Session<'a> {
    Ntlm(&'a mut NtlmAcceptor),
    Kerberos(&'a mut KerberosAcceptor),
}

/// Why a body could not be sealed or unsealed.
#[derive(Debug, thiserror::Error)]
pub(super) enum SealError {
    #[error(transparent)]
    Ntlm(#[from] NtlmError),
    #[error(transparent)]
    Kerberos(#[from] KerberosError),
}

impl Session<'_> {
    /// The sealed payload (signature or security header with its length prefix, then data).
    pub(super) fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        Ok(match self {
            Session::Ntlm(s) => s.seal(plaintext)?,
            Session::Kerberos(s) => s.seal(plaintext)?,
        })
    }

    pub(super) fn unseal(&mut self, payload: &[u8]) -> Result<Vec<u8>, SealError> {
        Ok(match self {
            Session::Ntlm(s) => s.unseal(payload)?,
            Session::Kerberos(s) => s.unseal(payload)?,
        })
    }
}

/// What the server answers after [`authenticate`].
pub(super) enum AuthOutcome {
    /// Go on; a `WWW-Authenticate` value (Kerberos' AP-REP) goes with the reply when given.
    Accepted(Option<String>),
    /// A 401 with this `WWW-Authenticate` challenge, or with the schemes on offer (`None`).
    Challenge(Option<String>),
}

/// Check an `Authorization` header against the host's account, advancing the connection's
/// authentication (`auth`) and recording the outcome on the host.
pub(super) fn authenticate(
    ctx: &HostCtx,
    auth: &mut ConnAuth,
    header: &str,
    https: bool,
    client_cert: Option<&[u8]>,
) -> AuthOutcome {
    let (scheme, value) = header.split_once(' ').unwrap_or((header, ""));
    let value = value.trim();
    let (lab_user, lab_password) = ctx.host.credentials();
    let faults = ctx.host.faults();
    let fail = |method: &str, user: String| {
        ctx.host.record(ProtocolEvent::AuthFailed {
            method: method.to_string(),
            user,
        });
        AuthOutcome::Challenge(None)
    };
    if header.trim() == MUTUAL_SECPROFILE {
        return certificate(ctx, auth, https, client_cert, fail);
    }
    if scheme.eq_ignore_ascii_case("Basic") {
        if !ctx.config.allow_basic || (!https && !ctx.config.allow_unencrypted) {
            return fail("basic", String::new());
        }
        let decoded = B64
            .decode(value)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
        if faults.reject_auth || !same_account(user, lab_user) || password != lab_password {
            *auth = ConnAuth::None;
            return fail("basic", user.to_string());
        }
        if !matches!(&*auth, ConnAuth::Basic { user: u } if u == user) {
            ctx.host.record(ProtocolEvent::Authenticated {
                method: "basic".into(),
                user: user.to_string(),
            });
            *auth = ConnAuth::Basic {
                user: user.to_string(),
            };
        }
        return AuthOutcome::Accepted(None);
    }
    if scheme.eq_ignore_ascii_case("Negotiate")
        && let Some(token) = B64.decode(value).ok().filter(|t| is_spnego_init(t))
    {
        return match kerberos_offer(&token) {
            Ok(offer) => kerberos(
                ctx,
                auth,
                &offer.token,
                |ap_rep| accept_completed(&offer, ap_rep),
                fail,
            ),
            Err(e) => {
                tracing::debug!(error = %e, "SPNEGO NegTokenInit refused");
                *auth = ConnAuth::None;
                fail("negotiate", String::new())
            }
        };
    }
    if scheme.eq_ignore_ascii_case("Negotiate")
        && let Some(token) = B64.decode(value).ok().filter(|t| is_kerberos_token(t))
    {
        return kerberos(ctx, auth, &token, |ap_rep| ap_rep, fail);
    }
    if !(scheme.eq_ignore_ascii_case("Negotiate") || scheme.eq_ignore_ascii_case("NTLM"))
        || !ctx.config.allow_ntlm
    {
        return fail(&scheme.to_ascii_lowercase(), String::new());
    }
    let Ok(token) = B64.decode(value) else {
        return fail("ntlm", String::new());
    };
    // NTLMSSP message type (1 = NEGOTIATE, 3 = AUTHENTICATE) at offset 8.
    let msg_type = token
        .get(8)
        .copied()
        .filter(|_| token.starts_with(b"NTLMSSP\0"));
    match msg_type {
        Some(1) => {
            let acceptor = NtlmAcceptor::new(lab_user, lab_password)
                .and_then(|mut a| a.step(&token).map(|s| (a, s)));
            match acceptor {
                Ok((acceptor, Step::Challenge(challenge))) => {
                    *auth = ConnAuth::NtlmPending(acceptor);
                    let value = format!("{scheme} {}", B64.encode(challenge));
                    AuthOutcome::Challenge(Some(value))
                }
                _ => {
                    *auth = ConnAuth::None;
                    fail("ntlm", String::new())
                }
            }
        }
        Some(3) => {
            let ConnAuth::NtlmPending(mut acceptor) = std::mem::take(auth) else {
                return fail("ntlm", String::new());
            };
            match acceptor.step(&token) {
                Ok(Step::Established { user }) if !faults.reject_auth => {
                    ctx.host.record(ProtocolEvent::Authenticated {
                        method: "ntlm".into(),
                        user: user.clone(),
                    });
                    *auth = ConnAuth::Ntlm {
                        session: acceptor,
                        user,
                    };
                    AuthOutcome::Accepted(None)
                }
                Ok(Step::Established { user }) => fail("ntlm", user),
                Err(NtlmError::LogonDenied { user }) => fail("ntlm", user),
                _ => fail("ntlm", String::new()),
            }
        }
        // Neither NTLMSSP nor a GSS-API initial token.
        _ => {
            *auth = ConnAuth::None;
            fail("negotiate", String::new())
        }
    }
}

/// Map the connection's client certificate to the host's account: over HTTPS only, a
/// certificate (already chained to the lab CA by the TLS handshake) whose UPN the host maps
/// (`ListenerConfig::mapped_certificates`); anything else is a 401, as WinRM answers.
fn certificate(
    ctx: &HostCtx,
    auth: &mut ConnAuth,
    https: bool,
    client_cert: Option<&[u8]>,
    fail: impl Fn(&str, String) -> AuthOutcome,
) -> AuthOutcome {
    let upn = client_cert.filter(|_| https).and_then(certificate_upn);
    let Some(upn) = upn else {
        *auth = ConnAuth::None;
        return fail("certificate", String::new());
    };
    let mapped = ctx
        .config
        .mapped_certificates
        .iter()
        .any(|m| m.eq_ignore_ascii_case(&upn));
    if !mapped || ctx.host.faults().reject_auth {
        *auth = ConnAuth::None;
        return fail("certificate", upn);
    }
    let (lab_user, _) = ctx.host.credentials();
    if !matches!(&*auth, ConnAuth::Certificate { .. }) {
        ctx.host.record(ProtocolEvent::Authenticated {
            method: "certificate".into(),
            user: upn,
        });
        *auth = ConnAuth::Certificate {
            user: lab_user.to_string(),
        };
    }
    AuthOutcome::Accepted(None)
}

/// Accept a Kerberos AP-REQ: on a host without an SPN key, or for another account, or with a
/// ticket that does not decrypt or a clock beyond the skew limit, a 401 as Windows answers.
/// The AP-REP goes back as `answer` frames it (as is, or inside SPNEGO's `NegTokenResp`).
fn kerberos(
    ctx: &HostCtx,
    auth: &mut ConnAuth,
    token: &[u8],
    answer: impl FnOnce(Vec<u8>) -> Vec<u8>,
    fail: impl Fn(&str, String) -> AuthOutcome,
) -> AuthOutcome {
    *auth = ConnAuth::None;
    let Some(service) = &ctx.config.kerberos else {
        return fail("kerberos", String::new());
    };
    let (lab_user, _) = ctx.host.credentials();
    match KerberosAcceptor::accept(service, token) {
        // The ticket is genuine; the account must still be the host's administrator.
        Ok((session, user, ap_rep))
            if !ctx.host.faults().reject_auth && same_account(&user, lab_user) =>
        {
            ctx.host.record(ProtocolEvent::Authenticated {
                method: "kerberos".into(),
                user: user.clone(),
            });
            *auth = ConnAuth::Kerberos { session, user };
            AuthOutcome::Accepted(Some(format!("Negotiate {}", B64.encode(answer(ap_rep)))))
        }
        Ok((_, user, _)) => fail("kerberos", user),
        Err(e) => {
            tracing::debug!(error = %e, "kerberos AP-REQ refused");
            fail("kerberos", String::new())
        }
    }
}

/// The same Windows account, whatever the spelling (`DOMAIN\\user`, `user@domain`, case).
pub(super) fn same_account(given: &str, expected: &str) -> bool {
    let account = |u: &str| {
        let tail = u.rsplit('\\').next().unwrap_or(u);
        tail.split('@').next().unwrap_or(tail).to_lowercase()
    };
    account(given) == account(expected)
}
