//! An error and its causes, the one way salve renders them: on one line for events, logs and
//! reports (`headline: cause: cause`), or as the headline and a "Caused by:" list for the
//! terminal. Both the library and the CLI use it, so it sits below both.
//!
//! Some errors quote their cause in their own message, so that message reads on its own where
//! only `to_string()` is shown (a [`crate::transport::TransportError`] says what failed and
//! why in one sentence, and keeps the underlying error as its source). A cause whose text is
//! already shown is left out, so no text appears twice.

use std::error::Error;

/// The causes of `error` worth showing after its message, outermost first: each one's text,
/// leaving out those whose text the message or an earlier cause already shows.
pub fn causes(error: &dyn Error) -> Vec<String> {
    let mut shown = error.to_string();
    let mut texts = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !shown.contains(&text) {
            shown.push_str(&text);
            texts.push(text);
        }
        source = cause.source();
    }
    texts
}

/// The error and its causes on one line: `headline: cause: cause`.
pub fn one_line(error: &dyn Error) -> String {
    let mut text = error.to_string();
    for cause in causes(error) {
        text.push_str(": ");
        text.push_str(&cause);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open the journal")]
    struct Open(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("cannot reach ex01:5985: {0}; check the address")]
    struct Quoting(#[source] std::io::Error);

    fn io() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")
    }

    #[test]
    fn causes_follow_the_headline_on_one_line() {
        assert_eq!(
            one_line(&Open(io())),
            "cannot open the journal: no such file"
        );
    }

    #[test]
    fn a_cause_the_message_already_quotes_is_not_repeated() {
        let e = Quoting(io());
        assert_eq!(
            one_line(&e),
            "cannot reach ex01:5985: no such file; check the address"
        );
        assert!(causes(&e).is_empty());
    }
}
