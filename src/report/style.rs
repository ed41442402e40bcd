//! Colours for human output. Styling is decided once per reporter (terminal, `NO_COLOR`,
//! `CLICOLOR`) and forced on or off, so rendering is deterministic: tests render with colour off.

use console::Style;

use crate::events::{HostOutcome, TaskStatus};

/// The styles human reporters use; every method returns plain text when colour is off.
#[derive(Debug, Clone)]
pub struct Palette {
    enabled: bool,
}

impl Palette {
    /// Colour on or off, as given.
    pub fn new(enabled: bool) -> Self {
        Palette { enabled }
    }

    /// No colour at all (files, snapshots, `render_recap`).
    pub fn plain() -> Self {
        Palette::new(false)
    }

    /// Colour when stdout is a terminal and neither `NO_COLOR` nor `CLICOLOR=0` is set.
    pub fn for_stdout() -> Self {
        Palette::new(std::env::var_os("NO_COLOR").is_none() && console::colors_enabled())
    }

    fn paint(&self, style: Style, text: &str) -> String {
        style.force_styling(self.enabled).apply_to(text).to_string()
    }

    pub fn bold(&self, text: &str) -> String {
        self.paint(Style::new().bold(), text)
    }

    pub fn dim(&self, text: &str) -> String {
        self.paint(Style::new().dim(), text)
    }

    pub fn warn(&self, text: &str) -> String {
        self.paint(Style::new().yellow().bold(), text)
    }

    pub fn error(&self, text: &str) -> String {
        self.paint(Style::new().red().bold(), text)
    }

    /// `text` in the colour Ansible users expect for a task status.
    pub fn status(&self, status: TaskStatus, text: &str) -> String {
        let style = match status {
            TaskStatus::Ok => Style::new().green(),
            TaskStatus::Changed => Style::new().yellow(),
            TaskStatus::Failed | TaskStatus::Unreachable => Style::new().red().bold(),
            TaskStatus::Skipped => Style::new().cyan(),
            TaskStatus::Ignored => Style::new().red(),
            TaskStatus::Interrupted => Style::new().magenta().bold(),
        };
        self.paint(style, text)
    }

    /// `text` in the colour of a host's final outcome.
    pub fn outcome(&self, outcome: HostOutcome, text: &str) -> String {
        let style = match outcome {
            HostOutcome::Ok => Style::new().green(),
            HostOutcome::Failed | HostOutcome::Unreachable => Style::new().red().bold(),
            HostOutcome::Interrupted => Style::new().magenta().bold(),
            HostOutcome::NotRun | HostOutcome::Drifted => Style::new().yellow(),
        };
        self.paint(style, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_palette_adds_no_escapes() {
        let p = Palette::plain();
        assert_eq!(p.status(TaskStatus::Failed, "failed"), "failed");
        assert_eq!(p.bold("x"), "x");
    }

    #[test]
    fn enabled_palette_styles() {
        let p = Palette::new(true);
        assert!(p.status(TaskStatus::Failed, "failed").contains("\u{1b}["));
    }
}
