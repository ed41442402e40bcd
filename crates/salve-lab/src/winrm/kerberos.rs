//! Kerberos as the acceptor, as a domain-joined Windows host does it for WinRM: the client's
//! AP-REQ (a raw RFC 4121 Kerberos token under the `Negotiate` HTTP scheme, [MS-KILE] §3.4) is
//! decrypted with the key of the host's SPN `HTTP/<fqdn>` from its keytab (Windows: the
//! computer account's key), its authenticator checked against the clock with the domain's
//! tolerance (Windows' default "Maximum tolerance for computer clock synchronization" is
//! 5 minutes), and an AP-REP returned for mutual authentication. The context then seals and
//! unseals WinRM bodies (MS-WSMV §2.2.9.1: a 60-byte security header with RRC 28 and EC 0, as
//! Windows' `EncryptMessage` produces for AES). The Kerberos computations are the `sspi`
//! crate's (Devolutions' Rust implementation of Windows' SSPI), the same crate as the NTLM
//! acceptor's, so the lab needs no system library.

use std::time::Duration;

use sspi::kerberos::ServerProperties;
use sspi::{
    BufferType, DataRepresentation, EncryptionFlags, KdcResolution, Kerberos, KerberosConfig,
    Secret, SecurityBuffer, SecurityBufferRef, SecurityStatus, ServerRequestFlags, Sspi, SspiImpl,
};

use super::keytab::{Keytab, KeytabEntry};

/// Windows' default maximum clock skew between a client and a domain member (Kerberos policy).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// Length of the security header of an AES wrap token in the Windows layout (16-byte token
/// header, 16-byte confounder, 28 rotated bytes).
const SECURITY_HEADER_LEN: usize = 60;

/// The OID of the Kerberos V5 mechanism (1.2.840.113554.1.2.2), DER-encoded.
const KRB5_OID: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02,
];

#[derive(Debug, thiserror::Error)]
pub enum KerberosError {
    #[error("kerberos token rejected: {0}")]
    Token(#[source] sspi::Error),
    #[error("message sealing failed: {0}")]
    Seal(#[source] sspi::Error),
    #[error("message is not a well-formed kerberos-sealed payload: {0}")]
    Unseal(String),
}

/// What a host knows to accept Kerberos: the keys of its SPNs (Windows: the computer account's
/// keys, registered with `setspn`).
#[derive(Clone)]
pub struct KerberosService {
    /// The host's DNS name, the host part of its SPN `HTTP/<fqdn>`.
    pub fqdn: String,
    key: KeytabEntry,
}

impl std::fmt::Debug for KerberosService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KerberosService")
            .field("fqdn", &self.fqdn)
            .finish_non_exhaustive()
    }
}

impl KerberosService {
    /// The service for `HTTP/<fqdn>`, if the keytab holds its key (else the host has no SPN:
    /// Windows then cannot accept Kerberos for that name).
    pub fn from_keytab(keytab: &Keytab, fqdn: &str) -> Option<Self> {
        keytab.service_key("HTTP", fqdn).map(|key| Self {
            fqdn: fqdn.to_string(),
            key: key.clone(),
        })
    }
}

/// Whether a `Negotiate` token is a raw Kerberos token (GSS-API framing `0x60`, then the
/// Kerberos mechanism OID), which is how MIT and Windows initiators send it to WinRM.
pub fn is_kerberos_token(token: &[u8]) -> bool {
    token.first() == Some(&0x60) && token.windows(KRB5_OID.len()).any(|w| w == KRB5_OID)
}

/// One Kerberos server context, bound to one connection.
pub struct KerberosAcceptor {
    kerberos: Kerberos,
}

impl std::fmt::Debug for KerberosAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KerberosAcceptor").finish_non_exhaustive()
    }
}

