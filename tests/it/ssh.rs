//! The SSH transport against a real OpenSSH sshd on 127.0.0.1, whose ForceCommand is `salve
//! lab shell` (a simulated Exchange host): PowerShell round trips, shipped-script answers, large
//! scripts on stdin, timeouts and cancellation, host-key checking, authentication failures,
//! connection reuse and classified connection errors.
//!
//! Needs /usr/sbin/sshd (`tests/peers/install.sh` installs it). Without it the tests skip with
//! a message, except under CI=true, where a missing sshd is a failure.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use salve::contract::FactsAnswer;
use salve::model::HostSettings;
use salve::script::Script;
use salve::transport::ssh::SshConnector;
use salve::transport::{
    ConnectionSpec, Connector, OutputChunk, RunRequest, Transport, TransportError,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const SSHD: &str = "/usr/sbin/sshd";
/// A host of `salve lab init --hosts 3` that answers (the first one is unreachable by design).
const LAB_HOST: &str = "contoso-ex02";

fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn keygen(path: &Path, kind: &str) -> String {
    let bits: &[&str] = if kind == "rsa" { &["-b", "2048"] } else { &[] };
    let mut args = vec!["-q", "-t", kind, "-N", "", "-C", "salve-test", "-f"];
    args.push(path.to_str().unwrap());
    args.extend_from_slice(bits);
    sh("ssh-keygen", &args);
    std::fs::read_to_string(path.with_extension("pub")).unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A test sshd in a temp dir, killed on drop.
struct Sshd {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    user: String,
    /// `ssh-ed25519 AAAA... comment` of the host.
    host_key: String,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    /// Start one, or `None` (with a message) when sshd is not installed outside CI.
    fn start() -> Option<Sshd> {
        if !Path::new(SSHD).exists() {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
            assert!(
                !ci,
                "{SSHD} is missing; tests/peers/install.sh installs openssh-server"
            );
            eprintln!("skipping SSH test: {SSHD} is missing (run tests/peers/install.sh)");
            return None;
        }
        // The privilege-separation directory sshd insists on.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let host_key = keygen(&d.join("host_ed25519"), "ed25519");
        let mut authorized = keygen(&d.join("id_ed25519"), "ed25519");
        authorized.push_str(&keygen(&d.join("id_rsa"), "rsa"));
        keygen(&d.join("stranger"), "ed25519");
        std::fs::write(d.join("authorized_keys"), authorized).unwrap();
        let lab = d.join("lab");
        let salve = env!("CARGO_BIN_EXE_salve");
        sh(
            salve,
            &[
                "lab",
                "init",
                "--state-dir",
                lab.to_str().unwrap(),
                "--hosts",
                "3",
            ],
        );
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nPubkeyAuthentication yes\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             StrictModes no\nPermitRootLogin prohibit-password\nMaxStartups 100:30:200\n\
             MaxSessions 100\nLogLevel VERBOSE\n\
             ForceCommand {salve} lab shell --state-dir {lab} --host {LAB_HOST}\n",
            d = d.display(),
            lab = lab.display(),
        );
        let cfg = d.join("sshd_config");
        std::fs::write(&cfg, config).unwrap();
        sh(SSHD, &["-t", "-f", cfg.to_str().unwrap()]);
        let child = Command::new(SSHD)
            .args(["-D", "-f", cfg.to_str().unwrap(), "-E"])
            .arg(d.join("sshd.log"))
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let user = sh("id", &["-un"]).trim().to_string();
        let sshd = Sshd {
            child,
            dir,
            port,
            user,
            host_key: host_key.trim().to_string(),
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(sshd);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("sshd did not listen on {port}: {}", sshd.log());
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("sshd.log")).unwrap_or_default()
    }

    /// SSH connections sshd authenticated so far.
    fn connections(&self) -> usize {
        self.log().matches("Accepted publickey for").count()
    }

    /// A known_hosts file holding the host's real key.
    fn known_hosts(&self) -> PathBuf {
        let path = self.path("known_hosts");
        std::fs::write(
            &path,
            format!("[127.0.0.1]:{} {}\n", self.port, self.host_key),
        )
        .unwrap();
        path
    }

    /// Connection variables for the lab host, with the test key and a trusted host key.
    fn vars(&self) -> Value {
        json!({
            "ansible_connection": "ssh",
            "ansible_host": "127.0.0.1",
            "ansible_port": self.port,
            "ansible_user": self.user,
            "ansible_ssh_private_key_file": self.path("id_ed25519"),
            "salve_ssh_known_hosts": self.known_hosts(),
        })
    }
}

fn spec(vars: Value) -> ConnectionSpec {
    HostSettings::read(LAB_HOST, vars.as_object().unwrap())
        .unwrap()
        .connection
}

fn with(mut vars: Value, key: &str, value: impl Into<Value>) -> Value {
    vars[key] = value.into();
    vars
}

async fn connect(vars: Value) -> Result<Arc<dyn Transport>, TransportError> {
    SshConnector::new().connect(&spec(vars)).await
}

fn request(script: Script) -> RunRequest {
    RunRequest::new(script, Duration::from_secs(30))
}

#[tokio::test]
async fn raw_powershell_round_trip_streams_and_separates_stdout_stderr_and_exit_code() {
    let Some(sshd) = Sshd::start() else { return };
    let t = connect(sshd.vars()).await.unwrap();

    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut req = request(Script::raw(
        "Write-Output 'hello'\nWrite-Output 'world'\nexit 7",
    ));
    req.output = Some(tx);
    let out = t.run(req).await.unwrap();
    assert_eq!(out.exit_code, 7);
    assert_eq!(out.stdout.trim_end(), "hello\nworld");
    assert_eq!(out.stderr, "");
    let mut streamed = Vec::new();
    while let Ok(chunk) = rx.try_recv() {
        streamed.push(chunk);
    }
    assert_eq!(
        streamed,
        [
            OutputChunk::Stdout("hello".into()),
            OutputChunk::Stdout("world".into())
        ]
    );

    // Stderr arrives as CLIXML on its own stream and is decoded; the prelude's
    // $ErrorActionPreference = 'Stop' makes the error end the script with exit 1.
    let out = t
        .run(request(Script::raw(
            "Write-Output 'before'\nWrite-Error 'went wrong'\nWrite-Output 'after'",
        )))
        .await
        .unwrap();
    assert_eq!(out.exit_code, 1);
    assert_eq!(out.stdout.trim_end(), "before");
    assert!(out.stderr.contains("went wrong"), "{}", out.stderr);
    assert!(!out.stderr.contains("CLIXML"), "{}", out.stderr);

    // Arguments travel as data, quotes and all.
    let tricky = "it's \"$(quoted)\"; exit 9";
    let out = t
        .run(request(
            Script::raw("Write-Output $SalveArgs.text").with_args(json!({ "text": tricky })),
        ))
        .await
        .unwrap();
    assert_eq!((out.exit_code, out.stdout.trim_end()), (0, tricky));
    t.close().await;
}

#[tokio::test]
async fn shipped_script_answers_on_its_result_line() {
    let Some(sshd) = Sshd::start() else { return };
    let t = connect(sshd.vars()).await.unwrap();
    let script = Script::shipped("exchange_facts", "# read by the lab", json!({}));
    let out = t.run(request(script)).await.unwrap();
    assert_eq!(out.exit_code, 0, "{}", out.stderr);
    let answer = salve::script::extract_result(&out.stdout)
        .expect("a result line")
        .unwrap();
    let facts: FactsAnswer = serde_json::from_value(answer).unwrap();
    // The default mix's DAG tenant (2019 CU14 with the October 2025 SU on its second host).
    assert_eq!(facts.build.as_deref(), Some("15.2.1544.36"));
    assert_eq!(facts.family.as_deref(), Some("Exchange 2019"));
    assert!(
        facts.config.is_some(),
        "the facts read the fix-related configuration"
    );
}

#[tokio::test]
async fn a_long_script_ending_in_a_block_runs_whole() {
    let Some(sshd) = Sshd::start() else { return };
    let t = connect(sshd.vars()).await.unwrap();
    // 20,000 characters ending in a multi-line `try` block: over `-Command -` the block would
    // be dropped and the exit code 0 (tests/it/delivery.rs shows the lab doing so).
    let script = Script::raw(crate::delivery::long_script(20_000));
    let out = t.run(request(script)).await.unwrap();
    assert_eq!(out.exit_code, 7, "{}", out.stderr);
    assert!(out.stdout.contains("filler line 00001"));
    assert_eq!(out.stdout.trim_end().lines().last(), Some("the last line"));
}

#[tokio::test]
async fn timeout_and_cancel_stop_the_command_and_keep_the_connection() {
    let Some(sshd) = Sshd::start() else { return };
    let t = connect(sshd.vars()).await.unwrap();
    let started = std::time::Instant::now();
    let req = RunRequest::new(
        Script::raw("Start-Sleep -Seconds 20"),
        Duration::from_millis(500),
    );
    let e = t.run(req).await.unwrap_err();
    assert_eq!(e.class(), "timeout", "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    let req = request(Script::raw("Start-Sleep -Seconds 2"));
    let cancel = req.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
    });
    let e = t.run(req).await.unwrap_err();
    assert!(matches!(e, TransportError::Cancelled), "{e}");

    // The channels were closed by the client; the connection still serves commands, also
    // once the stopped commands have ended and sshd confirmed the closes.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let out = t
        .run(request(Script::raw("Write-Output 'still here'")))
        .await
        .unwrap();
    assert_eq!(out.stdout.trim_end(), "still here");
    let log = sshd.log();
    // OpenSSH refuses to signal a ForceCommand session (it would signal a plain one), so the
    // log shows both that salve sent TERM and that it closed the channel.
    assert_eq!(log.matches("signal TERM").count(), 2, "{log}");
    assert_eq!(sshd.connections(), 1, "{log}");
}

