//! The scale-out queue against a real PostgreSQL (a throwaway cluster per test) and the lab
//! fleet over real WinRM: the controller is the real `salve run --queue`, runners are in-process
//! tasks. Covers idempotent migrations, work spread over runners with nothing done twice, an
//! expired lease taken over with the stale runner's late writes refused, DAG members never
//! running together (also with a runner serving two tenants), a tenant's concurrency cap, and
//! tenant isolation by row-level security.

use std::time::Duration;

use salve::queue::intents::QueueIntents;
use salve::queue::item::ClaimedItem;
use salve::queue::{Queue, QueueError, StepWrite};
use salve::runner::{IntentLog as _, Interrupt};
use salve_lab::host_api::SimHost as _;
use salve_lab::log::LabEvent;
use tokio_util::sync::CancellationToken;

use crate::lab_support::Lab;
use crate::queue_support::{Pg, controller, finish, options, spawn_runner, wait_for_items};

const PLAYBOOK: &str = "- hosts: all
  tasks:
    - name: touch
      powershell: {script: 'Write-Output touched'}
    - name: who
      powershell: {script: 'Write-Output $env:COMPUTERNAME'}
";

fn scripts(lab: &Lab, host: &str) -> usize {
    lab.fleet
        .log()
        .count(host, |e| matches!(e, LabEvent::ScriptStarted { .. }))
}

