//! Secrets: inventories hold *references* (`env:NAME`, `file:PATH`, `prompt`), resolved only when
//! a connection is opened. A resolved [`Secret`] never prints its value: `Debug` and `Display`
//! show `<redacted>`, so a secret cannot leak through a log line, an error or a report by accident.

use std::fmt;
use std::path::PathBuf;

/// Does this variable hold a password (so its value is a [`SecretRef`] and must never be shown)?
/// `ansible_password`, `ansible_winrm_password`, `ansible_ssh_pass`, `ansible_become_password`,
/// `ansible_become_pass`, `salve_password`, and any name ending in `_password`.
pub fn is_secret_var(name: &str) -> bool {
    matches!(
        name,
        "ansible_ssh_pass" | "ansible_become_pass" | "ansible_pass"
    ) || name.ends_with("_password")
}

/// Does this key hold a secret wherever it appears: a password variable, or a bare `password`
/// (as module arguments and results name it)?
pub fn is_secret_key(name: &str) -> bool {
    is_secret_var(name) || name == "password"
}

/// `value` as it serialises with the value of every secret key ([`is_secret_key`]) replaced,
/// at any depth: what may be written to a journal, a queue or a report. Written straight out,
/// not copied first.
#[derive(Debug, Clone, Copy)]
pub struct Redacted<'a>(pub &'a serde_json::Value);

impl Redacted<'_> {
    /// As JSON text.
    pub fn to_text(self) -> String {
        // Serialising a JSON value to text cannot fail.
        serde_json::to_string(&self).unwrap_or_default()
    }
}

impl serde::Serialize for Redacted<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        use serde_json::Value;
        match self.0 {
            Value::Object(map) => {
                let mut out = serializer.serialize_map(Some(map.len()))?;
                for (k, v) in map {
                    if is_secret_key(k) {
                        out.serialize_entry(k, REDACTED)?;
                    } else {
                        out.serialize_entry(k, &Redacted(v))?;
                    }
                }
                out.end()
            }
            Value::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for v in items {
                    out.serialize_element(&Redacted(v))?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// What a secret's value reads as once redacted.
const REDACTED: &str = "<redacted>";

/// Where a secret comes from, as written in an inventory or playbook.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "ref", rename_all = "snake_case")]
pub enum SecretRef {
    /// `env:NAME`: read environment variable `NAME`.
    Env(String),
    /// `file:PATH`: read the file (first line, trailing newline trimmed); must not be
    /// readable by group or others.
    File(PathBuf),
    /// `prompt`: ask on the terminal once per run.
    Prompt,
    /// A clear-text value written in the inventory (works, but warns once per run).
    #[serde(serialize_with = "serialize_plain")]
    Plain(String),
}

fn serialize_plain<S: serde::Serializer>(_: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("<clear text, redacted>")
}

impl SecretRef {
    /// Parse the inventory spelling of a secret reference.
    pub fn parse(text: &str) -> Self {
        if let Some(name) = text.strip_prefix("env:") {
            SecretRef::Env(name.to_string())
        } else if let Some(path) = text.strip_prefix("file:") {
            SecretRef::File(PathBuf::from(path))
        } else if text == "prompt" {
            SecretRef::Prompt
        } else {
            SecretRef::Plain(text.to_string())
        }
    }

    pub fn is_plain(&self) -> bool {
        matches!(self, SecretRef::Plain(_))
    }

    /// Resolve without a terminal: `Prompt` is an error here (the CLI resolves prompts itself).
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        match self {
            SecretRef::Env(name) => std::env::var(name)
                .map(Secret::new)
                .map_err(|_| SecretError::EnvMissing(name.clone())),
            SecretRef::File(path) => read_secret_file(path),
            SecretRef::Prompt => PROMPTED
                .get()
                .cloned()
                .ok_or(SecretError::PromptUnavailable),
            SecretRef::Plain(v) => Ok(Secret::new(v.clone())),
        }
    }
}

/// The answer to the run's one password question, shared by every `prompt` reference.
static PROMPTED: std::sync::OnceLock<Secret> = std::sync::OnceLock::new();

/// Ask once on the terminal (without echo) for the value of every `prompt` reference.
pub fn ask_prompt_once(question: &str) -> Result<(), SecretError> {
    if PROMPTED.get().is_some() {
        return Ok(());
    }
    let answer =
        rpassword::prompt_password(question).map_err(|_| SecretError::PromptUnavailable)?;
    // A second caller racing to set it would have asked the same question; keep the first.
    let _ = PROMPTED.set(Secret::new(answer));
    Ok(())
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(n) => write!(f, "env:{n}"),
            SecretRef::File(p) => write!(f, "file:{}", p.display()),
            SecretRef::Prompt => write!(f, "prompt"),
            SecretRef::Plain(_) => write!(f, "<clear text, redacted>"),
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretRef({self})")
    }
}

fn read_secret_file(path: &PathBuf) -> Result<Secret, SecretError> {
    let meta =
        std::fs::metadata(path).map_err(|e| SecretError::File(path.clone(), e.to_string()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(SecretError::FileMode(path.clone(), mode & 0o777));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text = std::fs::read_to_string(path)
        .map_err(|e| SecretError::File(path.clone(), e.to_string()))?;
    Ok(Secret::new(
        text.lines().next().unwrap_or_default().to_string(),
    ))
}

/// Why a secret could not be resolved. Never contains the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable `{0}` is not set; export it or change the reference")]
    EnvMissing(String),
    #[error("cannot read secret file {path}: {detail}", path = .0.display(), detail = .1)]
    File(PathBuf, String),
    #[error("secret file {path} has mode {mode:o}; run `chmod 600` on it so only its owner can read it", path = .0.display(), mode = .1)]
    FileMode(PathBuf, u32),
    #[error(
        "this secret is `prompt` but there is no terminal to ask on; use env: or file: instead"
    )]
    PromptUnavailable,
}

/// A resolved secret value. Printing it shows `<redacted>`; use [`Secret::expose`] to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// The value itself, for handing to an authentication routine. Never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_reference_forms() {
        assert_eq!(
            SecretRef::parse("env:EX_PW"),
            SecretRef::Env("EX_PW".into())
        );
        assert_eq!(
            SecretRef::parse("file:/etc/pw"),
            SecretRef::File("/etc/pw".into())
        );
        assert_eq!(SecretRef::parse("prompt"), SecretRef::Prompt);
        assert!(SecretRef::parse("hunter2").is_plain());
    }

    #[test]
    fn never_prints_values() {
        let plain = SecretRef::parse("hunter2");
        assert!(!format!("{plain} {plain:?}").contains("hunter2"));
        assert!(!serde_json::to_string(&plain).unwrap().contains("hunter2"));
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
    }

    #[test]
    fn redacts_secret_keys_at_any_depth() {
        let value = serde_json::json!({
            "user": "svc",
            "password": "hunter2",
            "hosts": [{"ansible_password": "x", "name": "ex01"}],
        });
        assert_eq!(
            serde_json::to_value(Redacted(&value)).unwrap(),
            serde_json::json!({
                "user": "svc",
                "password": "<redacted>",
                "hosts": [{"ansible_password": "<redacted>", "name": "ex01"}],
            })
        );
        assert!(is_secret_key("salve_password") && !is_secret_key("passwords"));
    }

    #[cfg(unix)]
    #[test]
    fn refuses_group_readable_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            SecretRef::File(p.clone()).resolve(),
            Err(SecretError::FileMode(..))
        ));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(SecretRef::File(p).resolve().unwrap().expose(), "s3cret");
    }
}
