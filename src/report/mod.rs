//! Reporters: the only code that writes run output. The runner sends [`Event`]s down a channel;
//! [`spawn_reporters`] hands each one, in order, to every [`Reporter`] on a blocking thread, so a
//! slow terminal or pipe can never hold the runner up.
//!
//! Which reporters a run gets ([`build`]): with `--json`, [`JsonLinesReporter`] on stdout (the
//! event schema is documented in [`json`]); otherwise a human reporter on stdout:
//! [`ProgressReporter`] (bars) on a terminal, or [`PlainReporter`] (one line per result) when
//! stdout is not a terminal, `CI` is set, or with `--no-progress`. `--report-dir DIR` adds
//! [`ReportDirReporter`] (`report.json`, `junit.xml`). Human output honours `NO_COLOR`.
//! tracing logs go to stderr through [`log_writer`], around the bars when they are shown.

pub mod files;
pub mod json;
pub mod junit;
mod log;
pub mod plain;
pub mod progress;
pub mod recap;
pub mod record;
mod style;
mod text;
mod words;
mod write_guard;

use std::io::{self, IsTerminal};
use std::path::PathBuf;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;

use crate::events::Event;

pub use files::ReportDirReporter;
pub use json::JsonLinesReporter;
pub use log::LogWriter;
pub use plain::PlainReporter;
pub use progress::ProgressReporter;
pub use recap::render_recap;
pub use style::Palette;

/// Something that consumes run events. Reporters never fail an event: a write error is kept and
/// returned once, from [`Reporter::finish`], so the run itself is never disturbed by its output.
pub trait Reporter {
    fn event(&mut self, event: &Event);
    /// The run is over (the channel closed): flush, write files, report the first I/O error.
    fn finish(&mut self) -> io::Result<()>;
}

/// Several reporters fed the same events, in the order given.
#[derive(Default)]
pub struct Reporters(Vec<Box<dyn Reporter + Send>>);

impl Reporters {
    pub fn new(reporters: Vec<Box<dyn Reporter + Send>>) -> Self {
        Reporters(reporters)
    }
}

impl Reporter for Reporters {
    fn event(&mut self, event: &Event) {
        for r in &mut self.0 {
            r.event(event);
        }
    }

    /// Finishes every reporter, even after one fails; returns the first error.
    fn finish(&mut self) -> io::Result<()> {
        let mut first = Ok(());
        for r in &mut self.0 {
            let done = r.finish();
            if first.is_ok() {
                first = done;
            }
        }
        first
    }
}

/// Feed every event from `rx` to `reporters` on a blocking thread until the channel closes (all
/// senders dropped), then finish them. Awaiting the handle waits for the output to be complete.
pub fn spawn_reporters(
    mut rx: UnboundedReceiver<Event>,
    reporters: Vec<Box<dyn Reporter + Send>>,
) -> JoinHandle<io::Result<()>> {
    tokio::task::spawn_blocking(move || {
        let mut all = Reporters::new(reporters);
        while let Some(event) = rx.blocking_recv() {
            all.event(&event);
        }
        all.finish()
    })
}

/// A reporter whose failure is a warning, not the run's failure (the journal: losing the
/// record must be said, but it does not undo what the run did on the hosts).
pub struct BestEffort<R> {
    what: &'static str,
    inner: R,
}

impl<R: Reporter> BestEffort<R> {
    pub fn new(what: &'static str, inner: R) -> Self {
        BestEffort { what, inner }
    }
}

impl<R: Reporter> Reporter for BestEffort<R> {
    fn event(&mut self, event: &Event) {
        self.inner.event(event);
    }

    fn finish(&mut self) -> io::Result<()> {
        if let Err(e) = self.inner.finish() {
            eprintln!("warning: the {} was not fully written: {e}", self.what);
        }
        Ok(())
    }
}