async fn scalar(queue: &Queue, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(queue.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runners_share_the_work_and_nothing_runs_twice() {
    let Some(pg) = Pg::start() else { return };
    let admin = pg.admin().await;
    assert_eq!(admin.init().await.unwrap(), Vec::<i32>::new(), "idempotent");
    admin.check_schema().await.unwrap();
    let lab = Lab::start(
        41,
        "seed: 1\ntenants:\n  - name: acme\n    hosts: 6\n    builds: [15.2.792.3]\n",
    )
    .await;
    let inventory = lab.inventory().clear_text().write();
    let playbook = lab.write("pb.yml", PLAYBOOK);
    let mut child = controller(&pg, &playbook, &inventory);
    wait_for_items(&admin, 6, &mut child).await;
    let runners: Vec<_> = ["r1", "r2", "r3"]
        .iter()
        .map(|id| spawn_runner(&admin, options(id, "acme", 1), &inventory))
        .collect();
    let (code, events, all) = finish(child).await;
    assert_eq!(code, 0, "{all}");
    let mut done = 0;
    for r in runners {
        let report = r.await.unwrap();
        assert_eq!((report.failed, report.lost), (0, 0), "{report:?}");
        done += report.done;
    }
    assert_eq!(done, 6);
    for host in lab.fleet.hosts() {
        assert_eq!(
            scripts(&lab, host.name()),
            2,
            "{}: each task once",
            host.name()
        );
        let finished = events
            .iter()
            .filter(|e| e["event"] == "task_finished" && e["host"] == host.name())
            .count();
        assert_eq!(finished, 2, "{all}");
        let ended: Vec<_> = events
            .iter()
            .filter(|e| e["event"] == "host_finished" && e["host"] == host.name())
            .collect();
        assert_eq!(ended.len(), 1, "{all}");
        assert_eq!(ended[0]["outcome"], "ok");
    }
    let owners = scalar(&admin, "SELECT count(DISTINCT owner) FROM salve.work").await;
    assert!(owners >= 2, "the work was not spread: {owners} runner(s)");
    assert_eq!(
        scalar(
            &admin,
            "SELECT count(*) FROM salve.work WHERE state = 'done' AND fence = 1"
        )
        .await,
        6
    );
    // Two changing steps per host, each announced and then completed.
    assert_eq!(
        scalar(
            &admin,
            "SELECT count(*) FROM salve.intents WHERE completed_at IS NOT NULL"
        )
        .await,
        12
    );
    assert_eq!(
        scalar(
            &admin,
            "SELECT count(*) FROM salve.host_steps WHERE state = 'done'"
        )
        .await,
        12
    );
    let last = events.last().unwrap();
    assert_eq!(last["event"], "run_finished", "{all}");
    assert_eq!(last["summary"]["exit_code"], 0);
    // The report files of a local run, from the runners' results.
    let reports = playbook.with_file_name("reports");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reports.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["plays"][0]["results"].as_array().unwrap().len(), 12);
    assert_eq!(report["summary"]["tenants"]["acme"]["ok"], 6);
    let junit = std::fs::read_to_string(reports.join("junit.xml")).unwrap();
    assert!(junit.contains("tests=\"12\""), "{junit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_runner_is_woken_by_new_work_not_by_its_poll() {
    let Some(pg) = Pg::start() else { return };
    let admin = pg.admin().await;
    let lab = Lab::start(
        49,
        "seed: 4\ntenants:\n  - name: acme\n    hosts: 2\n    builds: [15.2.792.3]\n",
    )
    .await;
    let inventory = lab.inventory().clear_text().write();
    let playbook = lab.write("pb.yml", PLAYBOOK);
    // Started before there is any work, polling once an hour: only a notification can get it
    // to the work within the controller's timeout.
    let mut sleepy = options("sleepy", "acme", 2);
    sleepy.poll = Duration::from_secs(3600);
    sleepy.exit_when_idle = false;
    let interrupt = Interrupt::default();
    let worker = salve::queue::worker::Worker::new(
        admin.clone(),
        sleepy,
        salve::config::inventory::load(std::slice::from_ref(&inventory))
            .unwrap()
            .value,
        crate::queue_support::connector(),
    );
    let runner = tokio::spawn(worker.run(interrupt.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let child = controller(&pg, &playbook, &inventory);
    let (code, _, all) = finish(child).await;
    assert_eq!(code, 0, "{all}");
    interrupt.drain.cancel();
    let report = runner.await.unwrap();
    assert_eq!(report.done, 2, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_detached_run_is_followed_later_from_the_database_alone() {
    let Some(pg) = Pg::start() else { return };
    let admin = pg.admin().await;
    let lab = Lab::start(
        50,
        "seed: 5\ntenants:\n  - name: acme\n    hosts: 3\n    builds: [15.2.792.3]\n",
    )
    .await;
    let inventory = lab.inventory().clear_text().write();
    let playbook = lab.write("pb.yml", PLAYBOOK);
    let url = pg.url("postgres");
    let inv = inventory.to_str().unwrap();
    let (code, out, err) = crate::lab_support::salve_with(
        &[
            "run",
            "--all-tenants",
            "--queue",
            &url,
            "--detach",
            playbook.to_str().unwrap(),
            "-i",
            inv,
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let run = out.trim().to_string();
    assert!(err.contains(&format!("salve queue follow {run}")), "{err}");
    let report = spawn_runner(&admin, options("r1", "acme", 3), &inventory)
        .await
        .unwrap();
    assert_eq!(report.done, 3, "{report:?}");
    let (code, status) = crate::lab_support::salve(&["queue", "status", "--queue", &url]).await;
    assert_eq!(code, 0);
    let done: Vec<&str> = status
        .lines()
        .find(|l| l.starts_with("acme"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    assert_eq!(done, ["acme", "done", "-", "3", "-"], "{status}");
    // Followed after the fact, from another directory, with only the queue URL: the whole
    // run is replayed with the usual events, report files and exit code.
    let reports = playbook.with_file_name("followed");
    let (code, out, err) = crate::lab_support::salve_with(
        &[
            "queue",
            "follow",
            &run,
            "--json",
            "--queue",
            &url,
            "--report-dir",
            reports.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let events: Vec<serde_json::Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let count = |kind: &str| events.iter().filter(|e| e["event"] == kind).count();
    assert_eq!(
        (
            count("task_finished"),
            count("host_finished"),
            count("run_finished")
        ),
        (6, 3, 1),
        "{out}"
    );
    assert_eq!(events[0]["run_id"], run.as_str());
    assert!(reports.join("report.json").exists());
    // An unknown run is an error that says what to do.
    let (code, _, err) =
        crate::lab_support::salve_with(&["queue", "follow", "no-such-run", "--queue", &url], &[])
            .await;
    assert_ne!(code, 0);
    assert!(err.contains("no such run in the queue"), "{err}");
}

/// A lab of one host on address block `block`, and a controller that has queued its one
/// work item: the lab, its inventory's path, and the controller.
async fn one_queued_host(
    block: u8,
    pg: &Pg,
    admin: &Queue,
) -> (Lab, std::path::PathBuf, tokio::process::Child) {
    let lab = Lab::start(
        block,
        "seed: 2\ntenants:\n  - name: acme\n    hosts: 1\n    builds: [15.2.792.3]\n",
    )
    .await;
    let inventory = lab.inventory().clear_text().write();
    let playbook = lab.write("pb.yml", PLAYBOOK);
    let mut child = controller(pg, &playbook, &inventory);
    wait_for_items(admin, 1, &mut child).await;
    (lab, inventory, child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_lease_is_taken_over_and_the_stale_runner_is_fenced_off() {
    let Some(pg) = Pg::start() else { return };
    let admin = pg.admin().await;
    let (lab, inventory, child) = one_queued_host(42, &pg, &admin).await;
    // A runner claims the item, announces a change, and dies (no heartbeat ever renews it).
    let ghost = admin
        .claim("acme", None, "ghost", Duration::from_secs(1), 3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((ghost.fence, ghost.needs_recheck), (1, false));
    admin.start(&ghost).await.unwrap();
    admin
        .begin_intent(&ghost, 0, 0, "powershell")
        .await
        .unwrap();
    // While the lease holds, nobody else may claim it.
    assert!(
        admin
            .claim("acme", None, "other", Duration::from_secs(5), 3)
            .await
            .unwrap()
            .is_none()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let report = spawn_runner(&admin, options("heir", "acme", 2), &inventory)
        .await
        .unwrap();
    assert_eq!(report.done, 1, "{report:?}");
    let (code, _, all) = finish(child).await;
    assert_eq!(code, 0, "{all}");
    assert!(
        all.contains("claimed again by runner heir (claim 2)"),
        "{all}"
    );
    assert!(all.contains("re-checked"), "{all}");
    let (owner, fence, attempts, recheck): (String, i64, i32, bool) =
        sqlx::query_as("SELECT owner, fence, attempts, needs_recheck FROM salve.work")
            .fetch_one(admin.pool())
            .await
            .unwrap();
    assert_eq!(
        (owner.as_str(), fence, attempts, recheck),
        ("heir", 2, 2, true)
    );
    // The ghost wakes up: every write with its old fence is refused.
    let step = StepWrite {
        play: 0,
        task_index: 0,
        task: "touch",
        state: "done",
        outcome: None,
        output: None,
    };
    let late = admin.write_steps(&ghost, &[], &[step]).await.unwrap_err();
    assert!(matches!(late, QueueError::Stale { fence: 1, .. }), "{late}");
    let late = admin
        .begin_intent(&ghost, 0, 1, "reboot")
        .await
        .unwrap_err();
    assert!(matches!(late, QueueError::Stale { .. }), "{late}");
    // Through the runner's intent log, the stale claim refuses the change before it starts
    // and stops the ghost's item.
    let intents = QueueIntents(
        ClaimedItem {
            queue: admin.clone(),
            claim: ghost.clone(),
            item: Interrupt::default(),
            lost: CancellationToken::new(),
        },
        Default::default(),
    );
    let refused = intents
        .begin(&ghost.host, 0, 1, "reboot")
        .await
        .unwrap_err();
    assert!(refused.0.contains("belongs to another runner"), "{refused}");
    assert!(intents.0.lost.is_cancelled() && intents.0.item.abort.is_cancelled());
    let late = admin
        .finish(&ghost, "failed", "failed", None)
        .await
        .unwrap_err();
    assert!(matches!(late, QueueError::Stale { .. }), "{late}");
    assert!(!admin.renew(&ghost, Duration::from_secs(5)).await.unwrap());
    assert_eq!(
        scalar(
            &admin,
            "SELECT count(*) FROM salve.work WHERE state = 'done'"
        )
        .await,
        1
    );
    // Only the heir ran the host's tasks.
    assert_eq!(scripts(&lab, lab.fleet.hosts()[0].name()), 2);
}

/// One task that keeps each host busy long enough for overlaps to show.
const SLEEP_PLAYBOOK: &str = "- hosts: all\n  tasks:\n    - name: work\n      powershell: {script: 'Start-Sleep -Milliseconds 400'}\n";

/// Pairs of items of one DAG that were claimed-or-running at the same time, by the database's
/// own clock.
const DAG_OVERLAPS: &str = "SELECT count(*) FROM salve.work a JOIN salve.work b
           ON a.tenant = b.tenant AND a.dag = b.dag AND a.id < b.id
         WHERE tstzrange(a.claimed_at, a.finished_at) && tstzrange(b.claimed_at, b.finished_at)";

/// An intent's outcome reaches the queue with its secrets redacted (a module's result may
/// carry a password it was given), its other values as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intents_outcome_is_stored_with_its_secrets_redacted() {
    let Some(pg) = Pg::start() else { return };
    let admin = pg.admin().await;
    let (_lab, _, mut child) = one_queued_host(47, &pg, &admin).await;
    let claim = admin
        .claim("acme", None, "r1", Duration::from_secs(30), 3)
        .await
        .unwrap()
        .unwrap();
    admin.start(&claim).await.unwrap();
    let intent = admin
        .begin_intent(&claim, 0, 0, "powershell")
        .await
        .unwrap();
    let outcome = serde_json::json!({"rc": 0, "nested": [{"admin_password": "hunter2"}]});
    admin
        .write_steps(&claim, &[(intent, outcome)], &[])
        .await
        .unwrap();
    let stored: serde_json::Value =
        sqlx::query_scalar("SELECT outcome FROM salve.intents WHERE id = $1")
            .bind(intent)
            .fetch_one(admin.pool())
            .await
            .unwrap();
    assert_eq!(
        stored,
        serde_json::json!({"rc": 0, "nested": [{"admin_password": "<redacted>"}]})
    );
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dag_members_and_capped_tenants_never_overlap() {
    let Some(pg) = Pg::start() else { return };
    let admin = pg.admin().await;
    let lab = Lab::start(
        43,
        "seed: 3
tenants:
  - name: acme
    hosts: 4
    builds: [15.2.792.3]
    dags:
      - {name: dag1, members: 2, databases: 1}
      - {name: dag2, members: 2, databases: 1}
  - name: beta
    hosts: 3
    builds: [15.2.792.3]
",
    )
    .await;
    let inventory = lab.inventory().clear_text().write();
    let playbook = lab.write("pb.yml", SLEEP_PLAYBOOK);
    let mut child = controller(&pg, &playbook, &inventory);
    wait_for_items(&admin, 7, &mut child).await;
    let (code, out, err) = crate::lab_support::salve_with(
        &[
            "queue",
            "tenant",
            "beta",
            "--max-concurrency",
            "1",
            "--queue",
            &pg.url("postgres"),
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "tenant beta: at most 1 host(s) at once; runner roles: none yet (see deploy/roles.sql)\n"
    );
    let mut runners = Vec::new();
    for (id, tenant) in [("a1", "acme"), ("a2", "acme"), ("b1", "beta")] {
        runners.push(spawn_runner(&admin, options(id, tenant, 4), &inventory));
    }
    // One runner serves both tenants, claiming for each in turn.
    let mut both = options("ab", "acme", 4);
    both.tenants.push("beta".into());
    runners.push(spawn_runner(&admin, both, &inventory));
    let (code, _, all) = finish(child).await;
    assert_eq!(code, 0, "{all}");
    for r in runners {
        r.await.unwrap();
    }
    assert_eq!(
        scalar(
            &admin,
            "SELECT count(*) FROM salve.work WHERE state = 'done'"
        )
        .await,
        7
    );
    // By the database's own clock: no two members of a DAG, and no two items of the capped
    // tenant, were ever claimed-or-running at the same time.
    let dag_overlaps = scalar(&admin, DAG_OVERLAPS).await;
    assert_eq!(dag_overlaps, 0);
    let capped_overlaps = scalar(
        &admin,
        "SELECT count(*) FROM salve.work a JOIN salve.work b
           ON a.tenant = b.tenant AND a.id < b.id
         WHERE a.tenant = 'beta'
           AND tstzrange(a.claimed_at, a.finished_at) && tstzrange(b.claimed_at, b.finished_at)",
    )
    .await;
    assert_eq!(capped_overlaps, 0);
    // acme's two DAGs did run side by side (the rule is per DAG, not per tenant).
    let acme_overlaps = scalar(
        &admin,
        "SELECT count(*) FROM salve.work a JOIN salve.work b
           ON a.tenant = b.tenant AND a.dag <> b.dag AND a.id < b.id
         WHERE a.tenant = 'acme'
           AND tstzrange(a.claimed_at, a.finished_at) && tstzrange(b.claimed_at, b.finished_at)",
    )
    .await;
    assert!(acme_overlaps > 0, "the two DAGs should run in parallel");
    // The database itself refuses two running members of one DAG.
    let both = sqlx::query(
        "UPDATE salve.work SET state = 'running' WHERE tenant = 'acme' AND dag = 'dag1'",
    )
    .execute(admin.pool())
    .await
    .unwrap_err();
    let code = both
        .as_database_error()
        .unwrap()
        .code()
        .unwrap()
        .into_owned();
    assert_eq!(code, "23505", "unique violation expected: {both}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_runner_role_sees_and_claims_only_its_tenant() {
    let Some(pg) = Pg::start() else { return };
    let admin = pg.admin().await;
    sqlx::raw_sql(
        "CREATE ROLE runner_a LOGIN IN ROLE salve_runner;
         CREATE ROLE runner_b LOGIN IN ROLE salve_runner;
         INSERT INTO salve.tenants (name) VALUES ('a'), ('b'), ('c');
         INSERT INTO salve.tenant_roles (role, tenant)
             VALUES ('runner_a', 'a'), ('runner_a', 'c'), ('runner_b', 'b');
         INSERT INTO salve.runs (id, playbook_name, playbook_digest, playbook, options)
             VALUES ('run-a', 'pb.yml', 'x', '[]', '{}'), ('run-b', 'pb.yml', 'x', '[]', '{}'),
                    ('run-c', 'pb.yml', 'x', '[]', '{}');
         INSERT INTO salve.work (run_id, tenant, host, plays)
             VALUES ('run-a', 'a', 'a-ex01', '{0}'), ('run-b', 'b', 'b-ex01', '{0}'),
                    ('run-c', 'c', 'c-ex01', '{0}');",
    )
    .execute(admin.pool())
    .await
    .unwrap();
    let a = Queue::connect(&pg.url("runner_a")).await.unwrap();
    a.check_schema().await.unwrap();
    let hosts: Vec<String> = sqlx::query_scalar("SELECT host FROM salve.work ORDER BY host")
        .fetch_all(a.pool())
        .await
        .unwrap();
    // runner_a serves tenants a and c.
    assert_eq!(hosts, ["a-ex01", "c-ex01"]);
    let runs: Vec<String> = sqlx::query_scalar("SELECT id FROM salve.runs ORDER BY id")
        .fetch_all(a.pool())
        .await
        .unwrap();
    assert_eq!(runs, ["run-a", "run-c"]);
    let tenants: Vec<String> = sqlx::query_scalar("SELECT name FROM salve.tenants ORDER BY name")
        .fetch_all(a.pool())
        .await
        .unwrap();
    assert_eq!(tenants, ["a", "c"]);
    // Claiming for the other tenant finds nothing; updating its rows touches none.
    let lease = Duration::from_secs(30);
    assert!(a.claim("b", None, "ra", lease, 3).await.unwrap().is_none());
    let touched = sqlx::query("UPDATE salve.work SET state = 'failed' WHERE tenant = 'b'")
        .execute(a.pool())
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(touched, 0);
    // Runners may not create work or change a run's playbook.
    assert!(
        sqlx::query(
            "INSERT INTO salve.work (run_id, tenant, host, plays) VALUES ('run-a', 'a', 'x', '{0}')"
        )
        .execute(a.pool())
        .await
        .is_err()
    );
    assert!(
        sqlx::query("UPDATE salve.runs SET playbook = 'evil'")
            .execute(a.pool())
            .await
            .is_err()
    );
    // Its own tenant's work it can claim and journal.
    let claim = a.claim("a", None, "ra", lease, 3).await.unwrap().unwrap();
    assert_eq!(claim.host, "a-ex01");
    a.start(&claim).await.unwrap();
    a.begin_intent(&claim, 0, 0, "powershell").await.unwrap();
    // Tenant b's runner sees none of it.
    let b = Queue::connect(&pg.url("runner_b")).await.unwrap();
    let seen: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM salve.intents) + (SELECT count(*) FROM salve.work
                 WHERE tenant = 'a')",
    )
    .fetch_one(b.pool())
    .await
    .unwrap();
    assert_eq!(seen, 0);
    let status = salve::queue::status::status(&b).await.unwrap();
    assert!(status.iter().all(|r| r.tenant == "b"), "{status:?}");
}

/// Serve TLS from the cluster with a certificate for 127.0.0.1 signed by a fresh CA; returns
/// the CA's PEM file.
async fn enable_tls(pg: &Pg, admin: &Queue) -> std::path::PathBuf {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let ca = new_ca();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let data = pg.data_dir();
    let owner = std::fs::metadata(&data).unwrap();
    for (name, pem) in [
        ("server.crt", cert.pem()),
        ("server.key", key.serialize_pem()),
    ] {
        let path = data.join(name);
        std::fs::write(&path, pem).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid())).unwrap();
    }
    for sql in ["ALTER SYSTEM SET ssl = on", "SELECT pg_reload_conf()"] {
        sqlx::query(sql).execute(admin.pool()).await.unwrap();
    }
    let ca_file = pg.data_dir().with_file_name("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    ca_file
}

fn new_ca() -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_connection_verifies_the_databases_certificate() {
    let Some(pg) = Pg::start() else { return };
    let admin = pg.admin().await;
    let ca = enable_tls(&pg, &admin).await;
    let url = |ca: &std::path::Path| {
        format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            pg.url("postgres"),
            ca.display()
        )
    };
    // The reload is asynchronous: the first TLS connection may race it.
    let mut tls = None;
    for _ in 0..50 {
        if let Ok(q) = Queue::connect(&url(&ca)).await {
            tls = Some(q);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tls = tls.expect("no TLS connection with the right CA");
    tls.check_schema().await.unwrap();
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(tls.pool())
            .await
            .unwrap();
    assert!(encrypted, "the connection is not encrypted");
    // A certificate from another CA is refused, and the error says the connection failed.
    let other = pg.data_dir().with_file_name("other-ca.pem");
    std::fs::write(&other, new_ca().pem()).unwrap();
    let refused = Queue::connect(&url(&other)).await.unwrap_err();
    assert!(matches!(refused, QueueError::Connect(_)), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_gate_the_start_of_work_not_a_takeover() {
    let Some(pg) = Pg::start() else { return };
    let admin = pg.admin().await;
    // Both items' only opening is tomorrow. One is queued: it waits. The other was started by
    // a runner whose lease has run out: it is taken over now, to finish what began in a window.
    sqlx::raw_sql(
        "INSERT INTO salve.tenants (name) VALUES ('a');
         INSERT INTO salve.runs (id, playbook_name, playbook_digest, playbook, options)
             VALUES ('run', 'pb.yml', 'x', '[]', '{}');
         INSERT INTO salve.work (run_id, tenant, host, plays, windows, estimate, state, owner,
                 lease_until, fence)
             VALUES ('run', 'a', 'waiting', '{0}',
                     tstzmultirange(tstzrange(now() + interval '1 day', now() + interval '2 days')),
                     interval '1 hour', 'queued', NULL, NULL, 0),
                    ('run', 'a', 'half-done', '{0}',
                     tstzmultirange(tstzrange(now() + interval '1 day', now() + interval '2 days')),
                     interval '1 hour', 'running', 'gone', now() - interval '1 minute', 1);",
    )
    .execute(admin.pool())
    .await
    .unwrap();
    let lease = Duration::from_secs(30);
    let claim = admin
        .claim("a", None, "heir", lease, 3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((claim.host.as_str(), claim.fence), ("half-done", 2));
    assert!(
        admin
            .claim("a", None, "heir", lease, 3)
            .await
            .unwrap()
            .is_none()
    );
    let waiting: String = sqlx::query_scalar("SELECT state FROM salve.work WHERE host = 'waiting'")
        .fetch_one(admin.pool())
        .await
        .unwrap();
    assert_eq!(waiting, "queued");
}

/// YAML types a bare `salve_dag: 1` as a number; the item still carries its DAG, so the
/// database's one-member-per-DAG rule applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dag_named_by_a_number_is_rolled_one_member_at_a_time() {
    let Some(pg) = Pg::start() else { return };
    let admin = pg.admin().await;
    let lab = Lab::start(
        76,
        "seed: 5
tenants:
  - name: acme
    hosts: 3
    builds: [15.2.792.3]
    dags:
      - {name: dag1, members: 3, databases: 1}
",
    )
    .await;
    let rendered = lab.inventory().clear_text().text();
    assert!(rendered.contains("salve_dag: \"dag1\"\n"), "{rendered}");
    let inventory = lab.write(
        "inv.yml",
        &rendered.replace("salve_dag: \"dag1\"", "salve_dag: 1"),
    );
    let playbook = lab.write("pb.yml", SLEEP_PLAYBOOK);
    let mut child = controller(&pg, &playbook, &inventory);
    wait_for_items(&admin, 3, &mut child).await;
    let runners: Vec<_> = ["r1", "r2"]
        .into_iter()
        .map(|id| spawn_runner(&admin, options(id, "acme", 4), &inventory))
        .collect();
    let (code, _, all) = finish(child).await;
    assert_eq!(code, 0, "{all}");
    for r in runners {
        r.await.unwrap();
    }
    assert_eq!(
        scalar(
            &admin,
            "SELECT count(*) FROM salve.work WHERE dag = '1' AND state = 'done'"
        )
        .await,
        3
    );
    assert_eq!(scalar(&admin, DAG_OVERLAPS).await, 0);
}
