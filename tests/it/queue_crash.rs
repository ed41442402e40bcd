//! The queue when things break, with the real `salve runner` binary against a real PostgreSQL
//! and the lab fleet over real WinRM.
//!
//! What these tests prove:
//! - A runner killed with SIGKILL in the middle of an Exchange update (no clean-up of any kind:
//!   no release, no last write) is taken over once its lease runs out. The heir's claim carries
//!   fencing token 2 and `needs_recheck` (an intent was open), re-runs the host from the start
//!   on live facts, waits for the installer the dead runner left running instead of starting
//!   another, restarts and verifies: every update is installed exactly once per host, every
//!   host ends fixed, and the controller reports the takeover and exits 0.
//! - When the queue database goes away mid-run, the runner process neither crashes nor exits;
//!   it starts no new step on any host once it has noticed (within two thirds of the lease: a
//!   renewal that does not answer within a third of the lease counts as failed), and stops the
//!   item, interrupting the step in flight, before its lease can run out. The controller keeps
//!   following with a warning. When the database returns on the same port and data, the runner
//!   claims the items again (fence 2, run again from the first step, as after any lost lease) and
//!   the run completes. Steps of a host are therefore at-least-once across an outage: a
//!   playbook's raw scripts must tolerate a re-run, as salve's own modules do.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use salve::exchange::assess::{Facts, assess};
use salve::exchange::catalogue::catalogue;
use salve::queue::Queue;
use salve_lab::log::{LabEvent, LogEntry};

use crate::lab_support::Lab;
use crate::queue_support::{LEASE, Pg, controller, exited, finish, runner, wait_for_items};

