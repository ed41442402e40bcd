//! The lab's WinRM listener against real clients: pywinrm (NTLM with message encryption over
//! HTTP, Basic over HTTPS with the lab CA, long-polling, wrong passwords) and a plain hyper
//! client driving 200 listeners at once, quotas, TimedOut faults and reboots.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use salve_lab::host_api::{LabProcess, NetFaults, ProcessOutput, ProtocolEvent, SimHost};
use salve_lab::winrm::{LabCa, ListenerConfig, Quotas, Scheme, WinrmListener};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

const USER: &str = "labadmin";
const PASSWORD: &str = "Lab-Passw0rd!";

/// A host whose commands are a tiny PowerShell subset: Write-Output, Write-Error,
/// Start-Sleep (seconds or -Milliseconds) and exit N, one statement per line or `;`.
struct TestHost {
    events: Mutex<Vec<ProtocolEvent>>,
    faults: Mutex<NetFaults>,
    accepting: AtomicBool,
    boot: watch::Sender<u64>,
}

impl TestHost {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            events: Mutex::new(Vec::new()),
            faults: Mutex::new(NetFaults::default()),
            accepting: AtomicBool::new(true),
            boot: watch::channel(0).0,
        })
    }

    fn events(&self) -> Vec<ProtocolEvent> {
        self.events.lock().unwrap().clone()
    }

    fn count(&self, f: impl Fn(&ProtocolEvent) -> bool) -> usize {
        self.events().iter().filter(|e| f(e)).count()
    }
}

fn script_of(command: &str, arguments: &[String]) -> String {
    let line = std::iter::once(command.to_string())
        .chain(arguments.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| w.eq_ignore_ascii_case("-EncodedCommand"));
    at.and_then(|i| words.get(i + 1))
        .and_then(|enc| salve::script::decode_command(enc).ok())
        .unwrap_or_default()
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches(|c| c == '\'' || c == '"').to_string()
}

impl SimHost for TestHost {
    fn name(&self) -> &str {
        "ex01.lab.test"
    }
    fn credentials(&self) -> (&str, &str) {
        (USER, PASSWORD)
    }
    fn spawn(&self, command: &str, arguments: &[String]) -> LabProcess {
        let script = script_of(command, arguments);
        let (stdin, _stdin_rx) = mpsc::unbounded_channel();
        let (tx, output) = mpsc::unbounded_channel();
        let kill = CancellationToken::new();
        let killed = kill.clone();
        tokio::spawn(async move {
            let run = async {
                for stmt in script
                    .split(['\n', ';'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                {
                    let (verb, rest) = stmt.split_once(' ').unwrap_or((stmt, ""));
                    match verb.to_ascii_lowercase().as_str() {
                        "write-output" => {
                            let _ = tx.send(ProcessOutput::Stdout(
                                format!("{}\r\n", unquote(rest)).into_bytes(),
                            ));
                        }
                        "write-error" => {
                            let _ = tx.send(ProcessOutput::Stderr(
                                format!("{}\r\n", unquote(rest)).into_bytes(),
                            ));
                        }
                        "start-sleep" => {
                            let ms = match rest.split_whitespace().collect::<Vec<_>>()[..] {
                                ["-Milliseconds", n] => n.parse().unwrap_or(0),
                                [.., n] => n.parse::<u64>().unwrap_or(0) * 1000,
                                _ => 0,
                            };
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                        }
                        "exit" => return rest.trim().parse().unwrap_or(0),
                        _ => {
                            let _ = tx.send(ProcessOutput::Stderr(
                                format!("unknown: {stmt}\r\n").into_bytes(),
                            ));
                            return 1;
                        }
                    }
                }
                0
            };
            let code = tokio::select! {
                code = run => code,
                _ = killed.cancelled() => -1073741510, // STATUS_CONTROL_C_EXIT
            };
            let _ = tx.send(ProcessOutput::Exit(code));
        });
        LabProcess {
            stdin,
            output,
            kill,
        }
    }
    fn accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }
    fn boot_watch(&self) -> watch::Receiver<u64> {
        self.boot.subscribe()
    }
    fn faults(&self) -> NetFaults {
        self.faults.lock().unwrap().clone()
    }
    fn record(&self, event: ProtocolEvent) {
        self.events.lock().unwrap().push(event);
    }
}

async fn start(
    ip: [u8; 4],
    host: Arc<TestHost>,
    config: ListenerConfig,
    shutdown: &CancellationToken,
) -> String {
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), 0);
    let listener = WinrmListener::bind(addr, host, config).await.unwrap();
    let endpoint = listener.endpoint().to_string();
    tokio::spawn(listener.serve(shutdown.clone()));
    endpoint
}

