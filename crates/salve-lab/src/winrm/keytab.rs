//! Reading an MIT keytab (file format version 0x0502, as `kadmin ktadd` and Windows' `ktpass`
//! write it): the long-term keys of service principals, which is what a Windows computer
//! account holds for its SPNs (`HTTP/host.domain`) and what the lab's Kerberos acceptor
//! decrypts service tickets with.
//!
//! Layout (all integers big-endian): `05 02`, then entries, each an `i32` size (negative: a
//! hole left by a removed entry, skipped) followed by the component count (`u16`), the realm
//! and the components (each a `u16` length and bytes), the name type (`u32`), a timestamp
//! (`u32`), an 8-bit key version, the key (`u16` enctype, `u16` length, bytes), and, when the
//! entry has room, a 32-bit key version that supersedes the 8-bit one.

use std::path::{Path, PathBuf};

/// One key of one principal.
#[derive(Clone)]
pub struct KeytabEntry {
    pub realm: String,
    /// Name components: `["HTTP", "t-ex01.lab.test"]` for `HTTP/t-ex01.lab.test`.
    pub components: Vec<String>,
    pub kvno: u32,
    pub enctype: u16,
    pub key: Vec<u8>,
}

impl std::fmt::Debug for KeytabEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeytabEntry")
            .field("realm", &self.realm)
            .field("components", &self.components)
            .field("kvno", &self.kvno)
            .field("enctype", &self.enctype)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeytabError {
    #[error("cannot read the keytab {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an MIT keytab (version 0x0502): {detail}")]
    Format { path: PathBuf, detail: &'static str },
}

/// The keys of a keytab file.
#[derive(Debug, Clone, Default)]
pub struct Keytab {
    pub entries: Vec<KeytabEntry>,
}

impl Keytab {
    pub fn read(path: &Path) -> Result<Self, KeytabError> {
        let bytes = std::fs::read(path).map_err(|source| KeytabError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&bytes).map_err(|detail| KeytabError::Format {
            path: path.to_path_buf(),
            detail,
        })
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, &'static str> {
        let mut r = Reader(bytes);
        if r.take(2)? != [0x05, 0x02] {
            return Err("wrong version");
        }
        let mut entries = Vec::new();
        while !r.0.is_empty() {
            let size = i32::from_be_bytes(r.array()?);
            let len = size.unsigned_abs() as usize;
            let body = r.take(len)?;
            if size > 0 {
                entries.push(entry(body)?);
            }
        }
        Ok(Self { entries })
    }

    /// The newest key of `service/host@realm` (case-insensitive host, as Windows' SPNs).
    pub fn service_key(&self, service: &str, host: &str) -> Option<&KeytabEntry> {
        self.entries
            .iter()
            .filter(|e| {
                e.components.len() == 2
                    && e.components[0].eq_ignore_ascii_case(service)
                    && e.components[1].eq_ignore_ascii_case(host)
            })
            .max_by_key(|e| e.kvno)
    }
}

fn entry(body: &[u8]) -> Result<KeytabEntry, &'static str> {
    let mut r = Reader(body);
    let count = u16::from_be_bytes(r.array()?);
    let realm = r.string()?;
    let components = (0..count)
        .map(|_| r.string())
        .collect::<Result<Vec<_>, _>>()?;
    let _name_type = r.take(4)?;
    let _timestamp = r.take(4)?;
    let kvno8 = r.take(1)?[0];
    let enctype = u16::from_be_bytes(r.array()?);
    let key_len = u16::from_be_bytes(r.array()?) as usize;
    let key = r.take(key_len)?.to_vec();
    let kvno = match r.0.len() {
        n if n >= 4 => u32::from_be_bytes(r.array()?),
        _ => u32::from(kvno8),
    };
    Ok(KeytabEntry {
        realm,
        components,
        kvno,
        enctype,
        key,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err("truncated entry");
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        self.take(N)?.try_into().map_err(|_| "truncated entry")
    }

    fn string(&mut self) -> Result<String, &'static str> {
        let len = u16::from_be_bytes(self.array()?) as usize;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| "a name is not UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One entry as `ktadd` writes it (with the 32-bit kvno).
    fn entry_bytes(realm: &str, comps: &[&str], kvno: u32, key: &[u8]) -> Vec<u8> {
        let mut e = (comps.len() as u16).to_be_bytes().to_vec();
        for s in std::iter::once(realm).chain(comps.iter().copied()) {
            e.extend((s.len() as u16).to_be_bytes());
            e.extend(s.as_bytes());
        }
        e.extend(1u32.to_be_bytes());
        e.extend(0u32.to_be_bytes());
        e.push(kvno as u8);
        e.extend(18u16.to_be_bytes());
        e.extend((key.len() as u16).to_be_bytes());
        e.extend(key);
        e.extend(kvno.to_be_bytes());
        let mut out = (e.len() as i32).to_be_bytes().to_vec();
        out.extend(e);
        out
    }

    #[test]
    fn reads_entries_skips_holes_and_picks_the_newest_key() {
        let mut file = vec![5, 2];
        file.extend(entry_bytes(
            "LAB.TEST",
            &["HTTP", "a.lab.test"],
            2,
            &[1; 32],
        ));
        file.extend((-8i32).to_be_bytes());
        file.extend([0; 8]);
        file.extend(entry_bytes(
            "LAB.TEST",
            &["HTTP", "a.lab.test"],
            3,
            &[2; 32],
        ));
        let kt = Keytab::parse(&file).unwrap();
        assert_eq!(kt.entries.len(), 2);
        let key = kt.service_key("http", "A.lab.test").unwrap();
        assert_eq!((key.kvno, key.enctype, key.key[0]), (3, 18, 2));
        assert!(kt.service_key("HTTP", "b.lab.test").is_none());
    }

    #[test]
    fn wrong_version_and_truncation_are_errors() {
        assert_eq!(Keytab::parse(&[5, 1]).unwrap_err(), "wrong version");
        let mut file = vec![5, 2];
        file.extend(entry_bytes("R", &["HTTP", "h"], 1, &[0; 32]));
        file.truncate(file.len() - 3);
        assert!(Keytab::parse(&file).is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut file = vec![5, 2];
            file.extend(body);
            let _ = Keytab::parse(&file);
        }
    }
}
