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
        let stderr = text(std::mem::take(&mut self.stderr));
        ScriptOutput {
            exit_code: self.exit.unwrap_or(0),
            stdout: unix_newlines(text(std::mem::take(&mut self.stdout))),
            stderr: unix_newlines(super::clixml::decode_stderr(&stderr)),
        }
    }
}

/// The bytes as text, in their own buffer when they are UTF-8 (the usual case), else with
/// U+FFFD for each invalid sequence.
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned())
}

/// `CRLF` as `LF`; text without a `CRLF` is kept as it is, not copied.
fn unix_newlines(text: String) -> String {
    if text.contains("\r\n") {
        text.replace("\r\n", "\n")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_gets_unix_newlines_and_invalid_utf8_is_replaced() {
        let mut s = Streams::new(None);
        s.push(b"one\r\ntwo\r\n", b"");
        s.push(b"th\xffree", b"bad\r\n");
        s.exit = Some(3);
        let out = s.finish();
        assert_eq!(out.stdout, "one\ntwo\nth\u{fffd}ree");
        assert_eq!(out.stderr, "bad\n");
        assert_eq!(out.exit_code, 3);
    }

    #[test]
    fn lines_are_streamed_as_they_complete() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut s = Streams::new(Some(tx));
        s.push(b"a\r\nb", b"");
        s.push(b"c\n", b"e\n");
        let out = s.finish();
        let mut lines = Vec::new();
        while let Ok(chunk) = rx.try_recv() {
            lines.push(match chunk {
                OutputChunk::Stdout(l) => format!("out:{l}"),
                OutputChunk::Stderr(l) => format!("err:{l}"),
            });
        }
        assert_eq!(lines, ["out:a", "out:bc", "err:e"]);
        assert_eq!(out.stdout, "a\nbc\n");
    }
}
