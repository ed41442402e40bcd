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

/// Why a host pattern is not valid (or a term of it cannot be resolved).
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("bad regular expression `{regex}`: {source}")]
    Regex {
        regex: String,
        #[source]
        source: regex::Error,
    },
    #[error("bad glob `{glob}`: {source}")]
    Glob {
        glob: String,
        #[source]
        source: glob::PatternError,
    },
    #[error("`@` must be followed by a file name")]
    NoFileName,
    /// A term that is only `&` or `!`.
    #[error("`{op}` names nothing after `{op}`")]
    NothingAfter { op: char },
    #[error("empty host pattern; use `all` for every host")]
    Empty,
}

impl PatternError {
    /// `text` compiled as a `~regex` term.
    pub fn regex(text: &str) -> Result<regex::Regex, PatternError> {
        regex::Regex::new(text).map_err(|source| PatternError::Regex {
            regex: text.to_string(),
            source,
        })
    }

    /// `text` compiled as a glob.
    pub fn glob(text: &str) -> Result<glob::Pattern, PatternError> {
        glob::Pattern::new(text).map_err(|source| PatternError::Glob {
            glob: text.to_string(),
            source,
        })
    }
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

impl HostPattern {
    /// Parse a pattern. Terms are separated by `,` when the text has a comma, else by `:`
    /// (colons inside `[...]` ranges do not split). A term starting with `&` intersects, one
    /// starting with `!` excludes; `~` starts a regex and `@` a file of host names.
    pub fn parse(text: &str) -> Result<HostPattern, PatternError> {
        let mut terms = Vec::new();
        for raw in split_terms(text) {
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            let (op, rest) = if let Some(r) = raw.strip_prefix('&') {
                (PatternOp::Intersect, r)
            } else if let Some(r) = raw.strip_prefix('!') {
                (PatternOp::Exclude, r)
            } else {
                (PatternOp::Union, raw)
            };
            let target = if let Some(re) = rest.strip_prefix('~') {
                PatternError::regex(re)?;
                PatternTarget::Regex(re.to_string())
            } else if let Some(path) = rest.strip_prefix('@') {
                if path.is_empty() {
                    return Err(PatternError::NoFileName);
                }
                PatternTarget::File(PathBuf::from(path))
            } else {
                if rest.is_empty() {
                    // Only `&` or `!` leave nothing after themselves (an empty term is skipped).
                    let op = if op == PatternOp::Intersect { '&' } else { '!' };
                    return Err(PatternError::NothingAfter { op });
                }
                if rest.contains('[') || rest.contains('*') || rest.contains('?') {
                    PatternError::glob(rest)?;
                }
                PatternTarget::Name(rest.to_string())
            };
            terms.push(PatternTerm { op, target });
        }
        if terms.is_empty() {
            return Err(PatternError::Empty);
        }
        Ok(HostPattern {
            source: text.to_string(),
            terms,
        })
    }

    /// The pattern that selects every host.
    pub fn all() -> HostPattern {
        HostPattern {
            source: "all".into(),
            terms: vec![PatternTerm {
                op: PatternOp::Union,
                target: PatternTarget::Name("all".into()),
            }],
        }
    }
}

fn split_terms(text: &str) -> Vec<&str> {
    if text.contains(',') {
        return text.split(',').collect();
    }
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}
