//! `salve catalogue` through the real binary: a signed newer catalogue is installed and used by
//! `assess`; a tampered, an older and an unsigned one are refused, and an installed file that
//! was changed afterwards is refused at start-up.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const COMPILED_IN: &str = include_str!("../../src/exchange/catalogue.yaml");
const TEST_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/catalogue-test.key");

fn salve(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_salve"))
        .args(args)
        .env("SALVE_STATE_DIR", state)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The compiled-in catalogue with another version, written to `dir/name`.
fn catalogue_file(dir: &Path, name: &str, version: &str) -> PathBuf {
    let yaml = COMPILED_IN.replacen(
        "version: \"2026-08-20.1\"",
        &format!("version: \"{version}\""),
        1,
    );
    assert_ne!(
        yaml, COMPILED_IN,
        "the version line is where the test expects it"
    );
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap();
    path
}

fn sign(state: &Path, file: &Path) {
    let out = salve(
        state,
        &[
            "catalogue",
            "sign",
            file.to_str().unwrap(),
            "--key",
            TEST_KEY,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

fn assessed_version(state: &Path) -> String {
    let out = salve(state, &["assess", "--json", "15.2.2562.46"]);
    let a: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    a["catalogue_version"].as_str().unwrap().to_owned()
}

#[test]
fn only_a_signed_newer_catalogue_is_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let files = tmp.path();
    assert_eq!(assessed_version(&state), "2026-08-20.1");

    // Unsigned: refused.
    let unsigned = catalogue_file(files, "unsigned.yaml", "2026-09-15.1");
    let out = salve(
        &state,
        &["catalogue", "update", "--from", unsigned.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("is not signed"), "{}", text(&out));

    // Tampered after signing: refused.
    let tampered = catalogue_file(files, "tampered.yaml", "2026-09-15.1");
    sign(&state, &tampered);
    let yaml = std::fs::read_to_string(&tampered).unwrap();
    std::fs::write(&tampered, yaml.replacen("KB5121573", "KB5121579", 1)).unwrap();
    let out = salve(
        &state,
        &["catalogue", "update", "--from", tampered.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("does not verify"), "{}", text(&out));

    // Older than the one in use: refused.
    let older = catalogue_file(files, "older.yaml", "2026-07-01.1");
    sign(&state, &older);
    let out = salve(
        &state,
        &["catalogue", "update", "--from", older.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("is not newer than 2026-08-20.1"),
        "{}",
        text(&out)
    );
    assert_eq!(
        assessed_version(&state),
        "2026-08-20.1",
        "nothing was installed"
    );

    // Signed and newer: installed, and every command now uses it.
    let newer = catalogue_file(files, "newer.yaml", "2026-09-15.1");
    sign(&state, &newer);
    let out = salve(&state, &["catalogue", "verify", newer.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = salve(
        &state,
        &["catalogue", "update", "--from", newer.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("installed catalogue 2026-09-15.1 (was 2026-08-20.1)"),
        "{}",
        text(&out)
    );
    assert_eq!(assessed_version(&state), "2026-09-15.1");
    let out = salve(&state, &["catalogue", "status"]);
    assert!(
        text(&out).contains("catalogue 2026-09-15.1 (351 builds)"),
        "{}",
        text(&out)
    );
    // The same version again is not newer.
    let out = salve(
        &state,
        &["catalogue", "update", "--from", newer.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));

    // The installed file changed afterwards: refused at start-up, compiled-in used.
    let installed = state.join("catalogue/catalogue.yaml");
    let yaml = std::fs::read_to_string(&installed).unwrap();
    std::fs::write(&installed, yaml.replacen("KB5121573", "KB5121579", 1)).unwrap();
    let out = salve(&state, &["assess", "--json", "15.2.2562.46"]);
    assert!(
        text(&out).contains("warning:") && text(&out).contains("does not verify"),
        "{}",
        text(&out)
    );
    assert_eq!(assessed_version(&state), "2026-08-20.1");
}

#[test]
fn status_warns_when_the_data_is_older_than_45_days() {
    let tmp = tempfile::tempdir().unwrap();
    let out = salve(tmp.path(), &["catalogue", "status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["version"], "2026-08-20.1");
    assert_eq!(s["source"], "compiled-in");
    // The data is from 2026-08-20: stale from 2026-10-05 on.
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let stale = today > "2026-10-04".parse::<jiff::civil::Date>().unwrap();
    assert_eq!(s["stale"], stale);
    if stale {
        let out = salve(tmp.path(), &["catalogue", "status"]);
        assert!(text(&out).contains("older than 45 days"), "{}", text(&out));
    }
}

/// Serve `files` (path → bytes) over plain HTTP on loopback, one request per connection;
/// anything else is a 404. Returns the base URL.
fn serve(files: Vec<(String, Vec<u8>)>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            let _ = reader.read_line(&mut request);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let (status, body) = files
                .iter()
                .find(|(p, _)| *p == path)
                .map_or(("404 Not Found", Vec::new()), |(_, b)| {
                    ("200 OK", b.clone())
                });
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    base
}

#[test]
fn a_signed_catalogue_is_installed_from_a_url_and_an_unsigned_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let newer = catalogue_file(tmp.path(), "newer.yaml", "2026-09-15.1");
    sign(&state, &newer);
    let yaml = std::fs::read(&newer).unwrap();
    let sig = std::fs::read(sig_of(&newer)).unwrap();
    let base = serve(vec![
        ("/c/catalogue.yaml".into(), yaml.clone()),
        ("/c/catalogue.yaml.sig".into(), sig),
        ("/unsigned/catalogue.yaml".into(), yaml),
    ]);
    let out = salve(
        &state,
        &[
            "catalogue",
            "update",
            "--from",
            &format!("{base}/unsigned/catalogue.yaml"),
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("is not signed"), "{}", text(&out));
    let url = format!("{base}/c/catalogue.yaml");
    let out = salve(&state, &["catalogue", "update", "--from", &url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("from {url}")),
        "{}",
        text(&out)
    );
    assert_eq!(assessed_version(&state), "2026-09-15.1");
}

fn sig_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}