// ---------------------------------------------------------------------------------------------
// pywinrm

pub(crate) fn python() -> Option<PathBuf> {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if py.exists() {
        return Some(py);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "pywinrm venv missing at {}: run tests/peers/install.sh",
            py.display()
        );
    }
    eprintln!(
        "SKIPPED: pywinrm not installed ({} missing); run tests/peers/install.sh",
        py.display()
    );
    None
}

async fn pywinrm(
    py: &Path,
    endpoint: &str,
    transport: &str,
    password: &str,
    ca: Option<&Path>,
    timeouts: (u32, u32),
    script: &str,
) -> serde_json::Value {
    let ca = ca
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "-".into());
    let args = [
        endpoint,
        transport,
        USER,
        password,
        &ca,
        &timeouts.0.to_string(),
        &timeouts.1.to_string(),
        script,
    ];
    run_winrm_client(py, &args, &[]).await
}

/// Run tests/peers/winrm_client.py with `args` (see its usage) and `env` added; its JSON.
pub(crate) async fn run_winrm_client(
    py: &Path,
    args: &[&str],
    env: &[(String, String)],
) -> serde_json::Value {
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/winrm_client.py");
    let out = tokio::process::Command::new(py)
        .arg(client)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("NO_PROXY", "*")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "pywinrm printed no JSON: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pywinrm_ntlm_with_message_encryption_over_http() {
    let Some(py) = python() else { return };
    let shutdown = CancellationToken::new();
    let host = TestHost::new();
    let endpoint = start(
        [127, 0, 0, 21],
        host.clone(),
        ListenerConfig::default(),
        &shutdown,
    )
    .await;
    let r = pywinrm(
        &py,
        &endpoint,
        "ntlm",
        PASSWORD,
        None,
        (20, 30),
        "Write-Output 'hello from lab'\nWrite-Error 'it broke'\nexit 3",
    )
    .await;
    assert_eq!(r["status_code"], 3, "{r}");
    assert_eq!(r["std_out"], "hello from lab\r\n");
    assert!(r["std_err"].as_str().unwrap().contains("it broke"), "{r}");
    // One connection, one handshake, then every request sealed.
    assert_eq!(
        host.count(
            |e| matches!(e, ProtocolEvent::Authenticated { method, .. } if method == "ntlm")
        ),
        1,
        "{:?}",
        host.events()
    );
    assert_eq!(
        host.count(|e| matches!(e, ProtocolEvent::ShellDeleted { .. })),
        1
    );
    assert_eq!(
        host.count(|e| matches!(e, ProtocolEvent::CommandSignalled { .. })),
        1
    );
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pywinrm_plaintext_ntlm_is_refused_when_encryption_is_required() {
    let Some(py) = python() else { return };
    let shutdown = CancellationToken::new();
    let host = TestHost::new();
    let endpoint = start(
        [127, 0, 0, 25],
        host.clone(),
        ListenerConfig::default(),
        &shutdown,
    )
    .await;
    let r = pywinrm(
        &py,
        &endpoint,
        "ntlm-plain",
        PASSWORD,
        None,
        (20, 30),
        "Write-Output x",
    )
    .await;
    assert_eq!(r["error"], "WinRMTransportError", "{r}");
    assert!(r["detail"].as_str().unwrap().contains("500"), "{r}");
    assert_eq!(
        host.count(|e| matches!(e, ProtocolEvent::ShellCreated { .. })),
        0
    );

    // The same client is served when the listener allows unencrypted traffic.
    let relaxed = ListenerConfig {
        allow_unencrypted: true,
        ..Default::default()
    };
    let endpoint = start([127, 0, 0, 26], host.clone(), relaxed, &shutdown).await;
    let r = pywinrm(
        &py,
        &endpoint,
        "ntlm-plain",
        PASSWORD,
        None,
        (20, 30),
        "Write-Output x",
    )
    .await;
    assert_eq!(r["std_out"], "x\r\n", "{r}");
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pywinrm_long_command_outlives_the_operation_timeout() {
    let Some(py) = python() else { return };
    let shutdown = CancellationToken::new();
    let host = TestHost::new();
    let endpoint = start(
        [127, 0, 0, 22],
        host.clone(),
        ListenerConfig::default(),
        &shutdown,
    )
    .await;
    let r = pywinrm(
        &py,
        &endpoint,
        "ntlm",
        PASSWORD,
        None,
        (1, 3),
        "Start-Sleep -Milliseconds 2500\nWrite-Output done",
    )
    .await;
    assert_eq!(r["status_code"], 0, "{r}");
    assert_eq!(r["std_out"], "done\r\n");
    let timed_out =
        host.count(|e| matches!(e, ProtocolEvent::Fault { code, .. } if code == "2150858793"));
    assert!(
        timed_out >= 1,
        "expected TimedOut faults: {:?}",
        host.events()
    );
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pywinrm_wrong_password_gets_401() {
    let Some(py) = python() else { return };
    let shutdown = CancellationToken::new();
    let host = TestHost::new();
    let endpoint = start(
        [127, 0, 0, 23],
        host.clone(),
        ListenerConfig::default(),
        &shutdown,
    )
    .await;
    let r = pywinrm(
        &py,
        &endpoint,
        "ntlm",
        "not-the-password",
        None,
        (20, 30),
        "Write-Output x",
    )
    .await;
    assert_eq!(r["error"], "unauthorized", "{r}");
    assert!(host.count(|e| matches!(e, ProtocolEvent::AuthFailed { .. })) >= 1);
    assert_eq!(
        host.count(|e| matches!(e, ProtocolEvent::ShellCreated { .. })),
        0
    );
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pywinrm_basic_over_https_with_the_lab_ca() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let ca = LabCa::generate().unwrap();
    let ca_path = dir.path().join("lab-ca.pem");
    ca.write_pem(&ca_path).unwrap();
    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 24));
    let config = ListenerConfig {
        scheme: Scheme::Https(ca.host_tls("ex01.lab.test", ip).unwrap()),
        ..Default::default()
    };
    let shutdown = CancellationToken::new();
    let host = TestHost::new();
    let endpoint = start([127, 0, 0, 24], host.clone(), config, &shutdown).await;
    assert!(endpoint.starts_with("https://127.0.0.24:"));
    let r = pywinrm(
        &py,
        &endpoint,
        "basic",
        PASSWORD,
        Some(&ca_path),
        (20, 30),
        "Write-Output secure",
    )
    .await;
    assert_eq!(r["status_code"], 0, "{r}");
    assert_eq!(r["std_out"], "secure\r\n");
    assert!(
        host.count(
            |e| matches!(e, ProtocolEvent::Authenticated { method, .. } if method == "basic")
        ) >= 1
    );

    // With the bad_tls fault the certificate names another host: verification fails.
    host.faults.lock().unwrap().bad_tls = true;
    let r = pywinrm(
        &py,
        &endpoint,
        "basic",
        PASSWORD,
        Some(&ca_path),
        (20, 30),
        "Write-Output x",
    )
    .await;
    assert!(
        r["error"].is_string()
            && r["detail"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains("certificate"),
        "{r}"
    );
    shutdown.cancel();
}

// ---------------------------------------------------------------------------------------------
// A plain Rust client (hyper) with Basic auth over HTTP (AllowUnencrypted = true).

struct Wsman {
    client: Client<HttpConnector, Full<Bytes>>,
    endpoint: String,
    auth: String,
}

fn envelope(action: &str, shell: Option<&str>, timeout: &str, body: &str) -> String {
    let selector = shell
        .map(|s| {
            format!(r#"<w:SelectorSet><w:Selector Name="ShellId">{s}</w:Selector></w:SelectorSet>"#)
        })
        .unwrap_or_default();
    format!(
        r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Header><a:Action>{action}</a:Action><w:ResourceURI>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</w:ResourceURI><a:MessageID>uuid:0</a:MessageID><w:OperationTimeout>{timeout}</w:OperationTimeout><w:MaxEnvelopeSize>153600</w:MaxEnvelopeSize>{selector}</s:Header><s:Body>{body}</s:Body></s:Envelope>"#
    )
}

fn between<'a>(xml: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = xml.find(open)? + open.len();
    Some(&xml[start..start + xml[start..].find(close)?])
}

impl Wsman {
    fn new(endpoint: &str) -> Self {
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self {
            client,
            endpoint: endpoint.to_string(),
            auth: format!("Basic {}", B64.encode(format!("{USER}:{PASSWORD}"))),
        }
    }

    async fn post(&self, xml: String) -> Result<(u16, String), String> {
        let req = hyper::Request::post(&self.endpoint)
            .header("Authorization", &self.auth)
            .header("Content-Type", "application/soap+xml;charset=UTF-8")
            .body(Full::new(Bytes::from(xml)))
            .unwrap();
        let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    async fn create(&self) -> Result<String, (u16, String)> {
        let (status, xml) = self
            .post(envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/Create", None, "PT20S", "<rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>"))
            .await
            .map_err(|e| (0, e))?;
        match between(&xml, "<rsp:ShellId>", "</rsp:ShellId>") {
            Some(id) if status == 200 => Ok(id.to_string()),
            _ => Err((status, xml)),
        }
    }

    async fn command(&self, shell: &str, script: &str) -> String {
        let args = format!(
            "-NoProfile -EncodedCommand {}",
            salve::script::encode_command(script)
        );
        let body = format!(
            "<rsp:CommandLine><rsp:Command>powershell.exe</rsp:Command><rsp:Arguments>{args}</rsp:Arguments></rsp:CommandLine>"
        );
        let (status, xml) = self
            .post(envelope(
                "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command",
                Some(shell),
                "PT20S",
                &body,
            ))
            .await
            .unwrap();
        assert_eq!(status, 200, "{xml}");
        between(&xml, "<rsp:CommandId>", "</rsp:CommandId>")
            .unwrap()
            .to_string()
    }

    async fn receive(&self, shell: &str, command: &str, timeout: &str) -> (u16, String) {
        let body = format!(
            r#"<rsp:Receive><rsp:DesiredStream CommandId="{command}">stdout stderr</rsp:DesiredStream></rsp:Receive>"#
        );
        self.post(envelope(
            "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive",
            Some(shell),
            timeout,
            &body,
        ))
        .await
        .unwrap()
    }

    /// Receive until Done; returns (stdout, exit code).
    async fn run(&self, shell: &str, script: &str) -> (String, i32) {
        let command = self.command(shell, script).await;
        let mut stdout = Vec::new();
        loop {
            let (status, xml) = self.receive(shell, &command, "PT5S").await;
            assert_eq!(status, 200, "{xml}");
            let mut rest = xml.as_str();
            while let Some(at) = rest.find(r#"<rsp:Stream Name="stdout""#) {
                rest = &rest[at..];
                let text = between(rest, ">", "</rsp:Stream>").unwrap_or_default();
                stdout.extend(B64.decode(text).unwrap());
                rest = &rest[1..];
            }
            if let Some(code) = between(&xml, "<rsp:ExitCode>", "</rsp:ExitCode>") {
                return (String::from_utf8(stdout).unwrap(), code.parse().unwrap());
            }
        }
    }

    async fn delete(&self, shell: &str) -> u16 {
        self.post(envelope(
            "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete",
            Some(shell),
            "PT20S",
            "",
        ))
        .await
        .unwrap()
        .0
    }
}

fn basic_http() -> ListenerConfig {
    ListenerConfig {
        allow_unencrypted: true,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_listeners_serve_concurrent_clients() {
    let shutdown = CancellationToken::new();
    let mut hosts = Vec::new();
    for i in 1..=200u8 {
        let host = TestHost::new();
        let endpoint = start([127, 0, 1, i], host.clone(), basic_http(), &shutdown).await;
        hosts.push((host, endpoint));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (_, endpoint)) in hosts.iter().enumerate() {
        let endpoint = endpoint.clone();
        tasks.spawn(async move {
            let c = Wsman::new(&endpoint);
            let shell = c.create().await.unwrap();
            let out = c
                .run(
                    &shell,
                    &format!(
                        "Start-Sleep -Milliseconds 200\nWrite-Output host{i}\nexit {}",
                        i % 7
                    ),
                )
                .await;
            assert_eq!(c.delete(&shell).await, 200);
            (i, out)
        });
    }
    let mut done = 0;
    while let Some(res) = tasks.join_next().await {
        let (i, (stdout, code)) = res.unwrap();
        assert_eq!(stdout, format!("host{i}\r\n"));
        assert_eq!(code, (i % 7) as i32);
        done += 1;
    }
    assert_eq!(done, 200);
    for (host, _) in &hosts {
        assert_eq!(
            host.count(|e| matches!(e, ProtocolEvent::ShellDeleted { .. })),
            1
        );
    }
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_and_timed_out_faults_reach_the_client() {
    let shutdown = CancellationToken::new();
    let host = TestHost::new();
    let config = ListenerConfig {
        quotas: Quotas {
            max_shells_per_user: 2,
            ..Quotas::default()
        },
        ..basic_http()
    };
    let endpoint = start([127, 0, 0, 31], host.clone(), config, &shutdown).await;
    let c = Wsman::new(&endpoint);
    let first = c.create().await.unwrap();
    c.create().await.unwrap();
    let (status, xml) = c.create().await.unwrap_err();
    assert_eq!(status, 500);
    assert!(
        xml.contains(r#"Code="2150859173""#)
            && xml.contains("maximum number of 2 concurrent shells"),
        "{xml}"
    );

    let command = c.command(&first, "Start-Sleep 30").await;
    let (status, xml) = c.receive(&first, &command, "PT0.2S").await;
    assert_eq!(status, 500);
    assert!(
        xml.contains("<s:Value>w:TimedOut</s:Value>") && xml.contains(r#"Code="2150858793""#),
        "{xml}"
    );

    // Unknown shells and actions are faults too, and bad XML is refused with one.
    assert_eq!(c.delete("NO-SUCH-SHELL").await, 500);
    let (status, xml) = c.post("<s:Envelope><oops".into()).await.unwrap();
    assert_eq!(status, 500);
    assert!(xml.contains("WSManFault"), "{xml}");
    let (status, xml) = c
        .post(envelope(
            "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get",
            None,
            "PT20S",
            "",
        ))
        .await
        .unwrap();
    assert_eq!(status, 500);
    assert!(xml.contains("ActionNotSupported"), "{xml}");
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_shells_expire_and_reboots_drop_everything() {
    let shutdown = CancellationToken::new();
    let host = TestHost::new();
    let config = ListenerConfig {
        quotas: Quotas {
            idle_timeout: Duration::from_millis(300),
            ..Quotas::default()
        },
        ..basic_http()
    };
    let endpoint = start([127, 0, 0, 32], host.clone(), config, &shutdown).await;
    let c = Wsman::new(&endpoint);
    let shell = c.create().await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        host.count(|e| matches!(e, ProtocolEvent::ShellExpired { .. })),
        1
    );
    assert_eq!(c.delete(&shell).await, 500, "an expired shell is gone");

    let shell = c.create().await.unwrap();
    host.accepting.store(false, Ordering::SeqCst);
    host.boot.send_modify(|b| *b += 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The keep-alive connection was dropped and new ones are refused while the host is down.
    let fresh = Wsman::new(&endpoint);
    assert!(fresh.post(envelope("x", None, "PT1S", "")).await.is_err());
    host.accepting.store(true, Ordering::SeqCst);
    assert_eq!(
        fresh.delete(&shell).await,
        500,
        "shells do not survive a reboot"
    );
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_and_wrong_basic_get_401_with_both_schemes() {
    let shutdown = CancellationToken::new();
    let host = TestHost::new();
    let endpoint = start([127, 0, 0, 33], host.clone(), basic_http(), &shutdown).await;
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let req = hyper::Request::post(&endpoint)
        .body(Full::new(Bytes::from_static(b"<x/>")))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 401);
    let schemes: Vec<_> = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(schemes, ["Negotiate", "Basic realm=\"WSMAN\""]);
    let mut c = Wsman::new(&endpoint);
    c.auth = format!("Basic {}", B64.encode(format!("{USER}:wrong")));
    assert_eq!(c.create().await.unwrap_err().0, 401);
    assert_eq!(
        host.count(|e| matches!(e, ProtocolEvent::AuthFailed { .. })),
        1
    );

    // Basic over plain HTTP is refused when AllowUnencrypted is false (the Windows default).
    let strict = start(
        [127, 0, 0, 34],
        host.clone(),
        ListenerConfig::default(),
        &shutdown,
    )
    .await;
    assert_eq!(Wsman::new(&strict).create().await.unwrap_err().0, 401);
    shutdown.cancel();
}
