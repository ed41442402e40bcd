//! Approvals: Ed25519 countersignatures over a plan's digest.
//!
//! `salve keygen --out NAME` makes `NAME.key` (PKCS#8 PEM, `BEGIN PRIVATE KEY`, owner-only) and
//! `NAME.pub` (SubjectPublicKeyInfo PEM, `BEGIN PUBLIC KEY`); both are standard, so
//! `openssl pkey -in NAME.key -pubout` gives the same public key. An approval records who
//! signed, their public key, when, the plan digest and a digest per plan section; the signature
//! covers a domain-separated message of the digest, the name and the time
//! ([`signed_message`]). The section digests are only there to say *what* changed when a plan
//! no longer matches its approval.
//!
//! [`verify`] accepts a plan when at least `require` distinct trusted keys signed its current
//! digest. An approval over another digest (the plan was edited afterwards) or with a bad
//! signature refuses the plan outright; approvals by keys outside the trusted directory are not
//! counted, and are named when the count falls short. Several approvals by one key count once.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{Plan, PlanError};

/// One countersignature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub name: String,
    /// The signer's Ed25519 public key, base64 of its 32 bytes.
    pub public_key: String,
    pub signed_at: jiff::Timestamp,
    /// [`Plan::digest`] at the time of signing.
    pub plan_digest: String,
    /// [`Plan::section_digests`] at the time of signing (diagnostic, not signed).
    pub sections: BTreeMap<String, String>,
    /// Base64 of the 64-byte signature over [`signed_message`].
    pub signature: String,
}

/// A counted approver, as returned by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approver {
    pub name: String,
    pub fingerprint: String,
    pub signed_at: jiff::Timestamp,
}

/// The exact bytes an approver signs.
pub fn signed_message(plan_digest: &str, name: &str, signed_at: &jiff::Timestamp) -> Vec<u8> {
    format!("salve plan approval v1\0{plan_digest}\0{name}\0{signed_at}").into_bytes()
}

/// Short, stable name of a public key: `sha256:` and the first 16 hex digits of its hash.
pub fn fingerprint(key: &VerifyingKey) -> String {
    let hash = Sha256::digest(key.as_bytes());
    format!("sha256:{}", &hex::encode(hash)[..16])
}

/// [`fingerprint`] of a base64 public key as stored in an approval.
pub fn fingerprint_of(public_key: &str) -> Option<String> {
    let bytes: [u8; 32] = BASE64.decode(public_key).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes)
        .ok()
        .map(|k| fingerprint(&k))
}

/// A signing key read from (or written to) a `.key` file.
pub struct KeyPair {
    signing: SigningKey,
}

