//! `salve apply --queue` against a real PostgreSQL and the lab: the approved plan's steps and
//! facts travel with each work item, and maintenance windows are enforced by the database's
//! clock at claim time. One host with no window is remediated; one whose facts drifted after
//! planning is left alone (drifted); one whose window is too short for its planned work is
//! ended as missed without being touched; one whose window opens later waits in the queue,
//! untouched, until its window opens (simulated by moving the opening), then runs.

use std::time::Duration;

use salve_lab::log::LabEvent;

use crate::lab_support::{Lab, salve_with};
use crate::queue_support::{Pg, finish, options, spawn_runner, wait_for_items};

const FLEET: &str = "\
seed: 48
time_scale: 600
tenants:
  - name: t
    hosts: 4
    builds: [15.2.792.3]
";

fn changes(lab: &Lab, host: &str) -> usize {
    lab.fleet.log().count(host, LabEvent::changes_the_server)
}

fn installs(lab: &Lab, host: &str) -> usize {
    lab.fleet
        .log()
        .count(host, |e| matches!(e, LabEvent::Installed { .. }))
}

/// `daily HH:MM-HH:MM UTC` from `from` to `to` hours after now.
fn daily_window(from: i64, to: i64) -> String {
    let at = |h: i64| {
        jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_hours(h))
            .unwrap()
            .strftime("%H:%M")
            .to_string()
    };
    format!("daily {}-{} UTC", at(from), at(to))
}

async fn state_of(queue: &salve::queue::Queue, host: &str) -> String {
    sqlx::query_scalar("SELECT state FROM salve.work WHERE host = $1")
        .bind(host)
        .fetch_one(queue.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_approved_plan_runs_through_the_queue_only_inside_windows() {
    let Some(pg) = Pg::start() else { return };
    let admin = pg.admin().await;
    let lab = Lab::start(48, FLEET).await;
    let window = |text: &str| format!("\"{text}\"");
    let inv = lab
        .inventory()
        .clear_text()
        .host_var(
            "t-ex03",
            "salve_maintenance_window",
            &window("daily 00:00-00:01 UTC"),
        )
        .host_var(
            "t-ex04",
            "salve_maintenance_window",
            &window(&daily_window(3, 10)),
        )
        .write();
    let pb_src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/proxylogon.yml");
    let pb = lab.write("proxylogon.yml", &std::fs::read_to_string(&pb_src).unwrap());
    let plan = inv.parent().unwrap().join("plan.json");
    let (code, _, err) = salve_with(
        &[
            "plan",
            pb.to_str().unwrap(),
            "-i",
            inv.to_str().unwrap(),
            "--no-progress",
            "-o",
            plan.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    // Drift after planning: t-ex02 gets its update out of band.
    let idx = lab.fleet.core().index("t-ex02").unwrap();
    lab.fleet
        .core()
        .with_host(idx, |s| s.build = Some("15.2.1748.49".parse().unwrap()));

    let mut controller = tokio::process::Command::new(env!("CARGO_BIN_EXE_salve"))
        .args(["apply", "--require-approvals", "0", "--json", "--queue"])
        .arg(pg.url("postgres"))
        .arg(&plan)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for_items(&admin, 4, &mut controller).await;
    let runner = spawn_runner(&admin, options("r1", "t", 4), &inv);

    // t-ex01, t-ex02 and t-ex03 end; t-ex04 stays queued (its window opens in 3 hours) and
    // untouched while the runner keeps polling.
    for _ in 0..600 {
        let ended: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM salve.work WHERE state IN ('done', 'failed', 'missed')",
        )
        .fetch_one(admin.pool())
        .await
        .unwrap();
        if ended == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(state_of(&admin, "t-ex03").await, "missed");
    assert_eq!(state_of(&admin, "t-ex04").await, "queued");
    assert_eq!(
        changes(&lab, "t-ex04"),
        0,
        "t-ex04 was touched outside its window"
    );
    assert!(
        !runner.is_finished(),
        "the runner waits for t-ex04's window"
    );

    // The window opens (the opening is moved to now): the runner claims it.
    sqlx::query(
        "UPDATE salve.work SET windows =
             tstzmultirange(tstzrange(now() - interval '1 minute', now() + interval '1 day'))
         WHERE host = 't-ex04'",
    )
    .execute(admin.pool())
    .await
    .unwrap();
    let (code, events, all) = finish(controller).await;
    let report = runner.await.unwrap();
    assert_eq!(code, 2, "drifted and missed hosts: {all}");
    assert_eq!(report.lost, 0, "{report:?}");
    assert!(
        all.contains("t-ex04: waiting for its maintenance window"),
        "{all}"
    );
    assert!(
        all.contains("t-ex03: not run: no maintenance window opening left"),
        "{all}"
    );
    let summary = events
        .iter()
        .find(|e| e["event"] == "run_finished")
        .unwrap_or_else(|| panic!("no run_finished: {all}"));
    let outcome = |host: &str| {
        summary["summary"]["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["host"] == host)
            .map(|h| h["outcome"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(outcome("t-ex01"), "ok");
    assert_eq!(outcome("t-ex02"), "drifted");
    assert_eq!(outcome("t-ex03"), "not_run");
    assert_eq!(outcome("t-ex04"), "ok");

    // From the lab: the planned updates (CU15, then its Aug26SU) exactly once where allowed,
    // nothing elsewhere.
    assert_eq!(installs(&lab, "t-ex01"), 2);
    assert_eq!(installs(&lab, "t-ex04"), 2);
    assert_eq!(
        changes(&lab, "t-ex02"),
        0,
        "a drifted host must not be touched"
    );
    assert_eq!(
        changes(&lab, "t-ex03"),
        0,
        "a missed host must not be touched"
    );
    for host in ["t-ex01", "t-ex04"] {
        let state = lab.fleet.state(host).unwrap();
        assert_eq!(state.build.unwrap().to_string(), "15.2.1748.49", "{host}");
    }
    let digest: Option<String> = sqlx::query_scalar("SELECT plan_digest FROM salve.runs")
        .fetch_one(admin.pool())
        .await
        .unwrap();
    assert!(digest.is_some_and(|d| d.len() == 64));
}
