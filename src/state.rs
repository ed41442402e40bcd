//! Where salve keeps its state on the controller: `$SALVE_STATE_DIR`, else
//! `$XDG_STATE_HOME/salve`, else `~/.local/state/salve`. The run journal
//! ([`crate::journal`]), recorded invocations and IOC evidence written with a relative
//! `evidence_dir` live there, never beside a playbook.

use std::path::PathBuf;

/// The state directory, from the environment; `None` when none of the variables is set.
pub fn dir() -> Option<PathBuf> {
    dir_from(|name| std::env::var_os(name))
}

fn dir_from(env: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    let var = |name| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("SALVE_STATE_DIR")
        .or_else(|| var("XDG_STATE_HOME").map(|d| d.join("salve")))
        .or_else(|| var("HOME").map(|home| home.join(".local/state/salve")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn state_dir_follows_the_environment_order() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        let all = env(&[
            ("SALVE_STATE_DIR", "/s"),
            ("XDG_STATE_HOME", "/x"),
            ("HOME", "/h"),
        ]);
        assert_eq!(dir_from(all).unwrap(), Path::new("/s"));
        let xdg = env(&[
            ("SALVE_STATE_DIR", ""),
            ("XDG_STATE_HOME", "/x"),
            ("HOME", "/h"),
        ]);
        assert_eq!(dir_from(xdg).unwrap(), Path::new("/x/salve"));
        let home = env(&[("HOME", "/h")]);
        assert_eq!(dir_from(home).unwrap(), Path::new("/h/.local/state/salve"));
        assert_eq!(dir_from(env(&[])), None);
    }
}
