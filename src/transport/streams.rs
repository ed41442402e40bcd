//! Output of a remote command as it arrives in chunks: kept whole for the result and streamed
//! line by line to the run's reporter. Shared by the transports that receive raw byte chunks
//! (WinRM, SSH); stderr is decoded from CLIXML at the end.

use tokio::sync::mpsc;

use super::{OutputChunk, ScriptOutput};

/// Output collected so far, streamed line by line as it arrives.
pub(super) struct Streams {
    tx: Option<mpsc::UnboundedSender<OutputChunk>>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    sent: [usize; 2],
    pub(super) exit: Option<i32>,
}

impl Streams {
    pub(super) fn new(tx: Option<mpsc::UnboundedSender<OutputChunk>>) -> Self {
        Streams {
            tx,
            stdout: Vec::new(),
            stderr: Vec::new(),
            sent: [0, 0],
            exit: None,
        }
    }

    pub(super) fn push(&mut self, stdout: &[u8], stderr: &[u8]) {
        self.stdout.extend_from_slice(stdout);
        self.stderr.extend_from_slice(stderr);
        self.flush(false);
    }

    /// Send every complete line not sent yet (and the rest too at the end).
    fn flush(&mut self, all: bool) {
        let Some(tx) = &self.tx else { return };
        for (i, buf) in [&self.stdout, &self.stderr].into_iter().enumerate() {
            let end = if all {
                buf.len()
            } else {
                buf.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1)
            };
            if end <= self.sent[i] {
                continue;
            }
            let text = String::from_utf8_lossy(&buf[self.sent[i]..end]);
            for line in text.lines() {
                let line = line.trim_end_matches('\r').to_string();
                let _ = tx.send(if i == 0 {
                    OutputChunk::Stdout(line)
                } else {
                    OutputChunk::Stderr(line)
                });
            }
            self.sent[i] = end;
        }
    }

    pub(super) fn finish(mut self) -> ScriptOutput {
        self.flush(true);
        ScriptOutput {
            exit_code: self.exit.unwrap_or(0),
            stdout: String::from_utf8_lossy(&self.stdout).replace("\r\n", "\n"),
            stderr: super::clixml::decode_stderr(&String::from_utf8_lossy(&self.stderr))
                .replace("\r\n", "\n"),
        }
    }
}
