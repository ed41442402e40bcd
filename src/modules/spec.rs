//! What a module *is*, declared once next to it (`pub const SPEC: ModuleSpec` in each module's
//! file) and collected in one table ([`super::table`]). Everything that treats modules
//! differently reads this: argument validation (`salve check`), dispatch, the apply gate of an
//! approved plan (read-only modules pass), the intent log (modules that change hosts record a
//! durable intent first), and the plan (estimates, action texts, reboot flags, which steps
//! count, undo pairs). A new module fills in every field, or it does not compile.

use super::Module;
use super::args::Validator;
use crate::exchange::path::{Step, StepKind};

/// Everything salve knows about one module.
pub struct ModuleSpec {
    /// The task key (`- exchange_update: {...}`).
    pub name: &'static str,
    pub module: &'static dyn Module,
    /// Checks the arguments as written, before anything runs.
    pub validate: Validator,
    pub effect: Effect,
    /// Its step restarts the host (the plan flags it).
    pub reboots: bool,
    /// How long a planned step is booked for in a maintenance window.
    pub estimate: Estimate,
    /// What the plan says a step of it does.
    pub action: Action,
    /// Why the plan says it is needed: the check's own words, or a fixed text where the check's
    /// words change from run to run (the plan keeps only what the same fleet always says, so the
    /// same inputs give the same plan).
    pub reason: Reason,
    /// Whether check mode can say what it would change.
    pub foresight: Foresight,
    /// How its tasks become steps of a plan.
    pub counting: Counting,
    /// What its results give later readers.
    pub provides: Provides,
}

impl ModuleSpec {
    /// A module that only reads (facts, checks, templates, waits): it changes nothing, so it
    /// never restarts a host, check mode sees all it would do, and a plan counts it plainly
    /// (30 s) in the rare case it reports a change.
    pub const fn read_only(
        name: &'static str,
        module: &'static dyn Module,
        validate: Validator,
    ) -> ModuleSpec {
        ModuleSpec {
            name,
            module,
            validate,
            effect: Effect::ReadOnly,
            reboots: false,
            estimate: Estimate::Seconds(30),
            action: Action::TaskName,
            reason: Reason::Check,
            foresight: Foresight::Predicts,
            counting: Counting::Plain,
            provides: Provides::Nothing,
        }
    }
}

/// What a module's `apply` does to a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Changes nothing: it runs under an approved plan whether or not the plan lists it, and
    /// records no intent.
    ReadOnly,
    /// Installs, restarts, drains, mitigates or runs a user script: the runner records a
    /// durable intent before each call, an approved plan must list the step, and plans mark it
    /// as not to be repeated blindly.
    ChangesHosts,
}

/// How long a planned step takes, for window booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Estimate {
    Seconds(u64),
    /// An update: a cumulative update (Setup.exe) takes longer than anything else (an .msp).
    ByUpdateKind {
        cu: u64,
        other: u64,
    },
}

impl Estimate {
    /// Seconds for a step, given the update-path step it installs, if any.
    pub fn seconds(self, update: Option<&Step>) -> u64 {
        match self {
            Estimate::Seconds(s) => s,
            Estimate::ByUpdateKind { cu, other } => match update {
                Some(step) if step.kind == StepKind::Cu => cu,
                _ => other,
            },
        }
    }
}

/// The plan's action text for a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The task's name.
    TaskName,
    /// This text.
    Text(&'static str),
    /// `install KB5003435 (to build 15.2.792.15)`, from the update-path step.
    InstallStep,
}

impl Action {
    /// The text for a step of task `task`, installing `update` where there is one.
    pub fn text(self, task: &str, update: Option<&Step>) -> String {
        match (self, update) {
            (Action::TaskName, _) | (Action::InstallStep, None) => task.to_string(),
            (Action::Text(text), _) => text.to_string(),
            (Action::InstallStep, Some(step)) => {
                let kb = step.kb.map(|kb| kb.to_string());
                let what = match kb {
                    Some(kb) if kb != step.label => format!("{} ({kb})", step.label),
                    _ => step.label.clone(),
                };
                match step.target {
                    Some(target) => format!("install {what} (to build {target})"),
                    None => format!("install {what}"),
                }
            }
        }
    }
}

/// Why the plan says a step is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// What the module's check said (for an update-path step: the path's reason).
    Check,
    /// This text.
    Text(&'static str),
}

/// Whether check mode can predict a module's change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Foresight {
    /// Its check reports what it would change.
    Predicts,
    /// Its check skips it ("not run in check mode"); the plan counts that skip as a step.
    Unpredictable,
}

