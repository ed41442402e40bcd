//! The one definition of "this package is on a file share", which salve (refusing a double hop,
//! choosing who reads it) and the lab (Windows' rule for who may read it) both apply.
//!
//! A share path is `\\server\share\...` with a server and a share name. `\\?\...` and `\\.\...`
//! are Win32 device namespaces on the local machine, not shares.

/// The share a path is on, `\\server\share`, or `None` when the path is not on a share.
pub fn share_root(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("\\\\")?;
    let mut parts = rest.splitn(3, '\\');
    let server = parts
        .next()
        .filter(|s| !s.is_empty() && *s != "?" && *s != ".")?;
    let share = parts.next().filter(|s| !s.is_empty())?;
    Some(&path[..2 + server.len() + 1 + share.len()])
}

/// Whether a package at `location` is on another machine's file share (reading it from a
/// network logon is a second hop).
pub fn on_share(location: &str) -> bool {
    share_root(location).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_path_names_a_server_and_a_share() {
        assert_eq!(
            share_root("\\\\fs01\\exchange\\CU15\\x.iso"),
            Some("\\\\fs01\\exchange")
        );
        assert_eq!(share_root("\\\\fs01\\exchange"), Some("\\\\fs01\\exchange"));
        for not in [
            "\\\\fs01",
            "\\\\fs01\\",
            "\\\\?\\C:\\x.iso",
            "\\\\.\\pipe\\x",
            "C:\\x.iso",
            "https://x/y",
            "",
        ] {
            assert!(!on_share(not), "{not}");
        }
    }
}
