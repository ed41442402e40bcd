//! Signed catalogue data: which keys salve trusts to sign a catalogue update, what exactly is
//! signed, and how catalogue versions compare.
//!
//! A catalogue update is two files: the catalogue YAML and, beside it, `<name>.sig` holding the
//! base64 Ed25519 signature over [`signed_message`] (a domain-separation prefix and the YAML's
//! bytes, so a catalogue signature can never be mistaken for a plan approval). The keys are
//! compiled in: the project's release key (`keys/catalogue-release.pub`; its private half is kept
//! offline by the release manager, never in the repository) and, in debug builds only, the test
//! key (`keys/catalogue-test.pub`, private half in `tests/keys/`) so the test suite can sign
//! catalogues; release builds trust the release key alone.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::{Signature, VerifyingKey};
use jiff::civil::Date;
use sha2::{Digest as _, Sha256};

/// The project's catalogue release key (SubjectPublicKeyInfo PEM).
const RELEASE_KEY: &str = include_str!("keys/catalogue-release.pub");
/// The test suite's key; trusted by debug builds only.
#[cfg(debug_assertions)]
const TEST_KEY: &str = include_str!("keys/catalogue-test.pub");

/// A trusted signer.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub name: &'static str,
    pub key: VerifyingKey,
}

/// The keys a catalogue update may be signed with.
pub fn trusted_keys() -> Vec<TrustedKey> {
    #[cfg(debug_assertions)]
    let keys = [
        ("release", RELEASE_KEY),
        ("test (debug builds only)", TEST_KEY),
    ];
    #[cfg(not(debug_assertions))]
    let keys = [("release", RELEASE_KEY)];
    keys.into_iter()
        .filter_map(|(name, pem)| {
            // The PEM files are compiled in and parsed by `trusted_keys_parse` in the tests, so
            // this never drops a key in a tested build.
            VerifyingKey::from_public_key_pem(pem)
                .ok()
                .map(|key| TrustedKey { name, key })
        })
        .collect()
}

/// The exact bytes a catalogue signature covers.
pub fn signed_message(yaml: &[u8]) -> Vec<u8> {
    let mut message = b"salve catalogue v1\0".to_vec();
    message.extend_from_slice(yaml);
    message
}

/// Short, stable name of a public key: `sha256:` and the first 16 hex digits of its hash.
pub fn fingerprint(key: &VerifyingKey) -> String {
    let hash = Sha256::digest(key.as_bytes());
    format!("sha256:{}", &hex::encode(hash)[..16])
}

/// Why a signature does not verify.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature is not base64 of 64 bytes")]
    Malformed,
    #[error(
        "the signature does not verify against any trusted key ({keys}): the file was changed \
         after signing, or signed by a key salve does not trust"
    )]
    Untrusted { keys: String },
}

/// Verify `signature_b64` over `yaml`; returns the signer's name and fingerprint.
pub fn verify(yaml: &[u8], signature_b64: &str) -> Result<(String, String), SignatureError> {
    let bytes: [u8; 64] = BASE64
        .decode(signature_b64.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(SignatureError::Malformed)?;
    let signature = Signature::from_bytes(&bytes);
    let message = signed_message(yaml);
    let keys = trusted_keys();
    keys.iter()
        .find(|k| k.key.verify_strict(&message, &signature).is_ok())
        .map(|k| (k.name.to_owned(), fingerprint(&k.key)))
        .ok_or_else(|| SignatureError::Untrusted {
            keys: keys
                .iter()
                .map(|k| format!("{} {}", k.name, fingerprint(&k.key)))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// A catalogue version, `<date>.<revision>` (e.g. `2026-08-20.1`), ordered by date then
/// revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CatalogueVersion {
    pub date: Date,
    pub revision: u32,
}

/// Why a catalogue version was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a catalogue version (expected <date>.<revision>, e.g. 2026-08-20.1)")]
pub struct VersionParseError(String);

impl FromStr for CatalogueVersion {
    type Err = VersionParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || VersionParseError(s.to_owned());
        let (date, revision) = s.rsplit_once('.').ok_or_else(bad)?;
        if date.len() != 10 || revision.is_empty() || !revision.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        Ok(CatalogueVersion {
            date: date.parse().map_err(|_| bad())?,
            revision: revision.parse().map_err(|_| bad())?,
        })
    }
}

impl fmt::Display for CatalogueVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.date, self.revision)
    }
}

/// Compare two version strings; `None` when either does not parse.
pub fn compare_versions(a: &str, b: &str) -> Option<Ordering> {
    let a: CatalogueVersion = a.parse().ok()?;
    let b: CatalogueVersion = b.parse().ok()?;
    Some(a.cmp(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer as _;
    use ed25519_dalek::SigningKey;
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    use proptest::prelude::*;

    fn test_key() -> SigningKey {
        let pem = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/keys/catalogue-test.key"
        ))
        .unwrap();
        SigningKey::from_pkcs8_pem(&pem).unwrap()
    }

    #[test]
    fn trusted_keys_parse() {
        let keys = trusted_keys();
        assert_eq!(keys.len(), 2, "release and (debug) test key");
        assert_eq!(fingerprint(&keys[0].key), "sha256:84736f039d588ae8");
    }

    #[test]
    fn a_test_signature_verifies_and_any_change_breaks_it() {
        let yaml = b"version: x\n";
        let sig = BASE64.encode(test_key().sign(&signed_message(yaml)).to_bytes());
        let (name, _) = verify(yaml, &sig).unwrap();
        assert!(name.starts_with("test"));
        assert!(matches!(
            verify(b"version: y\n", &sig),
            Err(SignatureError::Untrusted { .. })
        ));
        assert!(matches!(
            verify(yaml, "AAAA"),
            Err(SignatureError::Malformed)
        ));
        // A signature over the bare bytes (no domain prefix) is not a catalogue signature.
        let bare = BASE64.encode(test_key().sign(yaml).to_bytes());
        assert!(verify(yaml, &bare).is_err());
    }

    #[test]
    fn versions_order_by_date_then_revision() {
        assert_eq!(
            compare_versions("2026-08-20.1", "2026-08-20.2"),
            Some(Ordering::Less)
        );
        assert_eq!(
            compare_versions("2026-09-01.1", "2026-08-20.9"),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare_versions("2026-08-20.10", "2026-08-20.9"),
            Some(Ordering::Greater)
        );
        assert_eq!(compare_versions("2021-07-14", "2026-08-20.1"), None);
    }

    proptest! {
        #[test]
        fn version_display_parses_back(y in 2000i16..2100, m in 1i8..=12, d in 1i8..=28, r in 0u32..1000) {
            let text = format!("{y:04}-{m:02}-{d:02}.{r}");
            let v: CatalogueVersion = text.parse().unwrap();
            prop_assert_eq!(v.to_string(), text);
        }
    }
}
