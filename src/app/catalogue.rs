//! `salve catalogue`: the build/CVE catalogue in use, and installing a newer signed one.
//!
//! The compiled-in catalogue is the floor. `update --from FILE` (or an `http(s)://` URL, whose
//! `.sig` is fetched beside it) copies `FILE` and `FILE.sig` into `<state dir>/catalogue/` (the state directory the run journal uses) only when the
//! signature verifies against a compiled-in key ([`crate::exchange::signature`]), the data
//! passes the catalogue's checks, and its version is newer than the one in use. At start-up,
//! [`activate_installed`] verifies the installed copy again and makes it the catalogue every
//! command reads, if it is still newer than the compiled-in one (a salve upgrade may bring a
//! newer one).

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use jiff::civil::Date;
use serde::Serialize;

use crate::exchange::catalogue::{self, Catalogue, CatalogueError};
use crate::exchange::signature::{self, SignatureError};
use crate::plan::KeyPair;

/// Older data than this many days makes `status` warn: Microsoft ships SUs monthly at most.
pub const STALE_AFTER_DAYS: i32 = 45;

/// Why a catalogue file is refused or cannot be installed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueFileError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not signed: {} is missing (sign it with `salve catalogue sign`)", path.display(), sig.display())]
    Unsigned {
        path: PathBuf,
        sig: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is refused: its signature ({}) does not verify", path.display(), sig.display())]
    Signature {
        path: PathBuf,
        sig: PathBuf,
        #[source]
        source: SignatureError,
    },
    #[error("{} is refused: it is not valid catalogue data", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: CatalogueError,
    },
    #[error("{} is refused: version `{version}` is not <date>.<revision>", path.display())]
    BadVersion { path: PathBuf, version: String },
    #[error("{} is refused: its version {version} is not newer than {current}, the one in use", path.display())]
    NotNewer {
        path: PathBuf,
        version: String,
        current: String,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no state directory: set SALVE_STATE_DIR")]
    NoStateDir(#[source] crate::journal::JournalError),
    #[error("cannot read the signing key")]
    Key(#[source] crate::plan::PlanError),
    #[error("cannot download {url}")]
    Fetch {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot download {url}: the server answered {status}")]
    HttpStatus { url: String, status: u16 },
    #[error("cannot start the HTTP client")]
    Runtime(#[source] std::io::Error),
}

/// A verified catalogue file.
pub struct Verified {
    pub catalogue: Catalogue,
    pub path: PathBuf,
    /// The trusted key that signed it: name and fingerprint.
    pub signer: (String, String),
    yaml: Vec<u8>,
    signature: String,
}

/// `FILE.sig` beside `FILE`.
pub fn sig_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

/// Read, verify and check a catalogue file and its signature.
pub fn verify_file(path: &Path) -> Result<Verified, CatalogueFileError> {
    let yaml = std::fs::read(path).map_err(|source| CatalogueFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let sig = sig_path(path);
    let signature =
        std::fs::read_to_string(&sig).map_err(|source| CatalogueFileError::Unsigned {
            path: path.to_path_buf(),
            sig: sig.clone(),
            source,
        })?;
    let signer =
        signature::verify(&yaml, &signature).map_err(|source| CatalogueFileError::Signature {
            path: path.to_path_buf(),
            sig,
            source,
        })?;
    let text = String::from_utf8_lossy(&yaml);
    let catalogue = Catalogue::parse(&text).map_err(|source| CatalogueFileError::Invalid {
        path: path.to_path_buf(),
        source,
    })?;
    if catalogue
        .version
        .parse::<signature::CatalogueVersion>()
        .is_err()
    {
        return Err(CatalogueFileError::BadVersion {
            path: path.to_path_buf(),
            version: catalogue.version.clone(),
        });
    }
    Ok(Verified {
        catalogue,
        path: path.to_path_buf(),
        signer,
        yaml,
        signature,
    })
}

/// `<state dir>/catalogue/catalogue.yaml`.
pub fn installed_path() -> Result<PathBuf, CatalogueFileError> {
    crate::journal::state_dir()
        .map(|dir| dir.join("catalogue").join("catalogue.yaml"))
        .map_err(CatalogueFileError::NoStateDir)
}

/// What start-up did about an installed catalogue.
pub enum Activation {
    /// Nothing installed (or no state directory).
    None,
    /// The installed catalogue is in use.
    Installed { version: String, path: PathBuf },
    /// The installed catalogue is not newer than the compiled-in one: the compiled-in one is used.
    Superseded { version: String, path: PathBuf },
}

/// Verify the installed catalogue, if any, and make it the one every command reads when it is
/// newer than the compiled-in one. An installed file that no longer verifies is an error (the
/// caller warns and goes on with the compiled-in catalogue).
pub fn activate_installed() -> Result<Activation, CatalogueFileError> {
    let Ok(path) = installed_path() else {
        return Ok(Activation::None);
    };
    if !path.exists() {
        return Ok(Activation::None);
    }
    let verified = verify_file(&path)?;
    let version = verified.catalogue.version.clone();
    let newer = catalogue::compiled_in()
        .ok()
        .and_then(|c| signature::compare_versions(&version, &c.version))
        .is_some_and(|o| o == Ordering::Greater);
    if !newer {
        return Ok(Activation::Superseded { version, path });
    }
    // Only the first activation counts; start-up calls this once.
    let _ = catalogue::activate(verified.catalogue);
    Ok(Activation::Installed { version, path })
}

/// What `update` did.
pub struct Updated {
    /// Where the catalogue came from (a file or a URL).
    pub source: String,
    pub from: String,
    pub to: String,
    pub path: PathBuf,
    pub signer: (String, String),
}

/// Install the signed catalogue at `source` (a file, or an `http(s)://` URL whose `.sig` sits
/// beside it) if it is newer than the one in use.
pub fn update_from(source: &str) -> Result<Updated, CatalogueFileError> {
    if !(source.starts_with("https://") || source.starts_with("http://")) {
        return update(Path::new(source));
    }
    let dir = tempfile::tempdir().map_err(|source| CatalogueFileError::Write {
        path: std::env::temp_dir(),
        source,
    })?;
    let file = dir.path().join("catalogue.yaml");
    download(source, &file)?;
    download(&format!("{source}.sig"), &sig_path(&file)).map_err(|e| match e {
        CatalogueFileError::HttpStatus { status: 404, .. } => CatalogueFileError::Unsigned {
            path: PathBuf::from(source),
            sig: PathBuf::from(format!("{source}.sig")),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "404 Not Found"),
        },
        other => other,
    })?;
    update(&file).map(|mut u| {
        u.source = source.to_owned();
        u
    })
}

/// GET `url` into `to`. The content is trusted only once its signature verifies.
fn download(url: &str, to: &Path) -> Result<(), CatalogueFileError> {
    // The HTTP client's TLS needs a process-wide crypto provider; salve uses ring. An error only
    // means one is installed already.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let fetch = |source| CatalogueFileError::Fetch {
        url: url.to_owned(),
        source,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CatalogueFileError::Runtime)?;
    let bytes = runtime.block_on(async {
        let response = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(fetch)?
            .get(url)
            .send()
            .await
            .map_err(fetch)?;
        let status = response.status();
        if !status.is_success() {
            return Err(CatalogueFileError::HttpStatus {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        response.bytes().await.map_err(fetch)
    })?;
    std::fs::write(to, &bytes).map_err(|source| CatalogueFileError::Write {
        path: to.to_path_buf(),
        source,
    })
}

/// Install the signed catalogue at `from` if it is newer than the one in use.
pub fn update(from: &Path) -> Result<Updated, CatalogueFileError> {
    let verified = verify_file(from)?;
    let current = catalogue::catalogue()
        .map(|c| c.version.clone())
        .unwrap_or_default();
    let newer = signature::compare_versions(&verified.catalogue.version, &current)
        .is_none_or(|o| o == Ordering::Greater);
    if !newer {
        return Err(CatalogueFileError::NotNewer {
            path: from.to_path_buf(),
            version: verified.catalogue.version.clone(),
            current,
        });
    }
    let target = installed_path()?;
    write_atomically(&sig_path(&target), verified.signature.as_bytes())?;
    write_atomically(&target, &verified.yaml)?;
    Ok(Updated {
        source: from.display().to_string(),
        from: current,
        to: verified.catalogue.version.clone(),
        path: target,
        signer: verified.signer,
    })
}

/// Write `FILE.sig` for `file` with the private key at `key`.
pub fn sign(file: &Path, key: &Path) -> Result<PathBuf, CatalogueFileError> {
    let yaml = std::fs::read(file).map_err(|source| CatalogueFileError::Read {
        path: file.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8_lossy(&yaml);
    Catalogue::parse(&text).map_err(|source| CatalogueFileError::Invalid {
        path: file.to_path_buf(),
        source,
    })?;
    let pair = KeyPair::load(key).map_err(CatalogueFileError::Key)?;
    let signature = BASE64.encode(pair.sign_bytes(&signature::signed_message(&yaml)));
    let sig = sig_path(file);
    std::fs::write(&sig, format!("{signature}\n")).map_err(|source| CatalogueFileError::Write {
        path: sig.clone(),
        source,
    })?;
    Ok(sig)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CatalogueFileError> {
    let error = |source| CatalogueFileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(error)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(error)?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(error)?;
    tmp.persist(path).map_err(|e| error(e.error))?;
    Ok(())
}

/// `status`: the catalogue in use and how old its data is.
#[derive(Debug, Serialize)]
pub struct Status {
    pub version: String,
    pub as_of: Date,
    /// `compiled-in` or the installed file's path.
    pub source: String,
    pub age_days: i32,
    pub stale: bool,
    pub builds: usize,
    pub families: Vec<FamilySummary>,
}

/// One family in `status`/`show`.
#[derive(Debug, Serialize)]
pub struct FamilySummary {
    pub family: String,
    pub builds: usize,
    pub cves: usize,
    pub newest: String,
}

/// The status of `cat`, loaded from `source`, on `today`.
pub fn status(cat: &Catalogue, source: String, today: Date) -> Status {
    let age_days = (today - cat.as_of).get_days();
    Status {
        version: cat.version.clone(),
        as_of: cat.as_of,
        source,
        age_days,
        stale: age_days > STALE_AFTER_DAYS,
        builds: cat.build_count(),
        families: cat
            .families()
            .iter()
            .map(|f| FamilySummary {
                family: f.family.to_string(),
                builds: f.levels.iter().map(|l| 1 + l.updates.len()).sum(),
                cves: f.affected().len(),
                newest: f.newest().map_or_else(String::new, |l| {
                    let (label, kb) = match l.updates.last() {
                        Some(u) => (format!("{} {}", l.cu, u.su), u.kb),
                        None => (l.cu.clone(), l.kb),
                    };
                    let kb = kb.map_or_else(String::new, |kb| format!(", {kb}"));
                    format!("{label} ({}{kb})", l.last_build())
                }),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_warns_after_45_days() {
        let cat = catalogue::compiled_in().unwrap();
        let day = |s: &str| s.parse::<Date>().unwrap();
        let fresh = status(cat, "compiled-in".into(), day("2026-09-01"));
        assert!(!fresh.stale && fresh.age_days == 12);
        let old = status(cat, "compiled-in".into(), day("2026-12-07"));
        assert!(old.stale && old.age_days == 109);
        assert_eq!(old.builds, 351);
        assert_eq!(old.families.len(), 5);
        assert_eq!(
            old.families[4].newest,
            "RTM Aug26SU (15.2.2562.46, KB5121573)"
        );
    }
}
