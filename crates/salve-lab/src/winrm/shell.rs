//! Remote shells and the commands running in them, as WinRM keeps them per host.
//!
//! A shell belongs to the user who created it and lives until Delete, its idle timeout, or a
//! reboot. A command wraps a [`LabProcess`]: its output is buffered here between Receives, and
//! each Receive takes as much as fits in the client's MaxEnvelopeSize, so a big output spans
//! several Receives, as on Windows.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::soap::{RECEIVE_OVERHEAD, STREAM_OVERHEAD, StreamName};
use crate::host_api::{LabProcess, ProcessOutput, StdinChunk};

/// Exit code reported when a process ends without saying how (the simulation dropped it).
const LOST_EXIT_CODE: i32 = 1;

/// Lock a std mutex, recovering the data if another task panicked while holding it: the
/// tables stay consistent because every critical section is a single insert/remove/read.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One open shell.
#[derive(Debug)]
pub struct Shell {
    pub id: String,
    pub owner: String,
    last_used: Mutex<Instant>,
    commands: Mutex<HashMap<String, Slot>>,
}

/// A command and its kill token, kept apart so killing never waits for a Receive in flight.
#[derive(Debug)]
struct Slot {
    kill: tokio_util::sync::CancellationToken,
    command: Arc<tokio::sync::Mutex<Command>>,
}

impl Shell {
    pub fn new(id: String, owner: String) -> Self {
        Self {
            id,
            owner,
            last_used: Mutex::new(Instant::now()),
            commands: Mutex::new(HashMap::new()),
        }
    }

    /// Note activity (any request naming the shell), which resets its idle timer.
    pub fn touch(&self) {
        *lock(&self.last_used) = Instant::now();
    }

    pub fn idle_for(&self) -> Duration {
        lock(&self.last_used).elapsed()
    }

    pub fn add_command(&self, command: Command) -> String {
        let id = command.id.clone();
        let slot = Slot {
            kill: command.kill.clone(),
            command: Arc::new(tokio::sync::Mutex::new(command)),
        };
        lock(&self.commands).insert(id.clone(), slot);
        id
    }

    pub fn command(&self, id: &str) -> Option<Arc<tokio::sync::Mutex<Command>>> {
        lock(&self.commands)
            .get(id)
            .map(|slot| slot.command.clone())
    }

    /// Remove a command (after Signal terminate) and kill its process.
    pub fn remove_command(&self, id: &str) -> bool {
        match lock(&self.commands).remove(id) {
            Some(slot) => {
                slot.kill.cancel();
                true
            }
            None => false,
        }
    }

    /// Kill every command (Delete, expiry, reboot).
    pub fn kill_all(&self) {
        for (_, slot) in lock(&self.commands).drain() {
            slot.kill.cancel();
        }
    }
}

/// Output a Receive hands back.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub streams: Vec<(StreamName, Vec<u8>)>,
    /// Set once all output has been delivered and the process has exited.
    pub exit: Option<i32>,
}

/// A command started in a shell.
#[derive(Debug)]
pub struct Command {
    pub id: String,
    /// 1-based count of commands started on this host (for `drop_mid_command`).
    pub ordinal: u32,
    stdin: tokio::sync::mpsc::UnboundedSender<StdinChunk>,
    output: tokio::sync::mpsc::UnboundedReceiver<ProcessOutput>,
    kill: tokio_util::sync::CancellationToken,
    pending: VecDeque<(StreamName, Vec<u8>)>,
    exit: Option<i32>,
}

impl Command {
    pub fn new(id: String, ordinal: u32, process: LabProcess) -> Self {
        Self {
            id,
            ordinal,
            stdin: process.stdin,
            output: process.output,
            kill: process.kill,
            pending: VecDeque::new(),
            exit: None,
        }
    }

    /// Deliver stdin; false when the process no longer reads it.
    pub fn send_stdin(&self, data: Vec<u8>, eof: bool) -> bool {
        self.stdin.send(StdinChunk { data, eof }).is_ok()
    }