#[tokio::test]
async fn twenty_commands_share_one_connection_and_reset_reconnects() {
    let Some(sshd) = Sshd::start() else { return };
    let t = connect(sshd.vars()).await.unwrap();
    for i in 0..20 {
        let out = t
            .run(request(Script::raw(format!("Write-Output 'run {i}'"))))
            .await
            .unwrap();
        assert_eq!(out.stdout.trim_end(), format!("run {i}"));
    }
    assert_eq!(sshd.connections(), 1, "{}", sshd.log());
    // After a reboot the runner resets the transport; the next command reconnects.
    t.reset().await;
    let out = t
        .run(request(Script::raw("Write-Output 'again'")))
        .await
        .unwrap();
    assert_eq!(out.stdout.trim_end(), "again");
    assert_eq!(sshd.connections(), 2, "{}", sshd.log());
    t.close().await;
}

#[tokio::test]
async fn rsa_keys_sign_with_sha2() {
    let Some(sshd) = Sshd::start() else { return };
    let vars = with(
        sshd.vars(),
        "ansible_ssh_private_key_file",
        sshd.path("id_rsa").to_str().unwrap(),
    );
    let t = connect(vars).await.unwrap();
    let out = t
        .run(request(Script::raw("Write-Output 'rsa'")))
        .await
        .unwrap();
    assert_eq!(out.stdout.trim_end(), "rsa");
    let log = sshd.log();
    assert!(
        log.contains("Accepted publickey") && log.contains("RSA SHA256:"),
        "{log}"
    );
    assert!(!log.contains("ssh-rsa,"), "{log}");
}

