//! Change approval end to end against the lab: `salve plan` is deterministic and changes
//! nothing; `salve apply` refuses an edited plan, an untrusted approval, a changed playbook or
//! inventory; it runs only the approved steps, leaves a host whose facts drifted alone, and
//! defers hosts outside their maintenance window.

use salve_lab::log::LabEvent;

use crate::lab_support::{Lab, salve_with};

const FLEET: &str = "\
seed: 21
time_scale: 600
tenants:
  - name: t
    hosts: 3
    builds: [15.2.792.3]
";

fn is_change(e: &LabEvent) -> bool {
    e.changes_the_server()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_approve_apply_exactly() {
    let lab = Lab::start(39, FLEET).await;
    // t-ex03 may only be worked on during a window that is closed at the rehearsal time below.
    let inv = lab
        .inventory()
        .host_var(
            "t-ex03",
            "salve_maintenance_window",
            "\"Sat 22:00-Sun 04:00 UTC\"",
        )
        .write();
    let pb_src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/proxylogon.yml");
    let pb = lab.write("proxylogon.yml", &std::fs::read_to_string(&pb_src).unwrap());
    let dir = inv.parent().unwrap().to_path_buf();
    let p = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let epoch = [("SOURCE_DATE_EPOCH", "1615363200")];
    let plan_args = [
        "plan",
        pb.to_str().unwrap(),
        "-i",
        inv.to_str().unwrap(),
        "--no-progress",
    ];

    // Planning twice gives the same bytes and changes nothing on the hosts.
    let (code, _, err) = salve_with(
        &[&plan_args[..], &["-o", &p("a/plan.json")]].concat(),
        &epoch,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let (code, _, _) = salve_with(
        &[&plan_args[..], &["-o", &p("b/plan.json")]].concat(),
        &epoch,
    )
    .await;
    assert_eq!(code, 0);
    let plan_a = std::fs::read(p("a/plan.json")).unwrap();
    assert_eq!(
        plan_a,
        std::fs::read(p("b/plan.json")).unwrap(),
        "plans are byte-identical"
    );
    assert_eq!(
        lab.fleet
            .log()
            .entries()
            .iter()
            .filter(|e| is_change(&e.event))
            .count(),
        0,
        "planning changed a host"
    );
    let plan: serde_json::Value = serde_json::from_slice(&plan_a).unwrap();
    assert_eq!(plan["totals"]["hosts_with_steps"], 3);
    assert!(
        std::path::Path::new(&p("a/plan.html")).exists()
            && std::path::Path::new(&p("a/plan.t.md")).exists()
    );

    // Keys: Jane is trusted, Mallory is not.
    for who in ["jane", "mallory"] {
        let (code, _, err) = salve_with(&["keygen", "--out", &p(who)], &[]).await;
        assert_eq!(code, 0, "{err}");
    }
    std::fs::create_dir_all(p("trusted")).unwrap();
    std::fs::copy(p("jane.pub"), p("trusted/jane.pub")).unwrap();
    let apply = |plan: String| {
        let trusted = p("trusted");
        async move {
            salve_with(
                &[
                    "apply",
                    &plan,
                    "--trusted-keys",
                    &trusted,
                    "--no-progress",
                    "--json",
                    "--at",
                    "2021-03-10T12:00:00Z",
                ],
                &[],
            )
            .await
        }
    };

    // Unapproved, then approved by an untrusted key only: refused.
    let (code, _, err) = apply(p("a/plan.json")).await;
    assert_eq!(code, 3, "{err}");
    let (code, _, _) = salve_with(
        &[
            "approve",
            &p("a/plan.json"),
            "--key",
            &p("mallory.key"),
            "--name",
            "Mallory",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0);
    let (code, _, err) = apply(p("a/plan.json")).await;
    assert_eq!(code, 3, "untrusted approval accepted: {err}");

    // An edited plan is refused, naming what changed.
    let (code, _, _) = salve_with(
        &[
            "approve",
            &p("b/plan.json"),
            "--key",
            &p("jane.key"),
            "--name",
            "Jane Doe",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0);
    let tampered = std::fs::read_to_string(p("b/plan.json")).unwrap().replacen(
        "\"reboot\": true",
        "\"reboot\": false",
        1,
    );
    std::fs::write(p("tampered.json"), tampered).unwrap();
    let (code, _, err) = apply(p("tampered.json")).await;
    assert_eq!(code, 3, "tampered plan accepted: {err}");

    // A plan made under another build catalogue is refused until planned again, even when
    // approved: the assessed paths may differ.
    let plan_text = std::fs::read_to_string(p("b/plan.json")).unwrap();
    let current = format!(
        "\"catalogue_version\": \"{}\"",
        salve::exchange::catalogue::catalogue().unwrap().version
    );
    assert!(
        plan_text.contains(&current),
        "the plan records its catalogue"
    );
    let mut other: serde_json::Value = serde_json::from_str(&plan_text).unwrap();
    other["catalogue_version"] = "2026-01-01.1".into();
    other["approvals"] = serde_json::json!([]);
    std::fs::write(p("other-catalogue.json"), other.to_string()).unwrap();
    let (code, _, err) = salve_with(
        &[
            "approve",
            &p("other-catalogue.json"),
            "--key",
            &p("jane.key"),
            "--name",
            "Jane Doe",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = apply(p("other-catalogue.json")).await;
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("made with build catalogue `2026-01-01.1`"),
        "{err}"
    );

    // A changed playbook is refused.
    std::fs::write(
        &pb,
        format!(
            "{}\n# edited after approval\n",
            std::fs::read_to_string(&pb_src).unwrap()
        ),
    )
    .unwrap();
    let (code, _, err) = apply(p("b/plan.json")).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("changed since the plan was made"), "{err}");
    std::fs::write(&pb, std::fs::read_to_string(&pb_src).unwrap()).unwrap();

    // Drift: t-ex02 gets its updates out of band after planning.
    let idx = lab.fleet.core().index("t-ex02").unwrap();
    lab.fleet
        .core()
        .with_host(idx, |s| s.build = Some("15.2.1748.49".parse().unwrap()));

    let (code, out, err) = apply(p("b/plan.json")).await;
    assert_eq!(
        code, 2,
        "drifted and deferred hosts make the run incomplete: {err}"
    );
    assert!(err.contains("approved by Jane Doe"), "{err}");
    assert!(err.contains("deferred: t-ex03"), "{err}");
    let drifted = out.lines().any(|l| {
        l.contains("\"host_dropped\"")
            && l.contains("t-ex02")
            && l.contains("drifted since the plan")
    });
    assert!(drifted, "{out}");
    let log = lab.fleet.log().entries();
    let changed = |host: &str| {
        log.iter()
            .filter(|e| e.host == host && is_change(&e.event))
            .count()
    };
    assert_eq!(changed("t-ex02"), 0, "a drifted host must not be touched");
    assert_eq!(changed("t-ex03"), 0, "a deferred host must not be touched");
    let installs = log
        .iter()
        .filter(|e| e.host == "t-ex01" && matches!(e.event, LabEvent::Installed { .. }))
        .count();
    assert_eq!(
        installs, 2,
        "t-ex01 got exactly its planned updates (CU15, then its Aug26SU)"
    );
    let state = lab.fleet.state("t-ex01").unwrap();
    assert_eq!(state.build.unwrap().to_string(), "15.2.1748.49");
    assert!(
        state.rewrite_rules.is_empty(),
        "the planned removal of the mitigation ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_check_prints_the_plan_and_writes_nothing() {
    let lab = Lab::start(44, FLEET).await;
    let inv = lab.inventory().write();
    let pb = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/proxylogon.yml");
    let dir = inv.parent().unwrap().to_path_buf();
    let (code, out, err) = salve_with(
        &[
            "run",
            pb.to_str().unwrap(),
            "-i",
            inv.to_str().unwrap(),
            "--check",
            "--no-progress",
        ],
        &[("SALVE_STATE_DIR", dir.join("state").to_str().unwrap())],
    )
    .await;
    assert_eq!(code, 0, "{err}{out}");
    assert!(out.contains("# Change plan: "), "{out}");
    assert!(out.contains("KB5121574 (to build 15.2.1748.49)"), "{out}");
    assert!(!dir.join("plan.json").exists());
    assert_eq!(
        lab.fleet
            .log()
            .entries()
            .iter()
            .filter(|e| is_change(&e.event))
            .count(),
        0
    );
}
