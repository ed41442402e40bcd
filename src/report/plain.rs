//! Line-oriented human output, for pipes, CI logs and `--no-progress`: a header per run, play
//! and batch, one line per task result per host, streamed output prefixed with its host
//! (`| ` stdout, `! ` stderr), and the recap. Lines depend only on the events, so the output
//! can be snapshot-tested.

use std::io::{self, Write};

use crate::events::Event;

use super::Reporter;
use super::style::Palette;
use super::text::{Detail, Lines, output_lines};
use super::write_guard::Guarded;

/// Writes one line per event worth telling, to any writer.
pub struct PlainReporter<W: Write> {
    out: Guarded<W>,
    lines: Lines,
}

impl<W: Write> PlainReporter<W> {
    pub fn new(out: W, palette: Palette) -> Self {
        PlainReporter {
            out: Guarded::new(out),
            lines: Lines::new(palette, Detail::All),
        }
    }

    /// The writer back (tests read what was rendered).
    pub fn into_inner(self) -> W {
        self.out.into_inner()
    }
}

impl<W: Write> Reporter for PlainReporter<W> {
    fn event(&mut self, event: &Event) {
        if let Event::TaskOutput {
            host, stream, text, ..
        } = event
        {
            for line in output_lines(host, *stream, text) {
                self.out.line(&line);
            }
        }
        if let Some(text) = self.lines.render(event) {
            self.out.line(&text);
        }
        self.out.flush();
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.finish()
    }
}