#[tokio::test]
async fn unknown_host_keys_are_refused_under_strict_and_learned_under_accept_new() {
    let Some(sshd) = Sshd::start() else { return };
    let known = sshd.path("fresh_known_hosts");
    let vars = with(
        sshd.vars(),
        "salve_ssh_known_hosts",
        known.to_str().unwrap(),
    );

    let e = connect(vars.clone()).await.err().unwrap();
    let text = e.to_string();
    assert_eq!(e.class(), "auth", "{text}");
    let fingerprint = sh(
        "ssh-keygen",
        &["-l", "-f", sshd.path("host_ed25519.pub").to_str().unwrap()],
    );
    let fingerprint = fingerprint.split_whitespace().nth(1).unwrap();
    assert!(text.contains(fingerprint), "{text}");
    assert!(
        text.contains(&format!("ssh-keyscan -p {} 127.0.0.1", sshd.port)),
        "{text}"
    );
    assert!(text.contains("accept-new"), "{text}");
    assert!(!known.exists());

    let learning = with(vars.clone(), "salve_ssh_host_key_checking", "accept-new");
    let t = connect(learning).await.unwrap();
    assert_eq!(
        t.run(request(Script::raw("exit 0")))
            .await
            .unwrap()
            .exit_code,
        0
    );
    let recorded = std::fs::read_to_string(&known).unwrap();
    let key_b64 = sshd.host_key.split_whitespace().nth(1).unwrap();
    assert_eq!(
        recorded.trim_start(),
        format!("[127.0.0.1]:{} ssh-ed25519 {key_b64}\n", sshd.port)
    );
    // Recorded: strict checking accepts it now.
    connect(vars).await.unwrap();
}

