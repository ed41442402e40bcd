//! Durations in a playbook (`delay`, `timeout`): a bare number of seconds or a number with
//! `s`, `m` or `h`.

use std::time::Duration;

use marked_yaml::Node;

use super::Loader;

impl Loader<'_> {
    /// The duration at `node`, or `None` after reporting it is not one.
    pub(super) fn duration(&mut self, node: &Node, field: &str) -> Option<Duration> {
        let parsed = node.as_scalar().and_then(|s| parse_duration(s.as_str()));
        if parsed.is_none() {
            self.push(self.doc.wrong_type(
                node,
                field,
                "a duration like 90, \"90s\", \"30m\" or \"2h\"",
            ));
        }
        parsed
    }
}

/// `90`, `"90s"`, `"30m"`, `"2h"` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&text[..i], text[i..].trim()),
        None => (text, "s"),
    };
    let n: u64 = digits.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("2d"), None);
        assert_eq!(parse_duration("h"), None);
    }
}