/// How a module's tasks become steps of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// Every task that would change something is a step.
    Plain,
    /// The update work: in check mode every update task sees the same facts, so the n-th
    /// would-install task stands for the n-th step of the assessed path, and tasks past the
    /// path's end are no steps.
    UpdatePath,
    /// A restart counts only after a planned update step (once per step), or before the first
    /// one when a restart is already pending.
    AfterUpdate,
    /// One state opens, another undoes it; see [`Pair`].
    Paired(Pair),
}

/// A module whose call with `state: <undo_state>` undoes a planned earlier call. Check mode
/// cannot see a state the plan itself creates, so the plan adds the undo step itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    /// The `state:` argument of the undoing call.
    pub undo_state: &'static str,
    pub kind: PairKind,
    /// The plan's reason for the undo step.
    pub reason: &'static str,
}

/// When an undo step is planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairKind {
    /// Around the update work (enter / leave maintenance): the undo is planned after a planned
    /// opening; an opening left without its undo and without update work planned (planning
    /// stopped before the work) is dropped, as it would take the server out of service for
    /// nothing.
    Bracket,
    /// A stop-gap until the update work fixes the server (a mitigation): removed only when
    /// update work is planned too.
    StopGap,
}

/// What a module's results give later readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provides {
    Nothing,
    /// The `exchange` facts: the plan's facts and risks, and the apply gate's drift check.
    ExchangeFacts,
    /// Host variables named by its argument keys (later tasks may read them).
    Variables,
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use serde_json::json;

    use super::*;
    use crate::modules::{names, table};

    /// Every module's source declares a spec, and every spec is in the table, once, under the
    /// name of its file (or folder).
    #[test]
    fn every_module_declares_its_spec_in_the_table() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/modules");
        let mut declared: Vec<String> = rust_files(&dir)
            .into_iter()
            .filter(|f| {
                std::fs::read_to_string(f)
                    .unwrap()
                    .lines()
                    .any(|l| l.starts_with("pub const SPEC: ModuleSpec"))
            })
            .map(|f| {
                let f = f.strip_prefix(&dir).unwrap();
                let first = f.iter().next().unwrap().to_string_lossy().to_string();
                first.trim_end_matches(".rs").to_string()
            })
            .collect();
        declared.sort();
        let mut registered = names();
        registered.sort();
        assert_eq!(declared, registered);
        let mut unique = registered.clone();
        unique.dedup();
        assert_eq!(unique, registered, "a module is in the table twice");
    }

    /// The properties of one module fit together.
    #[test]
    fn specs_are_consistent() {
        for spec in table() {
            let name = spec.name;
            if spec.effect == Effect::ReadOnly {
                assert!(!spec.reboots, "{name}: a read-only module cannot restart");
                assert_eq!(spec.counting, Counting::Plain, "{name}");
                assert_eq!(spec.foresight, Foresight::Predicts, "{name}");
            }
            if let Counting::Paired(pair) = spec.counting {
                let state = json!({ "state": pair.undo_state });
                assert!(
                    (spec.validate)(&state).is_ok(),
                    "{name}: `state: {}` is not accepted",
                    pair.undo_state
                );
            }
            if spec.counting == Counting::UpdatePath {
                assert_eq!(spec.action, Action::InstallStep, "{name}");
            }
        }
        let count = |f: &dyn Fn(&ModuleSpec) -> bool| table().iter().filter(|s| f(s)).count();
        assert_eq!(count(&|s| s.counting == Counting::UpdatePath), 1);
        assert_eq!(count(&|s| s.provides == Provides::ExchangeFacts), 1);
    }

    /// Nothing outside `src/modules/` treats a module by its name: no `== "reboot"`, no
    /// `"exchange_update" =>` arm, no `contains(&"...")`, no second list of module names. Such
    /// code is how a module gets forgotten; it reads [`ModuleSpec`] instead. Test code is
    /// exempt (tests name modules to build tasks), and so is the lab, which simulates the far
    /// side where scripts and executables share names with modules.
    #[test]
    fn no_other_list_of_module_names_exists() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let names = names();
        let literal = regex::Regex::new(r#""([a-z_]+)""#).unwrap();
        let array = regex::Regex::new(r"\[[^\[\]]*\]").unwrap();
        let mut found = Vec::new();
        let mut skip: Vec<PathBuf> = vec![src.join("modules"), src.join("lab")];
        let mut files = rust_files(&src);
        files.sort();
        for file in files {
            if skip.iter().any(|s| file.starts_with(s)) {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            let (code, test_modules) = without_tests_and_comments(&text);
            skip.extend(
                test_modules
                    .iter()
                    .map(|m| file.with_file_name(format!("{m}.rs"))),
            );
            let shown = file.strip_prefix(&src).unwrap().display().to_string();
            for m in literal.captures_iter(&code) {
                let (whole, name) = (m.get(0).unwrap(), &m[1]);
                if !names.contains(&name) {
                    continue;
                }
                let before = code[..whole.start()].trim_end();
                let after = code[whole.end()..].trim_start();
                let tested = [
                    "==",
                    "!=",
                    "|",
                    "contains(&",
                    "contains(",
                    "matches!(",
                    "eq(",
                ]
                .iter()
                .any(|t| before.ends_with(t))
                    || ["==", "!=", "=>", "|", "if "]
                        .iter()
                        .any(|t| after.starts_with(t));
                if tested {
                    found.push(format!("{shown}: tests for module \"{name}\""));
                }
            }
            for list in array.find_iter(&code) {
                let listed: Vec<&str> = literal
                    .captures_iter(list.as_str())
                    .filter_map(|m| names.iter().find(|n| **n == &m[1]).copied())
                    .collect();
                if listed.len() >= 2 {
                    found.push(format!("{shown}: lists modules {listed:?}"));
                }
            }
        }
        assert!(
            found.is_empty(),
            "module properties belong in their ModuleSpec (src/modules/spec.rs):\n{}",
            found.join("\n")
        );
    }

    /// The scanner sees through comments and test modules, and catches each kind of test.
    #[test]
    fn the_scanner_finds_name_tests_and_skips_tests_and_comments() {
        let (code, tests) = without_tests_and_comments(
            "fn a(m: &str) -> bool { m == \"reboot\" } // \"debug\" =>\n\
             const S: &str = \"{\";\n\
             #[cfg(test)]\nmod t { fn b() { let _ = '\"'; \"exchange_update\" == x; } }\n\
             #[cfg(test)]\nmod tests;\n",
        );
        assert!(code.contains("m == \"reboot\""), "{code}");
        assert!(!code.contains("debug"), "{code}");
        assert!(!code.contains("exchange_update"), "{code}");
        assert!(code.contains("const S"), "{code}");
        assert_eq!(tests, ["tests"]);
    }

    fn rust_files(dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.extend(rust_files(&path));
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
        files
    }

    /// `text` without comments and without `#[cfg(test)]` items, and the names of the test
    /// modules kept in their own files (`#[cfg(test)] mod tests;`). String and character
    /// literals are kept, and braces inside them do not count.
    fn without_tests_and_comments(text: &str) -> (String, Vec<String>) {
        let bytes = text.as_bytes();
        // Pass 1: drop comments, and mark which bytes of what is left are inside literals.
        let (mut code, mut literal) = (Vec::new(), Vec::new());
        let mut i = 0;
        while i < bytes.len() {
            let rest = &bytes[i..];
            if rest.starts_with(b"//") {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            let end = if rest[0] == b'"' {
                let mut j = 1;
                while rest[j] != b'"' {
                    j += if rest[j] == b'\\' { 2 } else { 1 };
                }
                j + 1
            } else if rest.starts_with(b"'\\") {
                2 + rest[2..].iter().position(|b| *b == b'\'').unwrap() + 1
            } else if rest[0] == b'\'' && rest.get(2) == Some(&b'\'') {
                3
            } else {
                code.push(rest[0]);
                literal.push(false);
                i += 1;
                continue;
            };
            code.extend_from_slice(&rest[..end]);
            literal.extend(std::iter::repeat_n(true, end));
            i += end;
        }
        // Pass 2: drop `#[cfg(test)]` items.
        let marker = b"#[cfg(test)]";
        let (mut out, mut test_modules) = (Vec::new(), Vec::new());
        let mut i = 0;
        while i < code.len() {
            if literal[i] || !code[i..].starts_with(marker) {
                out.push(code[i]);
                i += 1;
                continue;
            }
            let mut j = i + marker.len();
            while literal[j] || (code[j] != b'{' && code[j] != b';') {
                j += 1;
            }
            if code[j] == b';' {
                let item = String::from_utf8_lossy(&code[i + marker.len()..j]).to_string();
                if let Some(name) = item.trim().strip_prefix("mod ") {
                    test_modules.push(name.trim().to_string());
                }
                i = j + 1;
                continue;
            }
            let mut depth = 0;
            loop {
                if !literal[j] {
                    match code[j] {
                        b'{' => depth += 1,
                        b'}' => depth -= 1,
                        _ => {}
                    }
                }
                j += 1;
                if depth == 0 {
                    break;
                }
            }
            i = j;
        }
        (String::from_utf8(out).unwrap(), test_modules)
    }
}
