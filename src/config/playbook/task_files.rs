//! Other files a playbook reads: `import_playbook` (its plays join the playbook),
//! `import_tasks` (its tasks take the importing entry's place, with its `when`, `tags` and
//! `become`) and `include_tasks` (read now, run when reached: once, or once per `loop` item).
//!
//! Every file is read and checked when the playbook is loaded, so `salve check` reports a
//! problem inside a task file at that file's line and column. A file name is a plain path
//! (not a template), looked up next to the file that names it, then next to the playbook.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use marked_yaml::Node;

use crate::model::{Include, Play, Step, Task};
use crate::template;

use super::super::yaml::{Doc, Mapping, TopLevel, index, sha256_hex};
use super::task_list::TaskContext;
use super::variables::Scope;
use super::{Keyed, Loader};

/// The keys of an `import_playbook` entry.
const IMPORT_PLAYBOOK_KEYS: &[&str] = &["import_playbook", "name"];

impl Loader<'_> {
    /// The plays of a playbook file (the one being read), `import_playbook` entries opened up.
    pub(super) fn plays(&mut self, doc: &Doc) -> Vec<Play> {
        let mut plays = Vec::new();
        let Node::Sequence(items) = &doc.root else {
            return plays;
        };
        for (i, node) in items.iter().enumerate() {
            let field = index("plays", i);
            let imported = node
                .as_mapping()
                .is_some_and(|m| m.get_node("import_playbook").is_some());
            if !imported {
                plays.extend(self.play(node, &field));
                continue;
            }
            let Some(Node::Mapping(map)) = Some(node) else {
                continue;
            };
            let entry = Keyed {
                map: Mapping::Map(map),
                field: &field,
                keys: IMPORT_PLAYBOOK_KEYS,
            };
            self.reject_unlisted(&entry, "an `import_playbook` entry");
            let dir = doc.file.parent().map(Path::to_path_buf).unwrap_or_default();
            let Some(file) = entry.value("import_playbook") else {
                continue;
            };
            if let Some(more) = self.in_file(
                file,
                &entry.field("import_playbook"),
                &dir,
                |loader, doc| loader.plays(doc),
            ) {
                plays.extend(more);
            }
        }
        plays
    }

    /// `import_tasks`: the file's steps, loaded with the entry's `when`, `tags` and `become`
    /// added to what each of its tasks inherits.
    pub(super) fn import_tasks(
        &mut self,
        entry: &Keyed<'_, '_>,
        context: &TaskContext<'_>,
        tasks: &mut Vec<Task>,
    ) -> Vec<Step> {
        self.reject_unlisted(entry, "an `import_tasks` entry");
        let inner = self.nested_context(entry, context, true);
        let Some(file) = entry.value("import_tasks") else {
            return Vec::new();
        };
        self.in_file(
            file,
            &entry.field("import_tasks"),
            &context.dir,
            |loader, doc| {
                let field = "tasks";
                let inner = TaskContext {
                    dir: doc_dir(doc),
                    ..inner.clone()
                };
                loader.steps(Some(&doc.root), field, &inner, tasks)
            },
        )
        .unwrap_or_default()
    }

    /// `include_tasks`: a step that runs the file's tasks when reached, once or per loop item.
    pub(super) fn include_tasks(
        &mut self,
        entry: &Keyed<'_, '_>,
        context: &TaskContext<'_>,
        tasks: &mut Vec<Task>,
    ) -> Option<Step> {
        self.reject_unlisted(entry, "an `include_tasks` entry");
        let location = self.doc.loc(entry.value("include_tasks")?);
        // The include's own `when` decides whether it runs (for each item, in a loop); its
        // tasks do not repeat it.
        let known = self.known.clone();
        let mut scope = Scope {
            known: &known,
            local: context.vars.clone(),
        };
        let loop_control = self.loop_control(entry);
        let looped = entry.value("loop").is_some();
        let loop_spec = entry
            .value("loop")
            .and_then(|v| self.loop_spec(v, &entry.field("loop"), &scope));
        if looped {
            scope.local.insert(loop_control.item_name().to_string());
            scope.local.extend(loop_control.index_var.clone());
        }
        let when = entry
            .value("when")
            .map(|v| self.exprs(v, &entry.field("when"), &scope))
            .unwrap_or_default();
        let mut inner = self.nested_context(entry, context, false);
        if looped {
            inner.vars.insert(loop_control.item_name().to_string());
            inner.vars.extend(loop_control.index_var.clone());
        }
        let (file_node, file_field) = include_file(entry)?;
        let mut path = PathBuf::new();
        let body = self.in_file(file_node, &file_field, &context.dir, |loader, doc| {
            path = doc.file.as_ref().clone();
            let inner = TaskContext {
                dir: doc_dir(doc),
                ..inner.clone()
            };
            loader.steps(Some(&doc.root), "tasks", &inner, tasks)
        })?;
        let name = self
            .name(entry)
            .unwrap_or_else(|| format!("include_tasks {}", path.display()));
        Some(Step::Include(Include {
            name,
            file: path,
            when,
            loop_spec,
            loop_control,
            body,
            location,
        }))
    }

    /// Read the file a path node names (relative to `dir`, then to the playbook) and hand it
    /// to `read` as the loader's current file; `None` after reporting why it cannot be read.
    fn in_file<T>(
        &mut self,
        node: &Node,
        field: &str,
        dir: &Path,
        read: impl FnOnce(&mut Self, &Doc) -> T,
    ) -> Option<T> {
        let name = match self.doc.string(node, field) {
            Ok(n) if !template::is_template(n) => n.to_string(),
            Ok(_) => {
                self.push(
                    self.doc
                        .error(node, field, "a file name cannot be a template here")
                        .with_hint(
                            "salve reads every task file when it loads the playbook; name the file plainly and choose with `when`",
                        ),
                );
                return None;
            }
            Err(d) => {
                self.push(d);
                return None;
            }
        };
        let path = self.find(&name, dir);
        if self.opened.contains(&path) {
            self.push(
                self.doc
                    .error(
                        node,
                        field,
                        format!("`{name}` imports itself (through {})", self.opened_chain()),
                    )
                    .with_hint("remove the import that closes the circle"),
            );
            return None;
        }
        let doc = match Doc::read(&path, TopLevel::Sequence) {
            Ok(d) => Arc::new(d),
            Err(d) if !path.exists() => {
                drop(d);
                self.push(
                    self.doc
                        .error(node, field, format!("no file `{name}`"))
                        .with_hint(format!(
                            "task files are looked up in {} and then in {}",
                            dir.display(),
                            self.playbook_dir.display()
                        )),
                );
                return None;
            }
            Err(d) => {
                self.push(d);
                return None;
            }
        };
        self.read.push((path.clone(), sha256_hex(&doc.bytes)));
        self.mentions_hostvars |= super::mentions_hostvars(&doc.bytes);
        self.opened.push(path);
        let outer = std::mem::replace(&mut self.doc, Arc::clone(&doc));
        let out = read(self, &doc);
        self.doc = outer;
        self.opened.pop();
        Some(out)
    }

    /// A file name next to `dir`, else next to the playbook (else where it would be next to
    /// `dir`, for the error).
    fn find(&self, name: &str, dir: &Path) -> PathBuf {
        let near = dir.join(name);
        if near.exists() {
            return near;
        }
        let top = self.playbook_dir.join(name);
        if top.exists() { top } else { near }
    }

    fn opened_chain(&self) -> String {
        self.opened
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" → ")
    }
}

/// The path node of an `include_tasks` (`include_tasks: file.yml` or `include_tasks: {file: ..}`).
fn include_file<'n>(entry: &Keyed<'n, '_>) -> Option<(&'n Node, String)> {
    let node = entry.value("include_tasks")?;
    let field = entry.field("include_tasks");
    match node.as_mapping().and_then(|m| m.get_node("file")) {
        Some(file) => Some((file, format!("{field}.file"))),
        None => Some((node, field)),
    }
}

fn doc_dir(doc: &Doc) -> PathBuf {
    doc.file.parent().map(Path::to_path_buf).unwrap_or_default()
}
