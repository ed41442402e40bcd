//! Client-certificate authentication as WinRM over HTTPS does it: the client presents a
//! certificate in the TLS handshake (chained to an issuer the host trusts) and announces the
//! HTTPS mutual-authentication profile in `Authorization`; the service maps the certificate's
//! subject — the user principal name in its Subject Alternative Name (`otherName`
//! 1.3.6.1.4.1.311.20.2.3, "Principal Name") — through its certificate mapping table
//! (`WSMan:\localhost\ClientCertificate`, Subject + Issuer → local account) to an account. A
//! certificate whose UPN has no mapping is refused with a 401, as Windows does.

use picky_asn1_x509::Certificate;
use picky_asn1_x509::extension::ExtensionView;
use picky_asn1_x509::name::GeneralName;

/// `Authorization` value of the HTTPS mutual-authentication security profile (MS-WSMV).
pub const MUTUAL_SECPROFILE: &str =
    "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual";

/// The Microsoft UPN `otherName` type (szOID_NT_PRINCIPAL_NAME).
pub const UPN_OID: &str = "1.3.6.1.4.1.311.20.2.3";

/// The user principal name a DER certificate carries in its Subject Alternative Name.
pub fn certificate_upn(der: &[u8]) -> Option<String> {
    let cert: Certificate = picky_asn1_der::from_bytes(der).ok()?;
    let upn_oid = picky_asn1_x509::oid::ObjectIdentifier::try_from(UPN_OID).ok();
    cert.tbs_certificate.extensions.0.0.iter().find_map(|ext| {
        let ExtensionView::SubjectAltName(names) = ext.extn_value() else {
            return None;
        };
        names.0.iter().find_map(|name| match name {
            GeneralName::OtherName(other) if Some(&other.type_id.0) == upn_oid.as_ref() => {
                utf8_string(&other.value.0.0)
            }
            _ => None,
        })
    })
}

/// The text of a DER UTF8String (tag 12), short or long length form.
fn utf8_string(der: &[u8]) -> Option<String> {
    let (&tag, rest) = der.split_first()?;
    if tag != 0x0c {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, body) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 2 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    String::from_utf8(body.get(..len)?.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_upn_of_a_lab_client_certificate() {
        let ca = crate::winrm::LabCa::generate().unwrap();
        let (cert, _key) = ca.client_certificate("salve-lab@lab.test").unwrap();
        let der = rustls_pemfile_der(&cert);
        assert_eq!(certificate_upn(&der).as_deref(), Some("salve-lab@lab.test"));
    }

    #[test]
    fn utf8_strings_in_both_length_forms() {
        assert_eq!(utf8_string(b"\x0c\x02ab").as_deref(), Some("ab"));
        let long = [&[0x0c, 0x81, 0x03][..], b"xyz"].concat();
        assert_eq!(utf8_string(&long).as_deref(), Some("xyz"));
        assert_eq!(utf8_string(b"\x13\x02ab"), None);
        assert_eq!(utf8_string(b"\x0c\x05ab"), None);
    }

    /// The DER inside a one-certificate PEM.
    fn rustls_pemfile_der(pem: &str) -> Vec<u8> {
        use base64::Engine;
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    }
}
