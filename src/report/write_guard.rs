//! A writer that remembers its first I/O error instead of returning it from every event:
//! reporters keep consuming events (they must never stall the runner), stop writing after a
//! failure (a closed pipe), and report the error once, from `finish`.

use std::io::{self, Write};

pub struct Guarded<W: Write> {
    inner: W,
    error: Option<io::Error>,
}

impl<W: Write> Guarded<W> {
    pub fn new(inner: W) -> Self {
        Guarded { inner, error: None }
    }

    /// Run `f` on the writer unless an earlier write failed; keep the first error.
    pub fn with(&mut self, f: impl FnOnce(&mut W) -> io::Result<()>) {
        if self.error.is_none()
            && let Err(e) = f(&mut self.inner)
        {
            self.error = Some(e);
        }
    }

    /// Write `text` and a newline.
    pub fn line(&mut self, text: &str) {
        self.with(|w| writeln!(w, "{text}"));
    }

    pub fn flush(&mut self) {
        self.with(|w| w.flush());
    }

    /// Flush, then hand back the first error seen, if any.
    pub fn finish(&mut self) -> io::Result<()> {
        self.flush();
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Broken(usize);
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            self.0 += 1;
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "closed"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn keeps_first_error_and_stops_writing() {
        let mut g = Guarded::new(Broken(0));
        g.line("a");
        g.line("b");
        assert_eq!(g.finish().unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(g.into_inner().0, 1);
    }
}