#[tokio::test]
async fn a_changed_host_key_is_refused_even_under_accept_new() {
    let Some(sshd) = Sshd::start() else { return };
    let other = keygen(&sshd.path("impostor"), "ed25519");
    let known = sshd.path("changed_known_hosts");
    std::fs::write(&known, format!("[127.0.0.1]:{} {other}", sshd.port)).unwrap();
    let vars = with(
        sshd.vars(),
        "salve_ssh_known_hosts",
        known.to_str().unwrap(),
    );
    let vars = with(vars, "salve_ssh_host_key_checking", "accept-new");
    let e = connect(vars).await.err().unwrap();
    let text = e.to_string();
    assert_eq!(e.class(), "auth", "{text}");
    assert!(
        text.contains("HOST KEY CHANGED") && text.contains("line 1"),
        "{text}"
    );
    assert!(text.contains("ssh-keygen -R"), "{text}");
    // Nothing was appended.
    assert_eq!(std::fs::read_to_string(&known).unwrap().lines().count(), 1);
}

#[tokio::test]
async fn a_key_the_host_does_not_know_is_an_auth_error() {
    let Some(sshd) = Sshd::start() else { return };
    let vars = with(
        sshd.vars(),
        "ansible_ssh_private_key_file",
        sshd.path("stranger").to_str().unwrap(),
    );
    let e = connect(vars).await.err().unwrap();
    let text = e.to_string();
    assert_eq!(e.class(), "auth", "{text}");
    assert!(
        text.contains("refused key") && text.contains("stranger"),
        "{text}"
    );
    assert!(text.contains("it accepts: publickey"), "{text}");
}

#[tokio::test]
async fn connection_failures_are_classified() {
    let port = free_port();
    let vars = json!({
        "ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": port,
        "ansible_user": "nobody", "ansible_password": "env:SALVE_TEST_UNSET_PASSWORD_VAR",
    });
    // The password reference is resolved before connecting.
    let e = connect(vars.clone()).await.err().unwrap();
    assert_eq!(e.class(), "config", "{e}");
    assert!(
        e.to_string().contains("SALVE_TEST_UNSET_PASSWORD_VAR"),
        "{e}"
    );

    let vars = with(vars, "ansible_password", "not-a-real-password");
    let e = connect(vars.clone()).await.err().unwrap();
    assert!(
        matches!(
            &e,
            TransportError::Refused { endpoint, .. } if *endpoint == format!("127.0.0.1:{port}")
        ),
        "{e}"
    );

    // Something that accepts TCP but never speaks SSH.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let vars = with(vars, "ansible_port", silent.local_addr().unwrap().port());
    let connector = SshConnector::new().with_connect_timeout(Duration::from_millis(300));
    let e = connector.connect(&spec(vars)).await.err().unwrap();
    assert_eq!(e.class(), "unreachable", "{e}");
    assert!(e.to_string().contains("no SSH handshake"), "{e}");
}

