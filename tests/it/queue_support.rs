//! A throwaway PostgreSQL cluster per test (tests/peers/postgres.sh), and helpers to drive the
//! queue in-process: runners as tasks, the controller as the real binary.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use salve::queue::Queue;
use salve::queue::worker::{Worker, WorkerOptions, WorkerReport};
use salve::runner::Interrupt;
use salve::transport::dispatch::Dispatch;
use salve::transport::ssh::SshConnector;
use salve::transport::winrm::WinrmConnector;
use serde_json::Value;

pub struct Pg {
    dir: tempfile::TempDir,
    pub port: u16,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/postgres.sh")
}

impl Pg {
    /// Start a cluster, or `None` (with a message) when PostgreSQL is not installed and `CI` is
    /// unset; under CI a missing server fails the test.
    pub fn start() -> Option<Pg> {
        let installed = glob::glob("/usr/lib/postgresql/*/bin/initdb")
            .map(|mut g| g.next().is_some())
            .unwrap_or(false);
        if !installed {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL is not installed (tests/peers/install.sh); CI needs it"
            );
            eprintln!("skipped: PostgreSQL is not installed (run tests/peers/install.sh)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = Pg { dir, port };
        pg.script("start");
        Some(pg)
    }

    /// Run `postgres.sh COMMAND DIR PORT`; fails the test if it fails.
    fn script(&self, command: &str) {
        let out = std::process::Command::new("sh")
            .arg(script())
            .arg(command)
            .arg(self.dir.path())
            .arg(self.port.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "postgres.sh {command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stop the server (fast shutdown: open connections are cut), keeping its data.
    pub fn stop(&self) {
        self.script("stop");
    }

    /// Start the stopped server again on the same data and port.
    pub fn resume(&self) {
        self.script("resume");
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn url(&self, role: &str) -> String {
        format!("postgres://{role}@127.0.0.1:{}/postgres", self.port)
    }

    /// Connected as the superuser, with the schema initialised.
    pub async fn admin(&self) -> Queue {
        let queue = Queue::connect(&self.url("postgres")).await.unwrap();
        queue.init().await.unwrap();
        queue
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = std::process::Command::new("sh")
            .arg(script())
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

/// The runners' lease (seconds): short, so a dead runner's items are free again quickly.
pub const LEASE: u64 = 3;

/// Start the real `salve runner` for `tenant`, its stderr in `log` (readable after a kill).
pub fn runner(
    pg: &Pg,
    id: &str,
    tenant: &str,
    concurrency: usize,
    inventory: &Path,
    log: &Path,
) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_salve"))
        .args([
            "runner",
            "--exit-when-idle",
            "--concurrency",
            &concurrency.to_string(),
            "--poll",
            "1",
        ])
        .args([
            "--lease",
            &LEASE.to_string(),
            "--id",
            id,
            "--tenant",
            tenant,
        ])
        .arg("-i")
        .arg(inventory)
        .env("SALVE_QUEUE_URL", pg.url("postgres"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Wait until the runner exits by itself; returns its exit code and stderr.
pub async fn exited(mut child: tokio::process::Child, log: &Path) -> (i32, String) {
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the runner did not exit")
        .unwrap();
    (
        status.code().unwrap_or(-1),
        std::fs::read_to_string(log).unwrap(),
    )
}

pub fn connector() -> Arc<Dispatch> {
    Arc::new(Dispatch::new(
        Arc::new(WinrmConnector),
        Arc::new(SshConnector::new()),
    ))
}

/// Runner options for tests: short leases, fast polls, stop when the tenant is idle.
pub fn options(id: &str, tenant: &str, concurrency: usize) -> WorkerOptions {
    WorkerOptions {
        id: id.into(),
        tenants: vec![tenant.into()],
        concurrency,
        lease: Duration::from_secs(3),
        poll: Duration::from_millis(100),
        exit_when_idle: true,
        ..WorkerOptions::default()
    }
}

/// Start a runner as a task with the inventory at `inventory`.
pub fn spawn_runner(
    queue: &Queue,
    options: WorkerOptions,
    inventory: &Path,
) -> tokio::task::JoinHandle<WorkerReport> {
    let inventory = salve::config::inventory::load(&[inventory.to_path_buf()])
        .unwrap()
        .value;
    let worker = Worker::new(queue.clone(), options, inventory, connector());
    tokio::spawn(worker.run(Interrupt::default()))
}

/// Wait (polling) until the queue holds `n` work items; fails early with the controller's
/// output if it exits first.
pub async fn wait_for_items(queue: &Queue, n: i64, controller: &mut tokio::process::Child) {
    for _ in 0..600 {
        if let Ok(Some(status)) = controller.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = controller.stderr.take() {
                use tokio::io::AsyncReadExt as _;
                let _ = e.read_to_string(&mut err).await;
            }
            panic!("the controller exited ({status}) before enqueueing: {err}");
        }
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM salve.work")
            .fetch_one(queue.pool())
            .await
            .unwrap();
        if count >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the controller never enqueued {n} items");
}

/// Start `salve run --queue` on the playbook and the lab's inventory, writing its report files
/// into `reports/` beside the playbook; returns the child.
pub fn controller(pg: &Pg, playbook: &Path, inventory: &Path) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_salve"))
        .args(["run", "--json", "--all-tenants", "--queue"])
        .arg(pg.url("postgres"))
        .arg("--report-dir")
        .arg(playbook.with_file_name("reports"))
        .arg(playbook)
        .arg("-i")
        .arg(inventory)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Wait for the controller; returns (exit code, JSON events, stdout+stderr text).
pub async fn finish(child: tokio::process::Child) -> (i32, Vec<Value>, String) {
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the controller did not finish")
        .unwrap();
    crate::lab_support::json_outcome(&out)
}
