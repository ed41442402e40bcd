//! Diagnostics for bad input: every problem found in a playbook, inventory or scenario file is a
//! [`Diagnostic`] naming the file, line, column and field path, with a hint where one helps.
//!
//! Loaders collect *all* diagnostics of a file before giving up ([`Diagnostics`]), so a user fixes
//! everything in one round. Rendering shows the offending source line with a caret, like a
//! compiler does.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A position in an input file (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Location {
    #[serde(serialize_with = "serialize_path")]
    pub file: Arc<PathBuf>,
    pub line: usize,
    pub column: usize,
}

fn serialize_path<S: serde::Serializer>(p: &Arc<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&p.display())
}

impl Location {
    pub fn new(file: &Arc<PathBuf>, line: usize, column: usize) -> Self {
        Self {
            file: Arc::clone(file),
            line,
            column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One problem with user input.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// Where the problem is; `None` only when the file itself could not be read.
    pub location: Option<Location>,
    /// The file, for problems without a precise location.
    pub file: PathBuf,
    /// Dotted field path, e.g. `plays[0].tasks[2].powershell.timeout`.
    pub field: String,
    /// What is wrong, as a lowercase fragment.
    pub message: String,
    /// What to do about it, e.g. "did you mean `serial`?".
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn at(location: Location, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: location.file.as_ref().clone(),
            location: Some(location),
            field: field.into(),
            message: message.into(),
            hint: None,
        }
    }

    pub fn in_file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            location: None,
            file: file.to_path_buf(),
            field: String::new(),
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Render with the source line and a caret under the column, when the file can be read.
    pub fn render(&self) -> String {
        self.render_as("error")
    }

    /// Like [`Diagnostic::render`] for a problem that does not stop the run.
    pub fn render_warning(&self) -> String {
        self.render_as("warning")
    }

    fn render_as(&self, level: &str) -> String {
        let mut out = String::new();
        let place = match &self.location {
            Some(loc) => loc.to_string(),
            None => self.file.display().to_string(),
        };
        out.push_str(&format!("{level}: {place}: "));
        if !self.field.is_empty() {
            out.push_str(&format!("{}: ", self.field));
        }
        out.push_str(&self.message);
        out.push('\n');
        if let Some(loc) = &self.location
            && let Ok(text) = std::fs::read_to_string(loc.file.as_ref())
            && let Some(line) = text.lines().nth(loc.line.saturating_sub(1))
        {
            let gutter = loc.line.to_string().len();
            out.push_str(&format!("{:gutter$} |\n", ""));
            out.push_str(&format!("{} | {}\n", loc.line, line));
            let pad: String = line
                .chars()
                .take(loc.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            out.push_str(&format!("{:gutter$} | {pad}^\n", ""));
        }
        if let Some(hint) = &self.hint {
            out.push_str(&format!("  = help: {hint}\n"));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(loc) => write!(f, "{loc}")?,
            None => write!(f, "{}", self.file.display())?,
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

/// All problems found in one load; an error when non-empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    /// `Ok(value)` when nothing was reported, else every diagnostic sorted by position.
    pub fn into_result<T>(mut self, value: T) -> Result<T, Diagnostics> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            self.0
                .sort_by(|a, b| (&a.file, &a.location).cmp(&(&b.file, &b.location)));
            Err(self)
        }
    }

    /// All diagnostics rendered, followed by a count line.
    pub fn render(&self) -> String {
        let mut out: String = self.0.iter().map(Diagnostic::render).collect();
        let n = self.0.len();
        out.push_str(&format!(
            "{n} error{} found; nothing was run\n",
            if n == 1 { "" } else { "s" }
        ));
        out
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The closest candidate to `word` by edit distance, for "did you mean" hints.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("serail", ["serial", "forks", "hosts"]).as_deref(),
            Some("did you mean `serial`?")
        );
        assert_eq!(did_you_mean("zzz", ["serial", "forks"]), None);
    }

    #[test]
    fn renders_caret_under_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yml");
        std::fs::write(&path, "- hosts: all\n  serail: 2\n").unwrap();
        let file = Arc::new(path);
        let d = Diagnostic::at(
            Location::new(&file, 2, 3),
            "plays[0]",
            "unknown key `serail`",
        )
        .with_hint("did you mean `serial`?");
        let text = d.render();
        assert!(text.contains("2 |   serail: 2\n  |   ^\n"), "{text}");
        assert!(text.contains("help: did you mean `serial`?"));
    }
}
