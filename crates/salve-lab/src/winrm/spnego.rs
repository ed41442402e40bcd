//! SPNEGO (RFC 4178) as Windows' Negotiate package speaks it to WinRM clients that wrap their
//! Kerberos token ([MS-SPNG] §3.2.5.2): the client's `NegTokenInit` lists its mechanisms, most
//! preferred first, with an optimistic token for the first; when that first mechanism is
//! Kerberos (RFC 1964's OID, or the OID Windows clients put first, 1.2.840.48018.1.2.2, [MS-KILE]
//! §3.1.5.1), the acceptor takes the optimistic AP-REQ and answers with a `NegTokenResp` whose
//! `negState` is `accept-completed`, whose `supportedMech` is that first mechanism (Windows
//! echoes the client's OID) and whose `responseToken` is the AP-REP. No `mechListMIC` is needed
//! when the first mechanism is chosen (RFC 4178 §5, case 1). A `NegTokenInit` that prefers
//! another mechanism (NTLM first) would need a second round trip, which the lab does not model:
//! it is refused.

use picky_asn1::wrapper::{ExplicitContextTag0, ExplicitContextTag1, ExplicitContextTag2};
use picky_asn1::wrapper::{ObjectIdentifierAsn1, OctetStringAsn1, Optional};
use picky_asn1_der::Asn1RawDer;
use picky_krb::gss_api::{GssApiNegInit, NegTokenTarg, NegTokenTarg1};

/// The SPNEGO mechanism OID (1.3.6.1.5.5.2), DER-encoded, as it follows the `[APPLICATION 0]`
/// header of an initial token.
const SPNEGO_OID: &[u8] = &[0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];
/// Kerberos V5 as RFC 1964 names it, and as Microsoft's clients name it.
const KERBEROS_MECHS: [&str; 2] = ["1.2.840.113554.1.2.2", "1.2.840.48018.1.2.2"];
/// `negState` `accept-completed` (ENUMERATED 0).
const ACCEPT_COMPLETED: [u8; 3] = [0x0a, 0x01, 0x00];

#[derive(Debug, thiserror::Error)]
pub enum SpnegoError {
    #[error("malformed SPNEGO NegTokenInit: {0}")]
    Malformed(String),
    #[error("the client prefers {0}, not Kerberos (a second SPNEGO round trip, not modelled)")]
    NotKerberosFirst(String),
    #[error("NegTokenInit carries no optimistic Kerberos token")]
    NoMechToken,
}

/// Whether a `Negotiate` token is a SPNEGO initial token (GSS-API framing `0x60`, then the
/// SPNEGO OID).
pub fn is_spnego_init(token: &[u8]) -> bool {
    token.first() == Some(&0x60)
        && der_header_len(token).is_some_and(|h| {
            token
                .get(h..)
                .is_some_and(|rest| rest.starts_with(SPNEGO_OID))
        })
}

/// Length of the tag and length octets of the DER value at the start of `bytes`.
fn der_header_len(bytes: &[u8]) -> Option<usize> {
    let first = *bytes.get(1)?;
    if first < 0x80 {
        Some(2)
    } else {
        let n = usize::from(first & 0x7f);
        (1..=4).contains(&n).then_some(2 + n)
    }
}

/// The client's preferred mechanism and its optimistic Kerberos token.
#[derive(Debug)]
pub struct KerberosOffer {
    mech: ObjectIdentifierAsn1,
    /// The Kerberos token (the AP-REQ in its GSS-API framing).
    pub token: Vec<u8>,
}

/// Read a `NegTokenInit` whose first mechanism is Kerberos.
pub fn kerberos_offer(token: &[u8]) -> Result<KerberosOffer, SpnegoError> {
    if !is_spnego_init(token) {
        return Err(SpnegoError::Malformed("not a SPNEGO initial token".into()));
    }
    // `[APPLICATION 0] IMPLICIT SEQUENCE { thisMech, innerToken }`: read as the SEQUENCE it is.
    let mut bytes = token.to_vec();
    bytes[0] = 0x30;
    let init: GssApiNegInit =
        picky_asn1_der::from_bytes(&bytes).map_err(|e| SpnegoError::Malformed(e.to_string()))?;
    let init = init.neg_token_init.0;
    let first = init
        .mech_types
        .0
        .and_then(|list| list.0.0.into_iter().next())
        .ok_or_else(|| SpnegoError::Malformed("no mechTypes".into()))?;
    let name: String = (&first.0).into();
    if !KERBEROS_MECHS.contains(&name.as_str()) {
        return Err(SpnegoError::NotKerberosFirst(name));
    }
    let token = init.mech_token.0.ok_or(SpnegoError::NoMechToken)?.0.0;
    Ok(KerberosOffer { mech: first, token })
}

