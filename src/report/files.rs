//! `--report-dir DIR`: at the end of the run, `DIR/report.json` (the whole run, see
//! [`super::record::RunRecord`]) and `DIR/junit.xml` (see [`super::junit`]). Each file is
//! written to a temporary name in the same directory, synced, then renamed over the old one, so
//! a reader never sees half a report. Files are written even when the run ended early, with what
//! is known.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::events::Event;

use super::Reporter;
use super::junit;
use super::record::Recorder;

/// Collects the run and writes the report files when it finishes.
pub struct ReportDirReporter {
    dir: PathBuf,
    recorder: Recorder,
}

impl ReportDirReporter {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ReportDirReporter {
            dir: dir.into(),
            recorder: Recorder::new(),
        }
    }
}

impl Reporter for ReportDirReporter {
    fn event(&mut self, event: &Event) {
        self.recorder.event(event);
    }

    fn finish(&mut self) -> io::Result<()> {
        let record = self.recorder.record();
        std::fs::create_dir_all(&self.dir).map_err(|e| at(&self.dir, e))?;
        // Streamed to the file: the whole document is never in memory at once.
        write_atomic_with(&self.dir.join("report.json"), |out| {
            serde_json::to_writer_pretty(&mut *out, record).map_err(io::Error::other)?;
            out.write_all(b"\n")
        })?;
        write_atomic(&self.dir.join("junit.xml"), &junit::render(record)?)
    }
}

/// Say which file an I/O error is about.
fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Write `bytes` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |out| out.write_all(bytes))
}

/// [`write_atomic`], with what `write` writes (buffered).
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut out = io::BufWriter::new(std::fs::File::create(&tmp)?);
        write(&mut out)?;
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        // Best effort: the write already failed and that error is what the user needs.
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(|e| at(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("report.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing").join("report.json");
        let err = write_atomic(&p, b"x").unwrap_err();
        assert!(err.to_string().contains("missing/report.json"), "{err}");
    }
}
