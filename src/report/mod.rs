//! Reporters: the only code that writes run output. They consume [`crate::events::Event`]s.

/// Where tracing logs go: stderr, through the progress display when one is active so log lines
/// never tear the bars.
pub fn log_writer() -> fn() -> std::io::Stderr {
    std::io::stderr
}

/// Colour on stderr unless `NO_COLOR` is set or stderr is not a terminal.
pub fn stderr_color() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}
