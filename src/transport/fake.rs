//! A scripted fake transport for unit and runner tests.
//!
//! A [`FakeFleet`] answers every host's scripts with a closure, can make hosts unreachable or
//! slow, and counts connections and commands so tests can check what the runner did. It uses
//! tokio time only, so tests run with paused time and no real sleeping.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{
    Cause, ConnectionSpec, Connector, OutputChunk, RunRequest, ScriptOutput, Transport,
    TransportError,
};
use crate::script::Script;

/// What a fake host answers to one script.
#[derive(Debug, Clone)]
pub struct FakeReply {
    /// Simulated run time before the answer.
    pub delay: Duration,
    pub result: Result<ScriptOutput, TransportError>,
}

impl FakeReply {
    pub fn ok(stdout: &str) -> Self {
        FakeReply {
            delay: Duration::ZERO,
            result: Ok(ScriptOutput {
                exit_code: 0,
                stdout: stdout.to_string(),
                stderr: String::new(),
            }),
        }
    }

    pub fn exit(code: i32, stderr: &str) -> Self {
        FakeReply {
            delay: Duration::ZERO,
            result: Ok(ScriptOutput {
                exit_code: code,
                stdout: String::new(),
                stderr: stderr.to_string(),
            }),
        }
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Handler = dyn Fn(&str, &Script) -> FakeReply + Send + Sync;

/// A set of fake hosts sharing one answering closure.
pub struct FakeFleet {
    handler: Box<Handler>,
    unreachable: Mutex<BTreeSet<String>>,
    log: Mutex<Vec<(String, Script)>>,
    connects: Mutex<BTreeMap<String, usize>>,
    /// Connections open now, and the most open at once.
    open: Mutex<(usize, usize)>,
    cancelled: Mutex<Vec<String>>,
}

impl FakeFleet {
    /// Every host answers with `handler(host_name, script)`.
    pub fn new(handler: impl Fn(&str, &Script) -> FakeReply + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(FakeFleet {
            handler: Box::new(handler),
            unreachable: Mutex::default(),
            log: Mutex::default(),
            connects: Mutex::default(),
            open: Mutex::default(),
            cancelled: Mutex::default(),
        })
    }

    /// Make a host refuse connections (or accept them again).
    pub fn set_unreachable(&self, host: &str, down: bool) {
        let mut set = lock(&self.unreachable);
        if down {
            set.insert(host.to_string());
        } else {
            set.remove(host);
        }
    }

    /// Scripts run so far, in order, with the host they ran on.
    pub fn commands(&self) -> Vec<(String, Script)> {
        lock(&self.log).clone()
    }

    /// How many scripts ran on `host`.
    pub fn count(&self, host: &str) -> usize {
        lock(&self.log).iter().filter(|(h, _)| h == host).count()
    }

    /// How many times a connection to `host` was opened.
    pub fn connects(&self, host: &str) -> usize {
        lock(&self.connects).get(host).copied().unwrap_or(0)
    }

    /// The most connections that were open at once (opened and not yet closed).
    pub fn peak_open(&self) -> usize {
        lock(&self.open).1
    }

    /// Hosts on which a running command was cancelled or timed out (and so stopped).
    pub fn cancelled(&self) -> Vec<String> {
        lock(&self.cancelled).clone()
    }

    fn down(&self, host: &str) -> bool {
        lock(&self.unreachable).contains(host)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking test thread poisons the lock; the data is still usable for reporting.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn unreachable(host: &str) -> TransportError {
    TransportError::Unreachable {
        endpoint: format!("{host}:5985"),
        cause: Cause::text("connection timed out (fake)"),
    }
}

/// Connector handing out transports bound to a shared [`FakeFleet`].
pub struct FakeConnector(pub Arc<FakeFleet>);

#[async_trait]
impl Connector for FakeConnector {
    async fn connect(&self, spec: &ConnectionSpec) -> Result<Arc<dyn Transport>, TransportError> {
        *lock(&self.0.connects).entry(spec.name.clone()).or_default() += 1;
        if self.0.down(&spec.name) {
            return Err(unreachable(&spec.name));
        }
        let mut open = lock(&self.0.open);
        open.0 += 1;
        open.1 = open.1.max(open.0);
        Ok(Arc::new(FakeTransport {
            fleet: Arc::clone(&self.0),
            host: spec.name.clone(),
        }))
    }
}

struct FakeTransport {
    fleet: Arc<FakeFleet>,
    host: String,
}

#[async_trait]
impl Transport for FakeTransport {
    async fn run(&self, request: RunRequest) -> Result<ScriptOutput, TransportError> {
        if self.fleet.down(&self.host) {
            return Err(unreachable(&self.host));
        }
        lock(&self.fleet.log).push((self.host.clone(), request.script.clone()));
        let reply = (self.fleet.handler)(&self.host, &request.script);
        let stopped = |e: TransportError| {
            lock(&self.fleet.cancelled).push(self.host.clone());
            Err(e)
        };
        tokio::select! {
            _ = tokio::time::sleep(reply.delay) => {}
            _ = tokio::time::sleep(request.timeout) => return stopped(TransportError::Timeout { after: request.timeout }),
            _ = request.cancel.cancelled() => return stopped(TransportError::Cancelled),
        }
        if let (Some(tx), Ok(out)) = (&request.output, &reply.result) {
            for line in out.stdout.lines() {
                let _ = tx.send(OutputChunk::Stdout(line.to_string()));
            }
        }
        reply.result
    }

    async fn close(&self) {
        let mut open = lock(&self.fleet.open);
        open.0 = open.0.saturating_sub(1);
    }
}
