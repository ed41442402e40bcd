//! Where tracing logs go: stderr, and while progress bars are on screen, through their
//! [`MultiProgress::suspend`] so a log line is printed above the bars instead of through them.
//! The progress reporter registers its bars here for as long as it lives ([`LogRoute`]).

use std::io::{self, Write};
use std::sync::{Mutex, PoisonError};

use indicatif::MultiProgress;
use tracing_subscriber::fmt::MakeWriter;

/// The bars currently on screen, if any.
static ACTIVE: Mutex<Option<MultiProgress>> = Mutex::new(None);

fn active() -> Option<MultiProgress> {
    // A poisoned lock only means a panic elsewhere while swapping an Option; the value is fine.
    ACTIVE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

fn set_active(bars: Option<MultiProgress>) {
    *ACTIVE.lock().unwrap_or_else(PoisonError::into_inner) = bars;
}

/// While alive, log lines are printed around `bars`; dropping it sends them straight to stderr.
#[derive(Debug)]
pub struct LogRoute(());

impl LogRoute {
    pub fn through(bars: &MultiProgress) -> Self {
        set_active(Some(bars.clone()));
        LogRoute(())
    }
}

impl Drop for LogRoute {
    fn drop(&mut self) {
        set_active(None);
    }
}

/// A [`MakeWriter`] for `tracing_subscriber` that writes to stderr, around the progress bars.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine(Vec::new())
    }
}

/// One log record, buffered and written in one piece when dropped (tracing drops the writer at
/// the end of each record), so the bars are hidden and redrawn once per record.
#[derive(Debug)]
pub struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let write = || {
            let mut err = io::stderr().lock();
            // Nowhere left to report a failure to write a log line; dropping it is the only option.
            let _ = err.write_all(&self.0).and_then(|()| err.flush());
        };
        match active() {
            Some(bars) => bars.suspend(write),
            None => write(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::ProgressDrawTarget;

    #[test]
    fn route_is_set_while_alive() {
        let bars = MultiProgress::with_draw_target(ProgressDrawTarget::hidden());
        {
            let _route = LogRoute::through(&bars);
            assert!(active().is_some());
            let mut line = LogWriter.make_writer();
            line.write_all(b"").unwrap();
        }
        assert!(active().is_none());
    }
}