/// A transport error keeps the failure underneath as its source (here the refused TCP
/// connection's I/O error), and the one-line rendering adds what the message does not quote.
#[tokio::test]
async fn a_refused_connection_keeps_its_io_error_as_its_cause() {
    let vars = json!({
        "ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": free_port(),
        "ansible_user": "nobody", "ansible_password": "not-a-real-password",
    });
    let e = connect(vars).await.err().unwrap();
    let io = std::iter::successors(std::error::Error::source(&e), |c| c.source())
        .find_map(|c| c.downcast_ref::<std::io::Error>());
    assert_eq!(
        io.map(std::io::Error::kind),
        Some(std::io::ErrorKind::ConnectionRefused),
        "{e:?}"
    );
    let line = salve::error_chain::one_line(&e);
    assert!(
        line.starts_with(&e.to_string()) && line.len() > e.to_string().len(),
        "{line}"
    );
}

/// Collects every tracing event, at every level, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_password_never_reaches_errors_or_logs() {
    let Some(sshd) = Sshd::start() else { return };
    const SECRET: &str = "zebra-Passw0rd-7c1e";
    // A `file:` reference (owner-only, as salve requires) rather than `env:`: setting an
    // environment variable in a threaded test process needs `unsafe`, which the workspace
    // forbids.
    let secret_file = sshd.path("password");
    std::fs::write(&secret_file, SECRET).unwrap();
    std::fs::set_permissions(
        &secret_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // The stranger key is refused, then the password (sshd allows no passwords here).
    let vars = with(
        sshd.vars(),
        "ansible_ssh_private_key_file",
        sshd.path("stranger").to_str().unwrap(),
    );
    let reference = format!("file:{}", secret_file.display());
    let vars = with(vars, "ansible_password", reference);
    let e = connect(vars.clone()).await.err().unwrap();
    let text = format!("{e} {e:?}");
    assert!(text.contains("then the password"), "{text}");
    // Also through the accept-new path, which logs.
    let fresh = with(
        vars,
        "salve_ssh_known_hosts",
        sshd.path("kh2").to_str().unwrap(),
    );
    let fresh = with(fresh, "salve_ssh_host_key_checking", "accept-new");
    let e2 = connect(fresh).await.err().unwrap();
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("recorded the host key"), "{logs}");
    for haystack in [text, format!("{e2} {e2:?}"), logs, sshd.log()] {
        assert!(!haystack.contains(SECRET), "secret leaked in: {haystack}");
    }
}

#[tokio::test]
async fn salve_run_over_ssh_runs_a_playbook_end_to_end() {
    let Some(sshd) = Sshd::start() else { return };
    let vars = sshd.vars();
    let inventory = sshd.path("inventory.yml");
    // JSON is YAML: the host's connection variables exactly as the transport tests use them.
    std::fs::write(
        &inventory,
        format!("{{\"all\": {{\"hosts\": {{\"{LAB_HOST}\": {vars}}}}}}}\n"),
    )
    .unwrap();
    let playbook = sshd.path("pb.yml");
    std::fs::write(
        &playbook,
        "- hosts: all\n  tasks:\n    - name: who\n      powershell: {script: 'Write-Output $env:COMPUTERNAME'}\n      register: who\n    - assert: {that: [\"who.stdout | trim == inventory_hostname\"]}\n    - name: data\n      powershell: {script: 'Write-Output $SalveArgs.v', args: {v: \"it's $(not) code\"}}\n      register: data\n    - assert: {that: [\"data.stdout | trim == \\\"it's $(not) code\\\"\"]}\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_salve"))
        .args(["run", "--json"])
        .arg(&playbook)
        .arg("-i")
        .arg(&inventory)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let finished = stdout
        .lines()
        .filter(|l| l.contains("\"event\":\"task_finished\""))
        .count();
    assert_eq!(finished, 4, "{stdout}");
    assert_eq!(
        sshd.connections(),
        1,
        "one SSH connection for the whole run"
    );
}