/// The acceptor's final `NegTokenResp`: accepted, with the client's first mechanism and the
/// Kerberos answer (AP-REP).
pub fn accept_completed(offer: &KerberosOffer, response_token: Vec<u8>) -> Vec<u8> {
    let answer: NegTokenTarg1 = ExplicitContextTag1::from(NegTokenTarg {
        neg_result: Optional::from(Some(ExplicitContextTag0::from(Asn1RawDer(
            ACCEPT_COMPLETED.to_vec(),
        )))),
        supported_mech: Optional::from(Some(ExplicitContextTag1::from(offer.mech.clone()))),
        response_token: Optional::from(Some(ExplicitContextTag2::from(OctetStringAsn1(
            response_token,
        )))),
        mech_list_mic: Optional::from(None),
    });
    // Cannot fail: every field is a plain value the DER serializer writes (no maps, no
    // unsupported types).
    picky_asn1_der::to_vec(&answer).expect("a NegTokenResp serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use picky_asn1::wrapper::{Asn1SequenceOf, ExplicitContextTag3};
    use picky_krb::gss_api::NegTokenInit;

    fn oid(s: &str) -> ObjectIdentifierAsn1 {
        ObjectIdentifierAsn1(oid::ObjectIdentifier::try_from(s).unwrap())
    }

    /// A NegTokenInit as a client builds it: `mechs` in order, `token` for the first.
    fn init(mechs: &[&str], token: Option<&[u8]>) -> Vec<u8> {
        let inner = GssApiNegInit {
            oid: oid("1.3.6.1.5.5.2"),
            neg_token_init: ExplicitContextTag0::from(NegTokenInit {
                mech_types: Optional::from(Some(ExplicitContextTag0::from(Asn1SequenceOf(
                    mechs.iter().map(|m| oid(m)).collect(),
                )))),
                req_flags: Optional::from(None),
                mech_token: Optional::from(
                    token.map(|t| ExplicitContextTag2::from(OctetStringAsn1(t.to_vec()))),
                ),
                mech_list_mic: Optional::from(None::<ExplicitContextTag3<OctetStringAsn1>>),
            }),
        };
        let mut bytes = picky_asn1_der::to_vec(&inner).unwrap();
        bytes[0] = 0x60;
        bytes
    }

    #[test]
    fn a_windows_style_offer_is_read_and_answered_with_its_own_mechanism() {
        let token = init(
            &[
                "1.2.840.48018.1.2.2",
                "1.2.840.113554.1.2.2",
                "1.3.6.1.4.1.311.2.2.10",
            ],
            Some(b"ap-req"),
        );
        assert!(is_spnego_init(&token));
        let offer = kerberos_offer(&token).unwrap();
        assert_eq!(offer.token, b"ap-req");
        let answer = accept_completed(&offer, b"ap-rep".to_vec());
        let parsed: NegTokenTarg1 = picky_asn1_der::from_bytes(&answer).unwrap();
        let targ = parsed.0;
        assert_eq!(targ.neg_result.0.unwrap().0.0, ACCEPT_COMPLETED);
        let mech: String = (&targ.supported_mech.0.unwrap().0.0).into();
        assert_eq!(mech, "1.2.840.48018.1.2.2");
        assert_eq!(targ.response_token.0.unwrap().0.0, b"ap-rep");
    }

    #[test]
    fn ntlm_first_or_no_token_or_garbage_is_refused() {
        let ntlm_first = init(
            &["1.3.6.1.4.1.311.2.2.10", "1.2.840.113554.1.2.2"],
            Some(b"x"),
        );
        assert!(matches!(
            kerberos_offer(&ntlm_first),
            Err(SpnegoError::NotKerberosFirst(_))
        ));
        let no_token = init(&["1.2.840.113554.1.2.2"], None);
        assert!(matches!(
            kerberos_offer(&no_token),
            Err(SpnegoError::NoMechToken)
        ));
        let mut garbage = init(&["1.2.840.113554.1.2.2"], Some(b"x"));
        garbage.truncate(garbage.len() / 2);
        assert!(matches!(
            kerberos_offer(&garbage),
            Err(SpnegoError::Malformed(_))
        ));
        assert!(!is_spnego_init(b"NTLMSSP\0\x01\0\0\0"));
    }

    /// Whatever a client sends, the acceptor answers (a refusal at worst), never panics.
    #[test]
    fn truncated_or_corrupted_offers_never_panic() {
        let token = init(&["1.2.840.113554.1.2.2"], Some(b"ap-req-bytes"));
        for cut in 0..token.len() {
            let _ = kerberos_offer(&token[..cut]);
            let mut flipped = token.clone();
            flipped[cut] ^= 0xff;
            let _ = kerberos_offer(&flipped);
        }
    }
}
