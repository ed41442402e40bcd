//! The HTML run reports of a real lab run (two tenants, a DAG, a compromised server, a failing
//! install, an unreachable server), opened in headless Chromium: the rendered pages show the
//! expected hosts and states, a tenant's page holds no other tenant's host names, `salve runs
//! report` reproduces every file byte for byte from the journal, and the run writes nothing
//! beside its playbook.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::lab_support::{Lab, salve_with};

const FLEET: &str = "\
seed: 5
time_scale: 600
tenants:
  - name: contoso
    hosts: 4
    builds: [15.2.792.3]
    dags: [{name: contoso-dag1, members: 3, databases: 3}]
  - name: fabrikam
    hosts: 3
    builds: [15.1.2176.2]
hosts:
  fabrikam-ex01: {compromised: true}
  fabrikam-ex02: {faults: {install_failure: fatal}}
  fabrikam-ex03: {faults: {unreachable: true}}
";

/// Two daily windows half a day apart: always one open with hours left, in a named zone.
const WINDOWS: &str =
    r#"["daily 00:00-23:59 Europe/Brussels", "daily 12:00-11:59 Europe/Brussels"]"#;

const CONTOSO: [&str; 4] = [
    "contoso-ex01",
    "contoso-ex02",
    "contoso-ex03",
    "contoso-ex04",
];
const FABRIKAM: [&str; 3] = ["fabrikam-ex01", "fabrikam-ex02", "fabrikam-ex03"];

/// Debian's Chromium, installed by `tests/peers/install.sh`.
fn chromium() -> PathBuf {
    for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!("no chromium: run `sh tests/peers/install.sh` (it installs Debian's `chromium`)");
}

