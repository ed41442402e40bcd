//! Host patterns, as in Ansible: names, groups, globs, `~regex`, `@file` lists, combined with
//! `:` (or `,`) union, `:&` intersection and `:!` exclusion.

use std::path::PathBuf;

/// How a term combines with the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternOp {
    Union,
    Intersect,
    Exclude,
}

/// What one term names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternTarget {
    /// A host name, group name or glob (`ex*`, `dag-?`); `all` and `*` mean every host.
    Name(String),
    /// `~regex` matched against host names.
    Regex(String),
    /// `@path`: one host name per line.
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternTerm {
    pub op: PatternOp,
    pub target: PatternTarget,
}

/// A parsed host pattern. Unions apply first, then intersections, then exclusions, whatever
/// their order in the text (Ansible's rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    pub source: String,
    pub terms: Vec<PatternTerm>,
}
