//! Rendering an error with its causes, for messages that must fit on one line (logs, the
//! journal, a queue item's message). The command line prints the multi-line "Caused by:" form
//! itself ([`crate::cli`]).

/// An error and its causes on one line: `outer: cause: root cause`.
pub fn one_line(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
