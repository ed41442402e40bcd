//! What a runner costs the queue database, counted rather than timed: the transactions
//! PostgreSQL commits for a runner's whole run (`pg_stat_database.xact_commit`), and the
//! group commit's rule that one item's stale claim refuses only that item's writes.

use std::time::Duration;

use salve::queue::worker::Worker;
use salve::queue::{Queue, QueueError};
use salve::runner::Interrupt;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::lab_support::Lab;
use crate::queue_support::{Pg, connector, controller, options, wait_for_items};

const HOSTS: i64 = 20;
const TASKS: i64 = 3;

const PLAYBOOK: &str = "- hosts: all
  tasks:
    - name: one
      powershell: {script: 'Write-Output one'}
    - name: two
      powershell: {script: 'Write-Output two'}
    - name: three
      powershell: {script: 'Write-Output three'}
";

/// Transactions committed in the database so far, as far as its backends have reported them.
async fn commits(counter: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(counter)
    .await
    .unwrap()
}

/// Once every backend but `counter`'s (one connection) has exited, and so reported its
/// counters: the commits.
async fn settled_commits(counter: &PgPool) -> i64 {
    for _ in 0..100 {
        let others: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(counter)
        .await
        .unwrap();
        if others == 0 {
            break;
        }

        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(counter)
        .await
        .unwrap();
    commits(counter).await
}

/// 20 hosts × 3 changing steps through one runner working on 10 at a time: each step's
/// intent must be committed before its script runs, yet the runner's items share commits,
/// so the whole run (claims, intents, step rows, finishes, empty claims at the end) costs at
/// most 3 transactions per step. Before group commit it cost about 5.4.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_runner_commits_at_most_three_transactions_per_step() {
    let Some(pg) = Pg::start() else { return };
    let admin = Queue::connect(&pg.url("postgres")).await.unwrap();
    admin.init().await.unwrap();
    let lab = Lab::start(
        240,
        "seed: 3\ntenants:\n  - name: acme\n    hosts: 20\n    builds: [15.2.792.3]\n",
    )
    .await;
    let inventory = lab.inventory().clear_text().write();
    let playbook = lab.write("pb.yml", PLAYBOOK);
    let mut child = controller(&pg, &playbook, &inventory);
    wait_for_items(&admin, HOSTS, &mut child).await;
    // Only the runner's transactions are counted: the controller stops following.
    child.kill().await.unwrap();
    admin.close().await;
    let counter = PgPoolOptions::new()
        .max_connections(1)
        .connect(&pg.url("postgres"))
        .await
        .unwrap();
    let before = settled_commits(&counter).await;
    let runner = Queue::connect(&pg.url("postgres")).await.unwrap();
    let inventory = salve::config::inventory::load(&[inventory]).unwrap().value;
    let worker = Worker::new(
        runner.clone(),
        options("r1", "acme", 10),
        inventory,
        connector(),
    );
    let report = worker.run(Interrupt::default()).await;
    assert_eq!(report.done, HOSTS as usize, "{report:?}");
    runner.close().await;
    let after = settled_commits(&counter).await;
    // (With the counter's own three reads in between.)
    let used = after - before;
    let steps = HOSTS * TASKS;
    eprintln!("{used} transactions for {steps} steps");
    let done: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM salve.work WHERE state = 'done' AND started_at IS NOT NULL),
                (SELECT count(*) FROM salve.host_steps WHERE state = 'done'),
                (SELECT count(*) FROM salve.intents WHERE completed_at IS NOT NULL)",
    )
    .fetch_one(&counter)
    .await
    .unwrap();
    assert_eq!(done, (HOSTS, steps, steps));
    assert!(
        used <= 3 * steps,
        "{used} transactions for {steps} steps ({:.2} per step)",
        used as f64 / steps as f64
    );
}

/// Two items' intents share one group commit; one item's claim has been taken over. Only that
/// item's intent is refused as stale; the other's is committed.
#[tokio::test]
async fn a_stale_claim_in_a_shared_commit_refuses_only_its_own_write() {
    let Some(pg) = Pg::start() else { return };
    let admin = Queue::connect(&pg.url("postgres")).await.unwrap();
    admin.init().await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO salve.tenants (name) VALUES ('acme');
         INSERT INTO salve.runs (id, playbook_name, playbook_digest, playbook, options)
             VALUES ('r', 'pb.yml', '', '', '{}');
         INSERT INTO salve.work (run_id, tenant, host, plays)
             VALUES ('r', 'acme', 'ex01', '{0}'), ('r', 'acme', 'ex02', '{0}');",
    )
    .execute(admin.pool())
    .await
    .unwrap();
    let lease = Duration::from_secs(1);
    let ghost = admin.claim("acme", None, "ghost", lease, 3).await.unwrap();
    let ghost = ghost.unwrap();
    let live = admin
        .claim("acme", None, "live", lease * 60, 3)
        .await
        .unwrap();
    let live = live.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let heir = admin
        .claim("acme", None, "heir", lease * 60, 3)
        .await
        .unwrap();
    assert_eq!(heir.map(|c| c.work_id), Some(ghost.work_id));
    let grouped = admin.grouped();
    // One thread: both requests are queued before the writer takes its batch.
    let (stale, fresh) = tokio::join!(
        grouped.begin_intent(&ghost, 0, 0, "powershell"),
        grouped.begin_intent(&live, 0, 0, "powershell"),
    );
    assert!(
        matches!(stale, Err(QueueError::Stale { fence: 1, .. })),
        "{stale:?}"
    );
    let id = fresh.unwrap();
    let stored: (i64, i64) = sqlx::query_as("SELECT work_id, fence FROM salve.intents")
        .fetch_one(admin.pool())
        .await
        .unwrap();
    assert_eq!(stored, (live.work_id, live.fence), "intent {id}");
}
