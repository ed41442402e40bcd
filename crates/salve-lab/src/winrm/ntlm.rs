//! NTLM as the acceptor (the server side), bound to one TCP connection, with the sealing
//! WinRM's message encryption uses.
//!
//! The exchange is HTTP's: the client's NEGOTIATE arrives in `Authorization: Negotiate|NTLM
//! <base64>`, the server answers 401 with its CHALLENGE, the client's AUTHENTICATE completes the
//! context. The keys then seal and sign every message body on that connection (MS-WSMV
//! §2.2.9.1.1). The NTLM computations are the `sspi` crate's.

use sspi::{
    AuthIdentity, AuthIdentityBuffers, BufferType, CredentialUse, DataRepresentation,
    EncryptionFlags, Ntlm, SecurityBuffer, SecurityBufferRef, SecurityStatus, ServerRequestFlags,
    Sspi, SspiImpl, Username,
};

/// The NTLM signature length (MS-NLMP: version, checksum, sequence number).
const SIGNATURE_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum NtlmError {
    #[error("ntlm token rejected: {0}")]
    Token(String),
    #[error("logon failure for user {user:?}")]
    LogonDenied { user: String },
    #[error("the lab's user name is not a valid windows account name: {0}")]
    BadIdentity(String),
    #[error("message sealing failed: {0}")]
    Seal(String),
    #[error("message signature or sequence is wrong: {0}")]
    Unseal(String),
}

/// What a handshake step produced.
#[derive(Debug)]
pub enum Step {
    /// Send this CHALLENGE in a 401 and wait for the AUTHENTICATE.
    Challenge(Vec<u8>),
    /// The context is established for this user.
    Established { user: String },
}

/// One NTLM server context.
pub struct NtlmAcceptor {
    ntlm: Ntlm,
    creds: Option<AuthIdentityBuffers>,
    expected_user: String,
}

impl std::fmt::Debug for NtlmAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NtlmAcceptor")
            .field("expected_user", &self.expected_user)
            .finish_non_exhaustive()
    }
}

/// The account part of `DOMAIN\user` or `user@domain`, lower-cased for comparison.
fn account(user: &str) -> String {
    let tail = user.rsplit('\\').next().unwrap_or(user);
    tail.split('@').next().unwrap_or(tail).to_lowercase()
}

