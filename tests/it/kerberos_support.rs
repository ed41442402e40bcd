//! A throwaway MIT Kerberos realm per test (tests/peers/krb5kdc.sh): a KDC on loopback, the
//! lab's user as a principal with the lab's password, an SPN `HTTP/<host>.lab.test` per lab
//! host with its key in a keytab the lab's hosts accept with, and the environment
//! (`KRB5_CONFIG`, `KRB5CCNAME`) that points clients into the realm's directory. Nothing
//! system-wide is read or changed.

use std::path::{Path, PathBuf};
use std::process::Command;

use salve_lab::frontends::Domain;
use salve_lab::winrm::Keytab;

/// The realm every test creates (the Active Directory domain `lab.test`).
pub const REALM: &str = "LAB.TEST";
/// The DNS suffix of the lab's hosts in that domain.
pub const DNS_SUFFIX: &str = "lab.test";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/krb5kdc.sh")
}

/// A running KDC; stopped on drop.
pub struct Kdc {
    dir: tempfile::TempDir,
}

impl Drop for Kdc {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .arg(script())
            .args(["stop"])
            .arg(self.dir.path())
            .status();
    }
}

impl Kdc {
    /// A realm with `user`/`password` and an SPN per host of `hosts`, its KDC on
    /// 127.0.0.1:`port`, its clock `clock_offset` ahead (`+600s`) when given; `None` (the test
    /// skips) when MIT's KDC is not installed, outside CI.
    pub fn start(
        port: u16,
        user: &str,
        password: &str,
        hosts: &[String],
        clock_offset: Option<&str>,
    ) -> Option<Kdc> {
        if !Path::new("/usr/sbin/krb5kdc").exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "MIT Kerberos missing: run tests/peers/install.sh"
            );
            eprintln!("SKIPPED: MIT Kerberos not installed; run tests/peers/install.sh");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let fqdns: Vec<String> = hosts.iter().map(|h| fqdn(h)).collect();
        let out = Command::new("sh")
            .arg(script())
            .arg("start")
            .arg(dir.path())
            .args([&port.to_string(), REALM, user, password])
            .args(&fqdns)
            .envs(clock_offset.map(|o| ("KDC_CLOCK_OFFSET", o)))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "krb5kdc.sh start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Kdc { dir })
    }

    /// The domain the lab's hosts join: they accept Kerberos with the realm's keytab.
    pub fn domain(&self) -> Domain {
        Domain {
            dns_suffix: DNS_SUFFIX.into(),
            keytab: Keytab::read(&self.dir.path().join("http.keytab")).unwrap(),
            mapped_certificates: Vec::new(),
        }
    }

    /// The environment a client in the realm runs with: its krb5.conf, and a credential cache
    /// of its own.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "KRB5_CONFIG".into(),
                self.dir.path().join("krb5.conf").display().to_string(),
            ),
            (
                "KRB5CCNAME".into(),
                format!("FILE:{}", self.dir.path().join("ccache").display()),
            ),
        ]
    }

    /// Run `kadmin.local` queries on the realm (remove an SPN, change a password...).
    pub fn kadmin(&self, queries: &[&str]) {
        let out = Command::new("sh")
            .arg(script())
            .arg("kadmin")
            .arg(self.dir.path())
            .args(queries)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kadmin {queries:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The KDC's log (one line per request: `AS_REQ`, `TGS_REQ`, with `PREAUTH_FAILED`...).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kdc.log")).unwrap_or_default()
    }

    /// How many lines of the KDC's log mention every one of `what`.
    pub fn log_count(&self, what: &[&str]) -> usize {
        self.log()
            .lines()
            .filter(|l| what.iter().all(|w| l.contains(w)))
            .count()
    }

    /// `kinit [ARGS] user` with `password` on stdin into the realm's credential cache.
    pub fn kinit(&self, args: &[&str], user: &str, password: &str) {
        use std::io::Write as _;
        let mut child = Command::new("kinit")
            .args(args)
            .arg(user)
            .envs(self.env())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "kinit: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A lab host's DNS name in the realm's domain.
pub fn fqdn(host: &str) -> String {
    format!("{host}.{DNS_SUFFIX}")
}