/// Poll the lab log until `done` holds for it (at most 60 s).
async fn wait_for_log(lab: &Lab, what: &str, done: impl Fn(&[LogEntry]) -> bool) {
    for _ in 0..1200 {
        if done(&lab.fleet.log().entries()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never saw {what}: {:#?}", lab.fleet.log().entries());
}

fn scripts_since(log: &[LogEntry], host: &str, since: Timestamp) -> usize {
    log.iter()
        .filter(|e| e.host == host && e.real_time > since)
        .filter(|e| matches!(e.event, LabEvent::ScriptStarted { .. }))
        .count()
}

async fn work(queue: &Queue) -> Vec<(String, String, String, i64, bool)> {
    sqlx::query_as("SELECT host, state, owner, fence, needs_recheck FROM salve.work ORDER BY id")
        .fetch_all(queue.pool())
        .await
        .unwrap()
}

/// Facts, then each update on the path with the restart it needs, then verification. An SU
/// takes two simulated hours: 12 s of real time at the lab's time scale.
const UPDATE_FLEET: &str = "\
seed: 45
time_scale: 600
durations: {su_minutes: 120, cu_minutes: 120}
tenants:
  - name: acme
    hosts: 2
    builds: [15.2.792.3]
";

const UPDATE_PLAYBOOK: &str = r#"- hosts: all
  tasks:
    - name: Read the facts
      exchange_facts: {}
      register: ex
    - name: Restart first
      reboot: {poll_interval: "{{ salve_reboot_poll_seconds }}"}
      when: ex.exchange.pending_reboot | length > 0
    - name: Install the next update
      exchange_update: {target: path, sources: "{{ salve_update_sources }}", license_switch: "{{ salve_license_switch }}"}
      register: step1
    - name: Restart after it
      reboot: {poll_interval: "{{ salve_reboot_poll_seconds }}"}
      when: step1.reboot_required | default(false)
    - name: Install the update after that
      exchange_update: {target: path, sources: "{{ salve_update_sources }}", license_switch: "{{ salve_license_switch }}"}
      register: step2
      when: step1.remaining | default(0) > 0
    - name: Restart after that
      reboot: {poll_interval: "{{ salve_reboot_poll_seconds }}"}
      when: step2.reboot_required | default(false)
    - name: Verify
      exchange_verify: {fixed: true}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_runner_killed_mid_install_is_taken_over_without_installing_twice() {
    let Some(pg) = Pg::start() else { return };
    let admin = pg.admin().await;
    let lab = Lab::start(45, UPDATE_FLEET).await;
    let hosts = lab.host_names();
    let inventory = lab.inventory().clear_text().write();
    let playbook = lab.write("pb.yml", UPDATE_PLAYBOOK);
    let mut control = controller(&pg, &playbook, &inventory);
    wait_for_items(&admin, 2, &mut control).await;

    let doomed_log = lab.write("doomed.log", "");
    let mut doomed = runner(&pg, "doomed", "acme", 2, &inventory, &doomed_log);
    wait_for_log(&lab, "both installs start", |log| {
        hosts.iter().all(|h| {
            log.iter()
                .any(|e| &e.host == h && matches!(e.event, LabEvent::InstallStarted { .. }))
        })
    })
    .await;
    // Mid-install, and the database agrees whose the items are.
    let before = work(&admin).await;
    assert!(
        before
            .iter()
            .all(|w| (w.1.as_str(), w.2.as_str(), w.3) == ("running", "doomed", 1)),
        "{before:?}"
    );
    doomed.start_kill().unwrap(); // SIGKILL: nothing of the runner survives but its lease
    let status = doomed.wait().await.unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    let killed_at = Timestamp::now();
    assert!(
        hosts
            .iter()
            .all(|h| lab.fleet.state(h).unwrap().installing.is_some()),
        "the installers outlive the runner, as on Windows"
    );

    let heir_log = lab.write("heir.log", "");
    let heir = runner(&pg, "heir", "acme", 2, &inventory, &heir_log);
    let (code, stderr) = exited(heir, &heir_log).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("2 done, 0 failed"), "{stderr}");
    let (code, _, all) = finish(control).await;
    assert_eq!(code, 0, "{all}");
    for host in &hosts {
        assert!(
            all.contains(&format!(
                "{host}: claimed again by runner heir (claim 2); a change may have been \
                 half-made, so the host is re-checked from live facts"
            )),
            "{all}"
        );
    }
    assert_eq!(
        work(&admin).await,
        hosts
            .iter()
            .map(|h| (h.clone(), "done".into(), "heir".into(), 2, true))
            .collect::<Vec<_>>()
    );

    let log = lab.fleet.log().entries();
    let cat = catalogue().unwrap();
    for host in &hosts {
        let of_host = || log.iter().filter(|e| &e.host == host);
        let mut started: BTreeMap<&str, usize> = BTreeMap::new();
        let mut installed: BTreeMap<&str, usize> = BTreeMap::new();
        for e in of_host() {
            match &e.event {
                LabEvent::InstallStarted { kb, .. } => *started.entry(kb).or_default() += 1,
                LabEvent::Installed { kb, .. } => *installed.entry(kb).or_default() += 1,
                LabEvent::InstallFailed { .. } => panic!("{host}: {e:?}"),
                _ => {}
            }
        }
        assert!(!started.is_empty(), "{host}: nothing installed");
        assert!(started.values().all(|&n| n == 1), "{host}: {started:?}");
        assert_eq!(started, installed, "{host}");
        // The heir looked at the host while the dead runner's installer was still running,
        // and the update it had started finished only after that: the takeover waited for it.
        let finished = of_host()
            .find(|e| matches!(e.event, LabEvent::Installed { .. }))
            .unwrap()
            .real_time;
        let looked = of_host().any(|e| {
            e.real_time > killed_at
                && e.real_time < finished
                && matches!(&e.event, LabEvent::JobStarted { script_id, .. } if script_id == "exchange_facts")
        });
        assert!(looked, "{host}: the heir never saw the installer running");
        let state = lab.fleet.state(host).unwrap();
        let build: salve::exchange::build::Build =
            state.build.unwrap().to_string().parse().unwrap();
        let open = assess(cat, build, &Facts::default()).open_cves;
        assert!(open.is_empty(), "{host} ends on {build} with {open:?} open");
        assert!(
            state.pending_reboot.is_empty(),
            "{host} still needs a restart"
        );
        assert_eq!(state.installing, None);
    }
}

/// Twelve short steps per host: long enough to cut the database mid-run.
fn steps_playbook() -> String {
    let mut text = String::from("- hosts: all\n  tasks:\n");
    for n in 1..=12 {
        text.push_str(&format!(
            "    - name: step {n}\n      powershell: {{script: 'Start-Sleep -Milliseconds 500'}}\n"
        ));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_the_database_stops_new_steps_and_the_run_resumes_when_it_returns() {
    let Some(pg) = Pg::start() else { return };
    let admin = pg.admin().await;
    let lab = Lab::start(
        46,
        "seed: 46\ntenants:\n  - name: acme\n    hosts: 2\n    builds: [15.2.792.3]\n",
    )
    .await;
    let hosts = lab.host_names();
    let inventory = lab.inventory().clear_text().write();
    let playbook = lab.write("pb.yml", &steps_playbook());
    let mut control = controller(&pg, &playbook, &inventory);
    wait_for_items(&admin, 2, &mut control).await;
    admin.close().await;

    let runner_log = lab.write("runner.log", "");
    let mut worker = runner(&pg, "r1", "acme", 2, &inventory, &runner_log);
    let count_scripts = |log: &[LogEntry], h: &String| scripts_since(log, h, Timestamp::UNIX_EPOCH);
    wait_for_log(&lab, "two steps on each host", |log| {
        hosts.iter().all(|h| count_scripts(log, h) >= 2)
    })
    .await;

    let outage = Timestamp::now();
    pg.stop();
    // Longer than the pool waits for a connection (10 s), so every reader sees a failure; and
    // a check at each lease that neither process gave up.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(LEASE)).await;
        assert!(worker.try_wait().unwrap().is_none(), "the runner exited");
        assert!(
            control.try_wait().unwrap().is_none(),
            "the controller exited"
        );
    }
    let log = lab.fleet.log().entries();
    // The runner notices within two thirds of the lease; a step started before that may run.
    let grace = outage + jiff::SignedDuration::from_secs(LEASE as i64);
    for host in &hosts {
        assert_eq!(
            scripts_since(&log, host, grace),
            0,
            "{host}: a step started while the database was down"
        );
        assert!(
            count_scripts(&log, host) < 12,
            "{host} finished without the database"
        );
    }
    let resumed = Timestamp::now();
    pg.resume();

    let (code, stderr) = exited(worker, &runner_log).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("the lease runs out soon, stopping the host"),
        "{stderr}"
    );
    let (code, events, all) = finish(control).await;
    assert_eq!(code, 0, "{all}");
    assert!(
        all.contains("cannot read the queue") && all.contains("still following, retrying"),
        "{all}"
    );
    for host in &hosts {
        assert!(
            all.contains(&format!("{host}: claimed again by runner r1 (claim 2)")),
            "{all}"
        );
    }
    let last = events.last().unwrap();
    assert_eq!(last["event"], "run_finished", "{all}");
    // The summary counts the steps of the claim that finished the host, not both claims'.
    for host in last["summary"]["hosts"].as_array().unwrap() {
        assert_eq!(host["counts"]["changed"], 12, "{host}");
        assert_eq!(host["counts"]["interrupted"], 0, "{host}");
    }
    let admin = pg.admin().await;
    let log = lab.fleet.log().entries();
    // Claimed again after the outage (whether `needs_recheck` is set depends on whether the
    // outage fell inside a step or between two: either way the host runs again from its first
    // step), all twelve steps of it.
    for (host, state, owner, fence, _) in work(&admin).await {
        assert_eq!(
            (state.as_str(), owner.as_str(), fence),
            ("done", "r1", 2),
            "{host}"
        );
        assert_eq!(scripts_since(&log, &host, resumed), 12, "{host}");
    }
    let done: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM salve.host_steps WHERE state = 'done' AND fence = 2",
    )
    .fetch_one(admin.pool())
    .await
    .unwrap();
    assert_eq!(done, 24);
}