impl KerberosAcceptor {
    /// Accept the client's AP-REQ for `service`. Returns the established context, the client's
    /// principal (`user@REALM`), and the AP-REP to send back.
    pub fn accept(
        service: &KerberosService,
        token: &[u8],
    ) -> Result<(Self, String, Vec<u8>), KerberosError> {
        let properties = ServerProperties::new(
            &["HTTP", &service.fqdn],
            None,
            MAX_CLOCK_SKEW,
            Some(Secret::new(service.key.key.clone())),
        )
        .map_err(KerberosError::Token)?;
        let config = KerberosConfig {
            kdc_resolution: KdcResolution::KdcUrl(None),
            client_computer_name: service.fqdn.clone(),
        };
        let mut kerberos =
            Kerberos::new_server_from_config(config, properties).map_err(KerberosError::Token)?;
        let mut creds = None;
        let mut input = [SecurityBuffer::new(token.to_vec(), BufferType::Token)];
        let mut output = [SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let builder = kerberos
            .accept_security_context()
            .with_credentials_handle(&mut creds)
            .with_context_requirements(ServerRequestFlags::ALLOCATE_MEMORY)
            .with_target_data_representation(DataRepresentation::Native)
            .with_input(&mut input)
            .with_output(&mut output);
        let result = <Kerberos as SspiImpl>::accept_security_context_impl(&mut kerberos, builder)
            .and_then(|mut g| g.resolve_to_result())
            .map_err(KerberosError::Token)?;
        if result.status != SecurityStatus::Ok {
            return Err(KerberosError::Token(sspi::Error::new(
                sspi::ErrorKind::OutOfSequence,
                format!(
                    "a second round trip ({:?}) is not part of WinRM",
                    result.status
                ),
            )));
        }
        let user = kerberos
            .query_context_names()
            .map(|n| n.username.inner().to_string())
            .map_err(KerberosError::Token)?;
        let ap_rep = std::mem::take(&mut output[0].buffer);
        Ok((Self { kerberos }, user, ap_rep))
    }

    /// Seal a reply: the WinRM payload (4-byte little-endian header length, the 60-byte
    /// security header, the encrypted bytes, as long as `plaintext`).
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, KerberosError> {
        let mut header = [0u8; SECURITY_HEADER_LEN];
        let mut data = plaintext.to_vec();
        let mut buffers = [
            SecurityBufferRef::token_buf(&mut header),
            SecurityBufferRef::data_buf(&mut data),
        ];
        self.kerberos
            .encrypt_message(EncryptionFlags::empty(), &mut buffers)
            .map_err(KerberosError::Seal)?;
        let mut out = Vec::with_capacity(4 + SECURITY_HEADER_LEN + data.len());
        out.extend_from_slice(&(SECURITY_HEADER_LEN as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&data);
        Ok(out)
    }

    /// Unseal a request body's payload made by the client's wrap (header length, header, data).
    pub fn unseal(&mut self, payload: &[u8]) -> Result<Vec<u8>, KerberosError> {
        let (len, rest) = payload
            .split_first_chunk::<4>()
            .ok_or_else(|| KerberosError::Unseal("shorter than its length prefix".into()))?;
        let header_len = u32::from_le_bytes(*len) as usize;
        if header_len != SECURITY_HEADER_LEN || rest.len() < header_len {
            return Err(KerberosError::Unseal(format!(
                "security header of {header_len} bytes (an AES wrap token in the Windows \
                 layout has {SECURITY_HEADER_LEN})"
            )));
        }
        let (header, sealed) = rest.split_at(header_len);
        let mut header = header.to_vec();
        let mut data = sealed.to_vec();
        let mut buffers = [
            SecurityBufferRef::token_buf(&mut header),
            SecurityBufferRef::data_buf(&mut data),
        ];
        self.kerberos
            .decrypt_message(&mut buffers)
            .map_err(|e| KerberosError::Unseal(e.to_string()))?;
        Ok(buffers[1].data().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_raw_kerberos_tokens_only() {
        let mut token = vec![0x60, 0x82, 0x02, 0x00];
        token.extend_from_slice(KRB5_OID);
        token.extend_from_slice(&[1, 0]);
        assert!(is_kerberos_token(&token));
        assert!(!is_kerberos_token(b"NTLMSSP\0\x01\0\0\0"));
        // SPNEGO (1.3.6.1.5.5.2) without the Kerberos OID.
        assert!(!is_kerberos_token(&[
            0x60, 0x28, 0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02
        ]));
    }

    #[test]
    fn a_garbage_ap_req_is_a_token_error() {
        let keytab = Keytab {
            entries: vec![KeytabEntry {
                realm: "LAB.TEST".into(),
                components: vec!["HTTP".into(), "h.lab.test".into()],
                kvno: 2,
                enctype: 18,
                key: vec![7; 32],
            }],
        };
        let service = KerberosService::from_keytab(&keytab, "H.lab.test").unwrap();
        let mut token = vec![0x60, 0x10];
        token.extend_from_slice(KRB5_OID);
        token.extend_from_slice(&[1, 0, 0x6e, 0]);
        assert!(matches!(
            KerberosAcceptor::accept(&service, &token),
            Err(KerberosError::Token(_))
        ));
        assert!(KerberosService::from_keytab(&keytab, "other.lab.test").is_none());
    }
}
