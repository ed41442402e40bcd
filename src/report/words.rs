//! Small words the human reporters share: counts with their noun and durations, formatted
//! the same way in progress lines, plain lines and the recap.

/// `1 host`, `2 hosts`, `2 batches`.
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else if noun.ends_with('h') {
        format!("{n} {noun}es")
    } else {
        format!("{n} {noun}s")
    }
}

/// A duration for humans: `0.4s`, `12.0s`, `3m04s`, `1h02m`.
pub fn duration(ms: u64) -> String {
    let secs = ms / 1000;
    if secs < 60 {
        format!("{}.{}s", secs, (ms % 1000) / 100)
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration(0), "0.0s");
        assert_eq!(duration(1_250), "1.2s");
        assert_eq!(duration(64_000), "1m04s");
        assert_eq!(duration(3_720_000), "1h02m");
    }
}