/// The output options of a run, from the command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--json`: JSON lines on stdout instead of human output.
    pub json: bool,
    /// `--no-progress`: plain lines even on a terminal.
    pub no_progress: bool,
    /// `--report-dir`: write `report.json` and `junit.xml` there at the end.
    pub report_dir: Option<PathBuf>,
}

/// What goes to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Json,
    Progress,
    Plain,
}

impl Mode {
    /// Decide from the flags and the environment (terminal, `CI`).
    pub fn detect(options: &Options) -> Mode {
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0");
        Mode::choose(options, io::stdout().is_terminal(), ci)
    }

    /// Bars only for a person watching a terminal; JSON always wins.
    pub fn choose(options: &Options, stdout_is_terminal: bool, ci: bool) -> Mode {
        if options.json {
            Mode::Json
        } else if options.no_progress || ci || !stdout_is_terminal {
            Mode::Plain
        } else {
            Mode::Progress
        }
    }
}

/// The reporters for a run with these options, writing to stdout and the report directory.
pub fn build(options: &Options) -> Vec<Box<dyn Reporter + Send>> {
    let mut reporters: Vec<Box<dyn Reporter + Send>> = vec![match Mode::detect(options) {
        Mode::Json => Box::new(JsonLinesReporter::new(io::stdout())),
        Mode::Progress => Box::new(ProgressReporter::stdout()),
        Mode::Plain => Box::new(PlainReporter::new(io::stdout(), Palette::for_stdout())),
    }];
    if let Some(dir) = &options.report_dir {
        reporters.push(Box::new(ReportDirReporter::new(dir.clone())));
    }
    reporters
}

/// Where tracing logs go: stderr, through the progress display when one is active so log lines
/// never tear the bars.
pub fn log_writer() -> LogWriter {
    LogWriter
}

/// Colour on stderr unless `NO_COLOR` is set or stderr is not a terminal.
pub fn stderr_color() -> bool {
    std::env::var_os("NO_COLOR").is_none() && io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn mode_choice() {
        let json = Options {
            json: true,
            ..Default::default()
        };
        let plain = Options {
            no_progress: true,
            ..Default::default()
        };
        let default = Options::default();
        assert_eq!(Mode::choose(&json, true, false), Mode::Json);
        assert_eq!(Mode::choose(&json, false, true), Mode::Json);
        assert_eq!(Mode::choose(&plain, true, false), Mode::Plain);
        assert_eq!(Mode::choose(&default, true, true), Mode::Plain);
        assert_eq!(Mode::choose(&default, false, false), Mode::Plain);
        assert_eq!(Mode::choose(&default, true, false), Mode::Progress);
    }

    /// Records event tags; fails its finish when told to.
    struct Tags(Arc<Mutex<Vec<String>>>, bool);

    impl Reporter for Tags {
        fn event(&mut self, event: &Event) {
            let tag = serde_json::to_value(event).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string();
            self.0.lock().unwrap().push(tag);
        }
        fn finish(&mut self) -> io::Result<()> {
            self.0.lock().unwrap().push("finish".into());
            if self.1 {
                Err(io::Error::other("boom"))
            } else {
                Ok(())
            }
        }
    }

    #[tokio::test]
    async fn spawned_reporters_see_every_event_then_finish() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let a = Arc::new(Mutex::new(Vec::new()));
        let b = Arc::new(Mutex::new(Vec::new()));
        let handle = spawn_reporters(
            rx,
            vec![
                Box::new(Tags(a.clone(), true)),
                Box::new(Tags(b.clone(), false)),
            ],
        );
        tx.send(Event::Warning {
            message: "one".into(),
        })
        .unwrap();
        tx.send(Event::PlayFinished {
            play_index: 0,
            play: "p".into(),
            stopped: None,
        })
        .unwrap();
        drop(tx);
        let err = handle.await.unwrap().unwrap_err();
        assert_eq!(err.to_string(), "boom");
        for seen in [a, b] {
            assert_eq!(
                *seen.lock().unwrap(),
                ["warning", "play_finished", "finish"]
            );
        }
    }
}