impl NtlmAcceptor {
    /// A fresh context that accepts `user` with `password`.
    pub fn new(user: &str, password: &str) -> Result<Self, NtlmError> {
        let mut ntlm = Ntlm::new();
        let username = Username::parse(user).map_err(|e| NtlmError::BadIdentity(e.to_string()))?;
        let identity = AuthIdentity {
            username,
            password: password.to_string().into(),
        };
        let acquired = ntlm
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Inbound)
            .with_auth_data(&identity)
            .execute(&mut ntlm)
            .map_err(|e| NtlmError::BadIdentity(e.to_string()))?;
        Ok(Self {
            ntlm,
            creds: acquired.credentials_handle,
            expected_user: account(user),
        })
    }

    /// Feed the client's NEGOTIATE or AUTHENTICATE message.
    pub fn step(&mut self, token: &[u8]) -> Result<Step, NtlmError> {
        let mut input = [SecurityBuffer::new(token.to_vec(), BufferType::Token)];
        let mut output = [SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let builder = self
            .ntlm
            .accept_security_context()
            .with_credentials_handle(&mut self.creds)
            .with_context_requirements(ServerRequestFlags::ALLOCATE_MEMORY)
            .with_target_data_representation(DataRepresentation::Native)
            .with_input(&mut input)
            .with_output(&mut output);
        let result = <Ntlm as SspiImpl>::accept_security_context_impl(&mut self.ntlm, builder)
            .and_then(|mut g| g.resolve_to_result())
            .map_err(|e| NtlmError::Token(e.to_string()))?;
        match result.status {
            SecurityStatus::ContinueNeeded => {
                Ok(Step::Challenge(std::mem::take(&mut output[0].buffer)))
            }
            SecurityStatus::CompleteNeeded
            | SecurityStatus::CompleteAndContinue
            | SecurityStatus::Ok => {
                let wire_user = self.wire_user();
                // sspi only checks the password; the account name must match as well.
                self.ntlm
                    .complete_auth_token(&mut [])
                    .map_err(|_| NtlmError::LogonDenied {
                        user: wire_user.clone(),
                    })?;
                if account(&wire_user) != self.expected_user {
                    return Err(NtlmError::LogonDenied { user: wire_user });
                }
                Ok(Step::Established { user: wire_user })
            }
            other => Err(NtlmError::Token(format!("unexpected status {other:?}"))),
        }
    }

    fn wire_user(&mut self) -> String {
        self.ntlm
            .query_context_names()
            .map(|n| n.username.account_name().to_string())
            .unwrap_or_default()
    }

    /// Seal a message: returns the WinRM payload (4-byte LE signature length, signature, sealed
    /// bytes of the same length as `plaintext`).
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, NtlmError> {
        let mut signature = [0u8; SIGNATURE_LEN];
        let mut data = plaintext.to_vec();
        let mut buffers = [
            SecurityBufferRef::token_buf(&mut signature),
            SecurityBufferRef::data_buf(&mut data),
        ];
        self.ntlm
            .encrypt_message(EncryptionFlags::empty(), &mut buffers)
            .map_err(|e| NtlmError::Seal(e.to_string()))?;
        let mut out = Vec::with_capacity(4 + SIGNATURE_LEN + data.len());
        out.extend_from_slice(&(SIGNATURE_LEN as u32).to_le_bytes());
        out.extend_from_slice(&signature);
        out.extend_from_slice(&data);
        Ok(out)
    }

    /// Verify and unseal a WinRM payload made by the client's `seal`.
    pub fn unseal(&mut self, payload: &[u8]) -> Result<Vec<u8>, NtlmError> {
        let (len, rest) = payload
            .split_first_chunk::<4>()
            .ok_or_else(|| NtlmError::Unseal("payload shorter than its length prefix".into()))?;
        if u32::from_le_bytes(*len) as usize != SIGNATURE_LEN || rest.len() < SIGNATURE_LEN {
            return Err(NtlmError::Unseal("signature length is not 16".into()));
        }
        let (sig, sealed) = rest.split_at(SIGNATURE_LEN);
        let mut signature = sig.to_vec();
        let mut data = sealed.to_vec();
        let mut buffers = [
            SecurityBufferRef::data_buf(&mut data),
            SecurityBufferRef::token_buf(&mut signature),
        ];
        self.ntlm
            .decrypt_message(&mut buffers)
            .map_err(|e| NtlmError::Unseal(e.to_string()))?;
        let plain = buffers[0].data().to_vec();
        Ok(plain)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use sspi::{ClientRequestFlags, SecurityStatus};

    /// A client context (the `sspi` initiator), used to exercise the acceptor in-process.
    pub(crate) struct Client {
        ntlm: Ntlm,
        creds: Option<AuthIdentityBuffers>,
    }

    impl Client {
        pub(crate) fn new(user: &str, password: &str) -> Self {
            let mut ntlm = Ntlm::new();
            let identity = AuthIdentity {
                username: Username::parse(user).unwrap(),
                password: password.to_string().into(),
            };
            let acquired = ntlm
                .acquire_credentials_handle()
                .with_credential_use(CredentialUse::Outbound)
                .with_auth_data(&identity)
                .execute(&mut ntlm)
                .unwrap();
            Self {
                ntlm,
                creds: acquired.credentials_handle,
            }
        }

        pub(crate) fn step(&mut self, input: Option<&[u8]>) -> Vec<u8> {
            let mut inbuf = input
                .map(|t| vec![SecurityBuffer::new(t.to_vec(), BufferType::Token)])
                .unwrap_or_default();
            let mut output = [SecurityBuffer::new(Vec::new(), BufferType::Token)];
            let mut builder = self
                .ntlm
                .initialize_security_context()
                .with_credentials_handle(&mut self.creds)
                .with_context_requirements(
                    ClientRequestFlags::CONFIDENTIALITY | ClientRequestFlags::INTEGRITY,
                )
                .with_target_data_representation(DataRepresentation::Native)
                .with_target_name("HTTP/lab")
                .with_input(&mut inbuf)
                .with_output(&mut output);
            let result =
                <Ntlm as SspiImpl>::initialize_security_context_impl(&mut self.ntlm, &mut builder)
                    .unwrap()
                    .resolve_to_result()
                    .unwrap();
            assert!(matches!(
                result.status,
                SecurityStatus::ContinueNeeded
                    | SecurityStatus::Ok
                    | SecurityStatus::CompleteNeeded
            ));
            std::mem::take(&mut output[0].buffer)
        }

        pub(crate) fn seal(&mut self, plaintext: &[u8]) -> Vec<u8> {
            let mut signature = [0u8; SIGNATURE_LEN];
            let mut data = plaintext.to_vec();
            let mut buffers = [
                SecurityBufferRef::token_buf(&mut signature),
                SecurityBufferRef::data_buf(&mut data),
            ];
            self.ntlm
                .encrypt_message(EncryptionFlags::empty(), &mut buffers)
                .unwrap();
            [&(SIGNATURE_LEN as u32).to_le_bytes()[..], &signature, &data].concat()
        }

        pub(crate) fn unseal(&mut self, payload: &[u8]) -> Vec<u8> {
            let mut signature = payload[4..4 + SIGNATURE_LEN].to_vec();
            let mut data = payload[4 + SIGNATURE_LEN..].to_vec();
            let mut buffers = [
                SecurityBufferRef::data_buf(&mut data),
                SecurityBufferRef::token_buf(&mut signature),
            ];
            self.ntlm.decrypt_message(&mut buffers).unwrap();
            buffers[0].data().to_vec()
        }
    }

    fn handshake(
        client_user: &str,
        client_pw: &str,
    ) -> (Client, NtlmAcceptor, Result<Step, NtlmError>) {
        let mut client = Client::new(client_user, client_pw);
        let mut server = NtlmAcceptor::new("lab\\labadmin", "Passw0rd!").unwrap();
        let negotiate = client.step(None);
        let Step::Challenge(challenge) = server.step(&negotiate).unwrap() else {
            panic!("expected a challenge")
        };
        let authenticate = client.step(Some(&challenge));
        let done = server.step(&authenticate);
        (client, server, done)
    }

    #[test]
    fn handshake_then_seal_both_ways() {
        let (mut client, mut server, done) = handshake("LAB\\labadmin", "Passw0rd!");
        let Step::Established { user } = done.unwrap() else {
            panic!("not established")
        };
        assert_eq!(account(&user), "labadmin");
        let sealed = client.seal(b"<request/>");
        assert_eq!(sealed.len(), 4 + 16 + 10);
        assert_eq!(server.unseal(&sealed).unwrap(), b"<request/>");
        // Sequence numbers advance: a second message must also verify.
        assert_eq!(server.unseal(&client.seal(b"two")).unwrap(), b"two");
        let reply = server.seal(b"<reply/>").unwrap();
        assert_eq!(client.unseal(&reply), b"<reply/>");
        // A replayed message is refused.
        assert!(server.unseal(&sealed).is_err());
    }

    #[test]
    fn wrong_password_is_refused() {
        let (_, _, done) = handshake("LAB\\labadmin", "wrong");
        assert!(
            matches!(done, Err(NtlmError::LogonDenied { .. })),
            "{done:?}"
        );
    }

    #[test]
    fn wrong_user_is_refused() {
        let (_, _, done) = handshake("LAB\\mallory", "Passw0rd!");
        assert!(
            matches!(done, Err(NtlmError::LogonDenied { .. })),
            "{done:?}"
        );
    }
}
