//! YAML playbooks → [`crate::model::Playbook`].
//!
//! A playbook is a list of plays (and `import_playbook` entries). A play holds `name`, `hosts`
//! (a host pattern), `vars`, `serial`, `rolling`, `max_fail_percentage`, `forks`, `tasks`,
//! `rescue`, `handlers` and the Ansible keys `gather_facts`, `any_errors_fatal`,
//! `ignore_unreachable`, `become` and `become_user`. An entry of `tasks` is a task, a `block`
//! (with `rescue` and `always`), an `import_tasks` or an `include_tasks`. A task holds `name`,
//! exactly one module key (see [`crate::modules::names`], Ansible's names included through
//! [`crate::modules::resolve`]) and the task keywords listed in `task.rs`.
//!
//! Besides shapes and types, the loader checks what can be known before connecting: module
//! arguments ([`crate::modules::validate_args`]), that every template and expression compiles,
//! that every `notify` names a handler of the play, that the host pattern matches the inventory,
//! and that every variable a template reads is defined somewhere: inventory variables of the
//! play's hosts, play `vars`, extra variables, names registered or set with `set_fact` by an
//! earlier task, `item` inside a loop, or a magic variable ([`MAGIC_VARS`]).
//!
//! One loader walks the file (and the files it imports) and collects every problem, each at
//! its own file's line and column; each file here reads one part:
//! `play.rs` (a play's keys, hosts and vars), `batches.rs` (how a play's hosts are batched),
//! `task_list.rs` (a list of tasks: the one entry point for tasks, handlers and rescue),
//! `blocks.rs` (`block`/`rescue`/`always`), `task_files.rs` (`import_tasks`, `include_tasks`,
//! `import_playbook`), `task.rs` (one task's keywords), `module_call.rs` (its module
//! key and arguments), `handlers.rs` (handler names and `notify`), `conditions.rs` (`when`,
//! `until`, loops), `variables.rs` (which variables a template may read) and `duration.rs`.

mod batches;
mod blocks;
mod conditions;
mod duration;
mod handlers;
mod module_call;
mod play;
mod task;
mod task_files;
mod task_list;
mod variables;

pub use duration::parse_duration;
pub use variables::MAGIC_VARS;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use marked_yaml::Node;
use marked_yaml::types::MarkedScalarNode;

use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{Inventory, Playbook, Vars};

use super::yaml::{Doc, Mapping, TopLevel, child, sha256_hex};

/// Load a playbook, checking it against the inventory it will run on and the extra variables.
pub fn load(
    path: &Path,
    inventory: &Inventory,
    extra_vars: &Vars,
) -> Result<Playbook, Diagnostics> {
    let doc = Arc::new(Doc::read(path, TopLevel::Sequence).map_err(|d| Diagnostics(vec![d]))?);
    let mut known = variables::always_known();
    known.extend(extra_vars.keys().cloned());
    let mut loader = Loader {
        doc: Arc::clone(&doc),
        inventory,
        diags: Diagnostics::default(),
        known,
        opened: vec![path.to_path_buf()],
        read: Vec::new(),
        mentions_hostvars: mentions_hostvars(&doc.bytes),
        playbook_dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    let plays = loader.plays(&doc);
    let Loader {
        diags,
        read,
        mentions_hostvars,
        ..
    } = loader;
    diags.into_result(Playbook {
        path: path.to_path_buf(),
        digest: digest(&doc.bytes, &read),
        plays,
        mentions_hostvars,
    })
}

/// Does a file's text mention `hostvars` anywhere (a template, a `when`, a lookup's string,
/// even a comment)? Deliberately broad: a false "yes" only keeps facts longer.
fn mentions_hostvars(bytes: &[u8]) -> bool {
    bytes.windows(HOSTVARS.len()).any(|w| w == HOSTVARS)
}

const HOSTVARS: &[u8] = b"hostvars";

/// The playbook's digest: its file's SHA-256 alone, or, when it reads other files (task files,
/// imported playbooks), the SHA-256 of its own and each other file's path and digest, so a
/// signed plan notices a change in any of them.
fn digest(main: &[u8], read: &[(PathBuf, String)]) -> String {
    let own = sha256_hex(main);
    if read.is_empty() {
        return own;
    }
    let mut all = own;
    for (path, d) in read {
        all.push_str(&format!("\n{} {d}", path.display()));
    }
    sha256_hex(all.as_bytes())
}

/// Walks one playbook (and the files it imports), collecting every problem instead of
/// stopping at the first.
struct Loader<'a> {
    /// The file being read now: the playbook, or a task file or playbook it imports.
    doc: Arc<Doc>,
    inventory: &'a Inventory,
    diags: Diagnostics,
    /// Variables defined so far: magic, extra, and everything registered or set by earlier tasks.
    known: BTreeSet<String>,
    /// Files being read, outermost first (an import of one of them would never end).
    opened: Vec<PathBuf>,
    /// Every other file read, with its digest, in reading order.
    read: Vec<(PathBuf, String)>,
    /// Whether any file read so far mentions `hostvars` ([`Playbook::mentions_hostvars`]).
    mentions_hostvars: bool,
    /// The playbook's directory: task files are found next to the file naming them, or here.
    playbook_dir: PathBuf,
}

impl Loader<'_> {
    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// The mapping's `name`, if it has one (empty after reporting a name that is not a string).
    fn name(&mut self, keyed: &Keyed<'_, '_>) -> Option<String> {
        let node = keyed.value("name")?;
        let name = self
            .doc
            .string(node, &keyed.field("name"))
            .map_err(|d| self.push(d))
            .unwrap_or_default();
        Some(name.to_string())
    }
}

/// A play's or a task's mapping, read through its concept's one list of keys: a key not on the
/// list is unknown to the loader, and reading one that is not on it is a bug (caught in tests).
#[derive(Clone, Copy)]
struct Keyed<'n, 'f> {
    map: Mapping<'n>,
    /// The mapping's field path, e.g. `plays[0].tasks[2]`.
    field: &'f str,
    keys: &'static [&'static str],
}

impl<'n> Keyed<'n, '_> {
    /// The value of `key`, if the mapping has it.
    fn value(&self, key: &str) -> Option<&'n Node> {
        debug_assert!(self.keys.contains(&key), "`{key}` is not in its key list");
        self.map
            .entries()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v)
    }

    /// The field path of `key`, e.g. `plays[0].tasks[2].when`.
    fn field(&self, key: &str) -> String {
        child(self.field, key)
    }

    /// The entries whose keys are not on the list, in file order.
    fn unlisted(&self) -> impl Iterator<Item = (&'n MarkedScalarNode, &'n Node)> + use<'n, '_> {
        self.map
            .entries()
            .filter(|(k, _)| !self.keys.contains(&k.as_str()))
    }
}
