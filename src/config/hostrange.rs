//! Ansible host ranges: `ex[01:12].contoso.local` names twelve hosts. A range is
//! `[begin:end]` or `[begin:end:step]`, numeric (zero padding kept when `begin` has a leading
//! zero, and then `begin` and `end` must have the same width) or single letters (`[a:f]`).
//! Several ranges in one name multiply out, left to right.

/// Why a host range cannot be expanded; the message names the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad host range `{range}`: {reason}")]
pub struct RangeError {
    pub range: String,
    pub reason: String,
}

/// Upper bound on the hosts one name may expand to, so a typo cannot exhaust memory.
const MAX_HOSTS: usize = 100_000;

/// Expand a host name with ranges into every name it stands for (itself when it has none).
pub fn expand(name: &str) -> Result<Vec<String>, RangeError> {
    let Some(open) = name.find('[') else {
        return Ok(vec![name.to_string()]);
    };
    let bad = |reason: &str| RangeError {
        range: name.to_string(),
        reason: reason.to_string(),
    };
    let close = name[open..]
        .find(']')
        .map(|i| open + i)
        .ok_or_else(|| bad("missing `]`"))?;
    let (head, spec, tail) = (&name[..open], &name[open + 1..close], &name[close + 1..]);
    let parts: Vec<&str> = spec.split(':').collect();
    let (begin, end, step) = match parts.as_slice() {
        [b, e] => (*b, *e, "1"),
        [b, e, s] => (*b, *e, *s),
        _ => return Err(bad("expected `[begin:end]` or `[begin:end:step]`")),
    };
    let step: usize = step
        .parse()
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| bad("the step must be a whole number above 0"))?;
    let middles = if begin.chars().all(|c| c.is_ascii_digit())
        && end.chars().all(|c| c.is_ascii_digit())
        && !end.is_empty()
    {
        numeric(begin, end, step).map_err(&bad)?
    } else {
        alphabetic(begin, end, step).map_err(&bad)?
    };
    let tails = expand(tail)?;
    if middles.len().saturating_mul(tails.len()) > MAX_HOSTS {
        return Err(bad(&format!("expands to more than {MAX_HOSTS} hosts")));
    }
    Ok(middles
        .iter()
        .flat_map(|m| tails.iter().map(move |t| format!("{head}{m}{t}")))
        .collect())
}

fn numeric(begin: &str, end: &str, step: usize) -> Result<Vec<String>, &'static str> {
    let begin_text = if begin.is_empty() { "0" } else { begin };
    let width = if begin_text.len() > 1 && begin_text.starts_with('0') {
        if begin_text.len() != end.len() {
            return Err("zero-padded begin and end must have the same number of digits");
        }
        begin_text.len()
    } else {
        0
    };
    let (b, e): (u64, u64) = match (begin_text.parse(), end.parse()) {
        (Ok(b), Ok(e)) => (b, e),
        _ => return Err("numbers are too large"),
    };
    if b > e {
        return Err("the beginning is after the end");
    }
    if (e - b) / step as u64 >= MAX_HOSTS as u64 {
        return Err("expands to too many hosts");
    }
    Ok((b..=e)
        .step_by(step)
        .map(|n| format!("{n:0width$}"))
        .collect())
}

fn alphabetic(begin: &str, end: &str, step: usize) -> Result<Vec<String>, &'static str> {
    let letter = |s: &str| {
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii_alphabetic() => Some(c),
            _ => None,
        }
    };
    let (Some(b), Some(e)) = (letter(begin), letter(end)) else {
        return Err("expected numbers (`[01:12]`) or single letters (`[a:f]`)");
    };
    if b.is_ascii_lowercase() != e.is_ascii_lowercase() {
        return Err("begin and end letters must have the same case");
    }
    if b > e {
        return Err("the beginning is after the end");
    }
    Ok((b..=e).step_by(step).map(String::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_ranges_keep_padding() {
        assert_eq!(
            expand("ex[01:03].contoso.local").unwrap(),
            [
                "ex01.contoso.local",
                "ex02.contoso.local",
                "ex03.contoso.local"
            ]
        );
        assert_eq!(expand("ex[8:10]").unwrap(), ["ex8", "ex9", "ex10"]);
        assert_eq!(expand("ex[01:10:4]").unwrap(), ["ex01", "ex05", "ex09"]);
        assert_eq!(expand("ex[:2]").unwrap(), ["ex0", "ex1", "ex2"]);
    }

    #[test]
    fn letters_and_several_ranges_multiply() {
        assert_eq!(expand("db-[a:c]").unwrap(), ["db-a", "db-b", "db-c"]);
        assert_eq!(expand("[a:b][1:2]").unwrap(), ["a1", "a2", "b1", "b2"]);
        assert_eq!(expand("plain").unwrap(), ["plain"]);
    }

    #[test]
    fn bad_ranges_say_why() {
        for (input, why) in [
            ("ex[01:]", "expected numbers"),
            ("ex[3:1]", "after the end"),
            ("ex[01:100]", "same number of digits"),
            ("ex[1:5:0]", "step"),
            ("ex[1:5", "missing `]`"),
            ("ex[1]", "expected `[begin:end]`"),
            ("ex[a:C]", "same case"),
            ("ex[0:99999999]", "too many"),
        ] {
            let e = expand(input).unwrap_err();
            assert!(e.to_string().contains(why), "{input}: {e}");
        }
    }
}