/// Headless Chromium on `page`: a screenshot of `width`×`height` and a PDF print beside
/// `shot`, and the rendered DOM.
fn render(page: &Path, shot: &Path, (width, height): (u32, u32)) -> String {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.display());
    let run = |extra: &[String]| {
        let out = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--window-size={width},{height}"))
            .args(extra)
            .arg(&url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&[format!("--screenshot={}", shot.display())]);
    let pdf = shot.with_extension("pdf");
    run(&[
        format!("--print-to-pdf={}", pdf.display()),
        "--no-pdf-header-footer".to_string(),
    ]);
    let printed = std::fs::read(&pdf).unwrap();
    assert!(
        printed.starts_with(b"%PDF") && printed.len() > 10_000,
        "{} prints to PDF",
        page.display()
    );
    run(&["--dump-dom".to_string()])
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is a PNG",
        path.display()
    );
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_reports_render_in_chromium_per_tenant_and_again_from_the_journal() {
    let lab = Lab::start(73, FLEET).await;
    let mut inv = lab.inventory();
    for host in CONTOSO {
        inv = inv.host_var(host, "salve_maintenance_window", WINDOWS);
    }
    let inv = inv.write();
    let work = tempfile::tempdir().unwrap();
    // The shipped playbook, copied so that anything written beside it would show.
    let playbooks = work.path().join("playbooks");
    std::fs::create_dir(&playbooks).unwrap();
    let playbook = playbooks.join("proxylogon.yml");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/proxylogon.yml"),
        &playbook,
    )
    .unwrap();
    let state = work.path().join("state");
    let out = work.path().join("report");
    let env = [
        ("SALVE_STATE_DIR", state.to_str().unwrap()),
        ("NO_PROXY", "127.0.0.0/8"),
    ];
    let (code, stdout, stderr) = salve_with(
        &[
            "run",
            "--json",
            "--all-tenants",
            playbook.to_str().unwrap(),
            "-i",
            inv.to_str().unwrap(),
            "--report-dir",
            out.to_str().unwrap(),
        ],
        &env,
    )
    .await;
    assert_eq!(
        code, 2,
        "a failed install, a compromised and an unreachable host: {stderr}"
    );
    let run_id = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "run_started")
        .and_then(|e| e["run_id"].as_str().map(String::from))
        .expect("a run_started event");
    assert_eq!(
        std::fs::read_dir(&playbooks).unwrap().count(),
        1,
        "nothing is written beside the playbook (evidence goes to the report directory)"
    );
    assert!(
        state
            .join("evidence/before/fabrikam-ex01-ioc.json")
            .exists()
            && state.join("evidence/after/fabrikam-ex01-ioc.json").exists(),
        "the playbook's relative evidence_dirs (before any change, and at the end) are inside \
         the state directory"
    );

    // The pages and the evidence, where the layout says.
    let whole = out.join("report.html");
    let contoso = out.join("tenants/contoso/report.html");
    let fabrikam = out.join("tenants/fabrikam/report.html");
    for page in [&whole, &contoso, &fabrikam] {
        assert!(page.exists(), "{} written", page.display());
    }
    let evidence = std::fs::read_to_string(out.join("evidence/fabrikam-ex01-ioc.json")).unwrap();
    assert!(evidence.contains("\"compromised\": true"), "{evidence}");
    assert!(
        out.join("tenants/fabrikam/evidence/fabrikam-ex01-ioc.json")
            .exists()
    );
    assert!(
        !out.join("tenants/contoso/evidence/fabrikam-ex01-ioc.json")
            .exists()
    );

    // Rendered by a real browser: hosts, states and the charts are on the page.
    let shots = work.path().join("shots");
    std::fs::create_dir(&shots).unwrap();
    let dom = render(&whole, &shots.join("whole.png"), (1280, 2000));
    for host in CONTOSO.iter().chain(&FABRIKAM) {
        assert!(dom.contains(host), "{host} on the whole-run page");
    }
    let catalogue = &salve::exchange::catalogue::catalogue().unwrap().version;
    for text in [
        "vulnerable → fixed",
        "compromised → compromised",
        "unreachable",
        "exit code 1603",
        "FOUND (",
        "DAG contoso-dag1: maintenance per member",
        "DAG contoso-dag1: at most 1 member in maintenance at a time.",
        "Hosts by state, before and after the run",
        "Europe/Brussels",
        catalogue.as_str(),
    ] {
        assert!(dom.contains(text), "`{text}` on the whole-run page");
    }
    assert!(
        dom.matches("<svg").count() >= 3,
        "posture, DAG and duration charts"
    );
    let (w, h) = png_size(&shots.join("whole.png"));
    assert_eq!((w, h), (1280, 2000), "the screenshot has the window's size");
    assert!(
        std::fs::metadata(shots.join("whole.png")).unwrap().len() > 40_000,
        "a page with tables and charts, not a blank one"
    );

    // A tenant's page: its own hosts, no other tenant's names.
    for (page, own, other, tenant) in [
        (&contoso, &CONTOSO[..], &FABRIKAM[..], "contoso"),
        (&fabrikam, &FABRIKAM[..], &CONTOSO[..], "fabrikam"),
    ] {
        let shot = shots.join(format!("{tenant}.png"));
        let dom = render(page, &shot, (1280, 1600));
        let raw = std::fs::read_to_string(page).unwrap();
        for host in own {
            assert!(dom.contains(host), "{host} on {tenant}'s page");
        }
        let stranger = if tenant == "contoso" {
            "fabrikam"
        } else {
            "contoso"
        };
        for host in other {
            assert!(!raw.contains(host), "{host} is not on {tenant}'s page");
        }
        assert!(
            !raw.contains(stranger),
            "no trace of {stranger} on {tenant}'s page"
        );
        assert!(
            !dom.contains(stranger),
            "no trace of {stranger} in {tenant}'s rendered page"
        );
        assert_eq!(png_size(&shot), (1280, 1600));
    }

    // Again from the journal: the same bytes, every file.
    let again = work.path().join("again");
    let (code, printed, stderr) = salve_with(
        &["runs", "report", &run_id, "-o", again.to_str().unwrap()],
        &env,
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(printed.contains("tenants/contoso/report.html"), "{printed}");
    let written: Vec<PathBuf> = files(&out)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e != "xml") && p != Path::new("report.json"))
        .collect();
    assert_eq!(files(&again), written);
    for f in &written {
        assert!(
            std::fs::read(out.join(f)).unwrap() == std::fs::read(again.join(f)).unwrap(),
            "{} differs when rendered from the journal",
            f.display()
        );
    }
    // One tenant only.
    let one = work.path().join("one");
    let (code, _, stderr) = salve_with(
        &[
            "runs",
            "report",
            &run_id,
            "--tenant",
            "fabrikam",
            "-o",
            one.to_str().unwrap(),
        ],
        &env,
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        std::fs::read(one.join("report.html")).unwrap(),
        std::fs::read(&fabrikam).unwrap()
    );
    let (code, _, stderr) = salve_with(
        &[
            "runs",
            "report",
            &run_id,
            "--tenant",
            "nobody",
            "-o",
            one.to_str().unwrap(),
        ],
        &env,
    )
    .await;
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("no tenant `nobody` (its tenants: contoso, fabrikam)"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assessment_playbook_writes_the_posture_page_and_changes_nothing() {
    let lab = Lab::start(74, FLEET).await;
    let inv = lab.inventory().write();
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let out = work.path().join("posture");
    let playbook = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/assess.yml");
    let (code, _, stderr) = salve_with(
        &[
            "run",
            "--no-progress",
            "--all-tenants",
            playbook.to_str().unwrap(),
            "-i",
            inv.to_str().unwrap(),
            "--report-dir",
            out.to_str().unwrap(),
        ],
        &[
            ("SALVE_STATE_DIR", state.to_str().unwrap()),
            ("NO_PROXY", "127.0.0.0/8"),
        ],
    )
    .await;
    assert_eq!(
        code, 2,
        "only the unreachable server fails a posture read: {stderr}"
    );
    let changed = lab
        .fleet
        .log()
        .entries()
        .into_iter()
        .filter(|e| e.event.changes_the_server())
        .count();
    assert_eq!(changed, 0, "the lab saw no change");
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    for text in [
        "Nothing was changed.",
        "vulnerable → vulnerable",
        "compromised → compromised",
        "unknown → unknown",
        "FOUND (",
    ] {
        assert!(page.contains(text), "`{text}` on the posture page");
    }
    let fabrikam = std::fs::read_to_string(out.join("tenants/fabrikam/report.html")).unwrap();
    assert!(fabrikam.contains("fabrikam-ex01") && !fabrikam.contains("contoso"));
}
