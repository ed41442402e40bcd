//! MS-WSMV message encryption framing (`multipart/encrypted`, SPNEGO session-encrypted).
//!
//! A sealed body is two MIME-like parts between `--Encrypted Boundary` lines: a header part
//! naming the protocol and the plaintext length (`Length=`), then `application/octet-stream`
//! followed directly by the payload (4-byte little-endian signature length, the signature —
//! 16 bytes for NTLM, a 60-byte security header for Kerberos with AES — and the sealed bytes),
//! and `--Encrypted Boundary--\r\n` with no CRLF before it.
//! The parser is strict: the sealed part must be exactly as long as `Length=` says, which is
//! how Windows rejects a client that adds a CRLF before the closing boundary.

/// `Content-Type` of a sealed body.
pub const CONTENT_TYPE: &str = r#"multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";boundary="Encrypted Boundary""#;

const PROTOCOL: &str = "application/HTTP-SPNEGO-session-encrypted";
const BOUNDARY: &[u8] = b"--Encrypted Boundary\r\n";
const END: &[u8] = b"--Encrypted Boundary--\r\n";
const OCTET_STREAM: &[u8] = b"\tContent-Type: application/octet-stream\r\n";
/// Largest signature (security header) length accepted; the context checks the exact one.
const MAX_SIGNATURE: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("content type is not SPNEGO session-encrypted multipart")]
    ContentType,
    #[error("encrypted body framing is malformed: {0}")]
    Malformed(&'static str),
}

/// Whether a request's `Content-Type` announces a sealed body.
pub fn is_encrypted(content_type: &str) -> bool {
    content_type
        .to_ascii_lowercase()
        .starts_with("multipart/encrypted")
}

/// Check a request's `Content-Type`, then split its body into (plaintext length, payload).
pub fn unframe<'a>(content_type: &str, body: &'a [u8]) -> Result<(usize, &'a [u8]), FramingError> {
    let ct = content_type.to_ascii_lowercase();
    if !ct.starts_with("multipart/encrypted")
        || !ct.contains(&format!("protocol=\"{}\"", PROTOCOL.to_ascii_lowercase()))
    {
        return Err(FramingError::ContentType);
    }
    let rest = body
        .strip_prefix(BOUNDARY)
        .ok_or(FramingError::Malformed("missing opening boundary"))?;
    let header_end =
        find(rest, BOUNDARY).ok_or(FramingError::Malformed("missing second boundary"))?;
    let header = std::str::from_utf8(&rest[..header_end])
        .map_err(|_| FramingError::Malformed("header is not text"))?;
    let mut length = None;
    let mut protocol_ok = false;
    for line in header
        .split("\r\n")
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        if let Some(value) = line.strip_prefix("Content-Type:") {
            protocol_ok = value.trim().eq_ignore_ascii_case(PROTOCOL);
        } else if let Some(value) = line.strip_prefix("OriginalContent:") {
            length = value
                .split(';')
                .find_map(|p| p.trim().strip_prefix("Length="))
                .and_then(|n| n.parse().ok());
        }
    }
    if !protocol_ok {
        return Err(FramingError::Malformed(
            "header part does not name the protocol",
        ));
    }
    let length: usize = length.ok_or(FramingError::Malformed("no Length= in OriginalContent"))?;
    let second = &rest[header_end + BOUNDARY.len()..];
    let payload = second
        .strip_prefix(OCTET_STREAM)
        .ok_or(FramingError::Malformed(
            "second part is not application/octet-stream",
        ))?;
    let payload = payload
        .strip_suffix(END)
        .ok_or(FramingError::Malformed("missing closing boundary"))?;
    let signature = payload
        .first_chunk::<4>()
        .map(|n| u32::from_le_bytes(*n) as usize)
        .filter(|n| *n <= MAX_SIGNATURE)
        .ok_or(FramingError::Malformed("no signature length"))?;
    if payload.len() != length + 4 + signature {
        return Err(FramingError::Malformed(
            "sealed part length does not match Length=",
        ));
    }
    Ok((length, payload))
}

/// Frame a sealed payload for `plaintext_len` bytes of SOAP.
pub fn frame(plaintext_len: usize, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 256);
    out.extend_from_slice(BOUNDARY);
    out.extend_from_slice(format!("\tContent-Type: {PROTOCOL}\r\n").as_bytes());
    out.extend_from_slice(
        format!(
            "\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length={plaintext_len}\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(BOUNDARY);
    out.extend_from_slice(OCTET_STREAM);
    out.extend_from_slice(payload);
    out.extend_from_slice(END);
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn payload(n: usize) -> Vec<u8> {
        let mut p = 16u32.to_le_bytes().to_vec();
        p.extend((0..16 + n).map(|i| i as u8));
        p
    }

    #[test]
    fn round_trip() {
        let p = payload(5);
        let body = frame(5, &p);
        assert_eq!(unframe(CONTENT_TYPE, &body).unwrap(), (5, &p[..]));
    }

    #[test]
    fn crlf_before_the_closing_boundary_is_refused() {
        let p = payload(5);
        let mut body = frame(5, &p);
        let at = body.len() - END.len();
        body.splice(at..at, b"\r\n".iter().copied());
        assert_eq!(
            unframe(CONTENT_TYPE, &body),
            Err(FramingError::Malformed(
                "sealed part length does not match Length="
            ))
        );
    }

    #[test]
    fn wrong_content_type_is_refused() {
        let body = frame(1, &payload(1));
        assert_eq!(
            unframe("application/soap+xml;charset=UTF-8", &body),
            Err(FramingError::ContentType)
        );
        assert!(is_encrypted(CONTENT_TYPE));
        assert!(!is_encrypted("application/soap+xml"));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = unframe(CONTENT_TYPE, &body);
        }
    }
}