impl KeyPair {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<KeyPair, getrandom::Error> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut())?;
        Ok(KeyPair {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// A key from a known seed, for reproducible test output.
    #[cfg(test)]
    pub(crate) fn from_seed(seed: [u8; 32]) -> KeyPair {
        KeyPair {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    pub fn public(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// Write `BASE.key` (mode 0600 on Unix) and `BASE.pub`; never overwrites either.
    /// Returns the two paths.
    pub fn save(&self, base: &Path) -> Result<(PathBuf, PathBuf), PlanError> {
        let key_path = with_suffix(base, "key");
        let pub_path = with_suffix(base, "pub");
        for path in [&key_path, &pub_path] {
            if path.exists() {
                return Err(PlanError::KeyExists { path: path.clone() });
            }
        }
        let line_ending = ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF;
        let private = self
            .signing
            .to_pkcs8_pem(line_ending)
            .map_err(|e| key_error(&key_path, "private", e))?;
        let public = self
            .public()
            .to_public_key_pem(line_ending)
            .map_err(|e| key_error(&pub_path, "public", e))?;
        write_new(&key_path, private.as_bytes(), true)?;
        write_new(&pub_path, public.as_bytes(), false)?;
        Ok((key_path, pub_path))
    }

    /// Read a `.key` file written by [`KeyPair::save`] (or any PKCS#8 Ed25519 PEM).
    pub fn load(path: &Path) -> Result<KeyPair, PlanError> {
        let text = read(path)?;
        let signing =
            SigningKey::from_pkcs8_pem(&text).map_err(|e| key_error(path, "Ed25519 private", e))?;
        Ok(KeyPair { signing })
    }

    /// The 64-byte signature of `message` (for other signed data, e.g. catalogue updates).
    pub fn sign_bytes(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    /// An approval of `plan` by `name`, signed at `signed_at`.
    pub fn approval(&self, plan: &Plan, name: &str, signed_at: jiff::Timestamp) -> Approval {
        let digest = plan.digest();
        let signature = self
            .signing
            .sign(&signed_message(&digest, name, &signed_at));
        Approval {
            name: name.to_string(),
            public_key: BASE64.encode(self.public().as_bytes()),
            signed_at,
            plan_digest: digest,
            sections: plan.section_digests(),
            signature: BASE64.encode(signature.to_bytes()),
        }
    }
}

/// Append an approval by `key` to `plan`; refused if this key already approved this digest.
pub fn approve(
    plan: &mut Plan,
    key: &KeyPair,
    name: &str,
    signed_at: jiff::Timestamp,
) -> Result<(), PlanError> {
    let approval = key.approval(plan, name, signed_at);
    if let Some(previous) = plan
        .approvals
        .iter()
        .find(|a| a.public_key == approval.public_key && a.plan_digest == approval.plan_digest)
    {
        return Err(PlanError::AlreadyApproved {
            name: previous.name.clone(),
        });
    }
    plan.approvals.push(approval);
    Ok(())
}

/// The public keys whose approvals count, from `*.pub` files in one directory.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    pub dir: PathBuf,
    keys: BTreeSet<[u8; 32]>,
}

impl TrustedKeys {
    /// Every `*.pub` file in `dir`; a file that is not an Ed25519 public key is an error
    /// (a typo in a trust store should not pass silently).
    pub fn load_dir(dir: &Path) -> Result<TrustedKeys, PlanError> {
        let err = |source| PlanError::Read {
            path: dir.to_path_buf(),
            source,
        };
        let mut keys = BTreeSet::new();
        for entry in std::fs::read_dir(dir).map_err(err)? {
            let path = entry.map_err(err)?.path();
            if path.extension().is_some_and(|e| e == "pub") {
                let key = VerifyingKey::from_public_key_pem(&read(&path)?)
                    .map_err(|e| key_error(&path, "Ed25519 public", e))?;
                keys.insert(key.to_bytes());
            }
        }
        Ok(TrustedKeys {
            dir: dir.to_path_buf(),
            keys,
        })
    }

    pub fn contains(&self, key: &VerifyingKey) -> bool {
        self.keys.contains(key.as_bytes())
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// [`verify_with`] against the `*.pub` keys in `trusted_keys_dir`.
pub fn verify(
    plan: &Plan,
    trusted_keys_dir: &Path,
    require: usize,
) -> Result<Vec<Approver>, PlanError> {
    verify_with(plan, &TrustedKeys::load_dir(trusted_keys_dir)?, require)
}

/// Check every approval of `plan` and count the distinct trusted keys that signed its current
/// digest; `require` of them are needed. Returns the counted approvers (one per key, earliest
/// signature first).
pub fn verify_with(
    plan: &Plan,
    trusted: &TrustedKeys,
    require: usize,
) -> Result<Vec<Approver>, PlanError> {
    let digest = plan.digest();
    let mut counted: BTreeMap<[u8; 32], Approver> = BTreeMap::new();
    let mut untrusted = Vec::new();
    for approval in &plan.approvals {
        if approval.plan_digest != digest {
            return Err(PlanError::DigestMismatch {
                name: approval.name.clone(),
                approved: approval.plan_digest.clone(),
                actual: digest,
                changed: plan.changed_sections(&approval.sections),
            });
        }
        let bad = || PlanError::BadSignature {
            name: approval.name.clone(),
            fingerprint: approval.public_key.clone(),
        };
        let key_bytes: [u8; 32] = BASE64
            .decode(&approval.public_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(bad)?;
        let key = VerifyingKey::from_bytes(&key_bytes).map_err(|_| bad())?;
        let bad = || PlanError::BadSignature {
            name: approval.name.clone(),
            fingerprint: fingerprint(&key),
        };
        let signature: [u8; 64] = BASE64
            .decode(&approval.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(bad)?;
        let message = signed_message(&approval.plan_digest, &approval.name, &approval.signed_at);
        key.verify_strict(&message, &Signature::from_bytes(&signature))
            .map_err(|_| bad())?;
        if !trusted.contains(&key) {
            untrusted.push(format!("{} ({})", approval.name, fingerprint(&key)));
            continue;
        }
        let approver = Approver {
            name: approval.name.clone(),
            fingerprint: fingerprint(&key),
            signed_at: approval.signed_at,
        };
        counted
            .entry(key_bytes)
            .and_modify(|a| {
                if approver.signed_at < a.signed_at {
                    *a = approver.clone();
                }
            })
            .or_insert(approver);
    }
    let have = counted.len();
    if have < require {
        return Err(if untrusted.is_empty() {
            PlanError::NotEnoughApprovals {
                have,
                need: require,
            }
        } else {
            PlanError::UntrustedKeys {
                have,
                need: require,
                dir: trusted.dir.clone(),
                untrusted,
            }
        });
    }
    let mut approvers: Vec<Approver> = counted.into_values().collect();
    approvers.sort_by(|a, b| (a.signed_at, &a.name).cmp(&(b.signed_at, &b.name)));
    Ok(approvers)
}

fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

fn read(path: &Path) -> Result<String, PlanError> {
    std::fs::read_to_string(path).map_err(|source| PlanError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn key_error(
    path: &Path,
    what: &'static str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> PlanError {
    PlanError::Key {
        path: path.to_path_buf(),
        what,
        source: Box::new(source),
    }
}

/// Create `path` (it must not exist) and write `bytes`; owner-only on Unix when `private`.
fn write_new(path: &Path, bytes: &[u8], private: bool) -> Result<(), PlanError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let err = |source| PlanError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = options.open(path).map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    file.sync_all().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::sample;

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    /// Two board members with trusted keys in a directory, and an outsider.
    struct Board {
        dir: tempfile::TempDir,
        jane: KeyPair,
        omar: KeyPair,
        mallory: KeyPair,
    }

    fn board() -> Board {
        let dir = tempfile::tempdir().unwrap();
        let trust = dir.path().join("trusted");
        std::fs::create_dir(&trust).unwrap();
        let jane = KeyPair::generate().unwrap();
        let omar = KeyPair::generate().unwrap();
        let mallory = KeyPair::generate().unwrap();
        jane.save(&trust.join("jane")).unwrap();
        omar.save(&trust.join("omar")).unwrap();
        mallory.save(&dir.path().join("mallory")).unwrap();
        // Private keys lying in the trust directory are not public keys and are ignored.
        Board {
            dir,
            jane,
            omar,
            mallory,
        }
    }

    impl Board {
        fn trusted(&self) -> PathBuf {
            self.dir.path().join("trusted")
        }
    }

    #[test]
    fn key_files_round_trip_and_the_private_one_is_owner_only() {
        let b = board();
        let loaded = KeyPair::load(&b.trusted().join("jane.key")).unwrap();
        assert_eq!(loaded.public(), b.jane.public());
        let text = std::fs::read_to_string(b.trusted().join("jane.key")).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"), "{text}");
        let public = std::fs::read_to_string(b.trusted().join("jane.pub")).unwrap();
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"), "{public}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |f: &str| {
                std::fs::metadata(b.trusted().join(f))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777
            };
            assert_eq!(mode("jane.key"), 0o600);
            assert_eq!(mode("jane.pub"), 0o644);
        }
        let err = b.jane.save(&b.trusted().join("jane")).unwrap_err();
        assert!(matches!(err, PlanError::KeyExists { .. }), "{err}");
    }

    #[test]
    fn one_trusted_approval_is_accepted() {
        let b = board();
        let mut plan = sample();
        approve(&mut plan, &b.jane, "Jane Doe", at("2024-03-02T11:00:00Z")).unwrap();
        let approvers = verify(&plan, &b.trusted(), 1).unwrap();
        assert_eq!(approvers.len(), 1);
        assert_eq!(approvers[0].name, "Jane Doe");
        assert_eq!(approvers[0].fingerprint, fingerprint(&b.jane.public()));
    }

    #[test]
    fn editing_a_step_after_approval_is_refused_and_named() {
        let b = board();
        let mut plan = sample();
        approve(&mut plan, &b.jane, "Jane Doe", at("2024-03-02T11:00:00Z")).unwrap();
        plan.hosts[0].steps[0].action = "install something else".into();
        let err = verify(&plan, &b.trusted(), 1).unwrap_err();
        let PlanError::DigestMismatch { name, changed, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(name, "Jane Doe");
        assert_eq!(changed, &["host ex01.acme.local"]);
        assert!(
            err.to_string()
                .contains("edited after Jane Doe approved it"),
            "{err}"
        );
    }

    #[test]
    fn a_changed_name_or_time_breaks_the_signature() {
        let b = board();
        let mut plan = sample();
        approve(&mut plan, &b.jane, "Jane Doe", at("2024-03-02T11:00:00Z")).unwrap();
        let mut renamed = plan.clone();
        renamed.approvals[0].name = "CISO".into();
        assert!(matches!(
            verify(&renamed, &b.trusted(), 1),
            Err(PlanError::BadSignature { .. })
        ));
        let mut retimed = plan.clone();
        retimed.approvals[0].signed_at = at("2024-03-01T11:00:00Z");
        assert!(matches!(
            verify(&retimed, &b.trusted(), 1),
            Err(PlanError::BadSignature { .. })
        ));
        // Someone else's key pasted in: the signature no longer matches it.
        let mut swapped = plan.clone();
        swapped.approvals[0].public_key = BASE64.encode(b.omar.public().as_bytes());
        assert!(matches!(
            verify(&swapped, &b.trusted(), 1),
            Err(PlanError::BadSignature { .. })
        ));
    }

    #[test]
    fn untrusted_keys_do_not_count_and_are_named() {
        let b = board();
        let mut plan = sample();
        approve(&mut plan, &b.mallory, "Mallory", at("2024-03-02T11:00:00Z")).unwrap();
        let err = verify(&plan, &b.trusted(), 1).unwrap_err();
        assert!(
            matches!(&err, PlanError::UntrustedKeys { have: 0, need: 1, untrusted, .. }
                if untrusted[0].starts_with("Mallory (sha256:")),
            "{err}"
        );
        approve(&mut plan, &b.jane, "Jane Doe", at("2024-03-02T11:05:00Z")).unwrap();
        let approvers = verify(&plan, &b.trusted(), 1).unwrap();
        assert_eq!(approvers.len(), 1, "Mallory is not counted");
    }

    #[test]
    fn two_of_two_needs_two_distinct_keys() {
        let b = board();
        let mut plan = sample();
        approve(&mut plan, &b.jane, "Jane Doe", at("2024-03-02T11:00:00Z")).unwrap();
        // A second approval by the same key under another name counts once.
        plan.approvals
            .push(b.jane.approval(&plan, "J. Doe", at("2024-03-02T11:01:00Z")));
        let err = verify(&plan, &b.trusted(), 2).unwrap_err();
        assert!(
            matches!(err, PlanError::NotEnoughApprovals { have: 1, need: 2 }),
            "{err}"
        );
        assert!(matches!(
            approve(&mut plan, &b.jane, "Jane", at("2024-03-02T11:02:00Z")),
            Err(PlanError::AlreadyApproved { .. })
        ));
        approve(
            &mut plan,
            &b.omar,
            "Omar Haddad",
            at("2024-03-02T12:00:00Z"),
        )
        .unwrap();
        let approvers = verify(&plan, &b.trusted(), 2).unwrap();
        let names: Vec<&str> = approvers.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["Jane Doe", "Omar Haddad"]);
        // Zero required accepts an unapproved plan (verification of an unsigned workflow).
        assert!(verify(&sample(), &b.trusted(), 0).unwrap().is_empty());
    }

    #[test]
    fn a_broken_trusted_key_file_is_an_error() {
        let b = board();
        std::fs::write(b.trusted().join("typo.pub"), "not a key").unwrap();
        let err = TrustedKeys::load_dir(&b.trusted()).unwrap_err();
        assert!(err.to_string().contains("typo.pub"), "{err}");
    }
}