    /// Wait up to `timeout` for output or exit; `None` means nothing happened (the TimedOut
    /// fault). Returns what fits in an envelope of `max_envelope` bytes.
    pub async fn receive(&mut self, timeout: Duration, max_envelope: usize) -> Option<Batch> {
        if self.pending.is_empty() && self.exit.is_none() {
            match tokio::time::timeout(timeout, self.output.recv()).await {
                Err(_) => return None,
                Ok(msg) => self.absorb(msg),
            }
        }
        while self.exit.is_none() {
            match self.output.try_recv() {
                Ok(msg) => self.absorb(Some(msg)),
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => self.absorb(None),
            }
        }
        Some(self.take_batch(max_envelope))
    }

    fn absorb(&mut self, msg: Option<ProcessOutput>) {
        match msg {
            Some(ProcessOutput::Stdout(b)) => self.push(StreamName::Stdout, b),
            Some(ProcessOutput::Stderr(b)) => self.push(StreamName::Stderr, b),
            Some(ProcessOutput::Exit(code)) => self.exit = Some(code),
            None => self.exit = Some(LOST_EXIT_CODE),
        }
    }

    fn push(&mut self, stream: StreamName, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        match self.pending.back_mut() {
            Some((s, buf)) if *s == stream => buf.extend_from_slice(&bytes),
            _ => self.pending.push_back((stream, bytes)),
        }
    }

    fn take_batch(&mut self, max_envelope: usize) -> Batch {
        let mut room = max_envelope.saturating_sub(RECEIVE_OVERHEAD);
        let mut batch = Batch::default();
        while let Some((stream, buf)) = self.pending.front_mut() {
            // Raw bytes whose base64 fits in what is left, in whole 3-byte groups.
            let fits = room.saturating_sub(STREAM_OVERHEAD) / 4 * 3;
            if fits == 0 {
                break;
            }
            let n = fits.min(buf.len());
            let chunk: Vec<u8> = buf.drain(..n).collect();
            room -= STREAM_OVERHEAD + n.div_ceil(3) * 4;
            batch.streams.push((*stream, chunk));
            if buf.is_empty() {
                self.pending.pop_front();
            }
        }
        if self.pending.is_empty() {
            batch.exit = self.exit;
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    fn command() -> (Command, mpsc::UnboundedSender<ProcessOutput>) {
        let (stdin, _stdin_rx) = mpsc::unbounded_channel();
        let (tx, output) = mpsc::unbounded_channel();
        let process = LabProcess {
            stdin,
            output,
            kill: CancellationToken::new(),
        };
        (Command::new("C".into(), 1, process), tx)
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_without_output() {
        let (mut c, _tx) = command();
        assert_eq!(c.receive(Duration::from_secs(20), 153_600).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn splits_output_to_fit_the_envelope_and_reports_exit_last() {
        let (mut c, tx) = command();
        tx.send(ProcessOutput::Stdout(vec![b'a'; 10_000])).unwrap();
        tx.send(ProcessOutput::Stderr(b"oops".to_vec())).unwrap();
        tx.send(ProcessOutput::Exit(7)).unwrap();
        let max = 4096;
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut polls = 0;
        loop {
            polls += 1;
            let batch = c.receive(Duration::from_secs(1), max).await.unwrap();
            let xml = super::super::soap::receive_response(
                "uuid:x",
                "C",
                &batch
                    .streams
                    .iter()
                    .map(|(s, b)| (*s, b.as_slice()))
                    .collect::<Vec<_>>(),
                batch.exit,
            );
            assert!(xml.len() <= max, "envelope {} > {max}", xml.len());
            for (s, b) in batch.streams {
                match s {
                    StreamName::Stdout => out.extend(b),
                    StreamName::Stderr => err.extend(b),
                }
            }
            if let Some(code) = batch.exit {
                assert_eq!(code, 7);
                break;
            }
        }
        assert!(polls > 3);
        assert_eq!(out, vec![b'a'; 10_000]);
        assert_eq!(err, b"oops");
    }

    #[tokio::test(start_paused = true)]
    async fn a_vanished_process_reports_an_exit() {
        let (mut c, tx) = command();
        drop(tx);
        assert_eq!(
            c.receive(Duration::from_secs(1), 153_600)
                .await
                .unwrap()
                .exit,
            Some(LOST_EXIT_CODE)
        );
    }
}
