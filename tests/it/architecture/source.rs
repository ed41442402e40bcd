//! Rust source reduced to what the architecture checks need: comments and literals blanked out
//! (newlines kept, so lines still count right) and split into identifiers and punctuation for
//! the import check; comments and test code cut, literals kept, for the module-name check.
//!
//! This is not a Rust lexer; it knows just enough (nested block comments, raw strings, byte
//! strings, char literals versus lifetimes) that a path inside a comment, a doc comment or a
//! string is never mistaken for an import.

/// One identifier (`crate`, `queue`) or punctuation mark (`::`, `{`, `,`), with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub line: usize,
}

/// `src` with every comment, string, byte string, raw string and char literal replaced by
/// spaces; newlines are kept.
pub fn strip(src: &str) -> String {
    blank_out(src, Literals::Blank)
}

/// `src` with its comments replaced by spaces and its literals kept as written: for checks that
/// look for literals (a module named in a string). Character positions match [`strip`]'s.
pub fn strip_comments(src: &str) -> String {
    blank_out(src, Literals::Keep)
}

/// `text` (from [`strip_comments`]) without its `#[cfg(test)]` items, and the names of the
/// test modules kept in their own files (`#[cfg(test)] mod tests;`). Braces inside literals do
/// not count: items are found on the [`strip`]ped form, whose positions are the same.
pub fn without_test_code(src: &str) -> (String, Vec<String>) {
    let kept: Vec<char> = strip_comments(src).chars().collect();
    let bare: Vec<char> = strip(src).chars().collect();
    let marker: Vec<char> = "#[cfg(test)]".chars().collect();
    let (mut out, mut test_modules) = (String::new(), Vec::new());
    let mut i = 0;
    while i < bare.len() {
        if !bare[i..].starts_with(&marker) {
            out.push(kept[i]);
            i += 1;
            continue;
        }
        let mut j = i + marker.len();
        while j < bare.len() && bare[j] != '{' && bare[j] != ';' {
            j += 1;
        }
        if bare.get(j) == Some(&';') {
            let item: String = bare[i + marker.len()..j].iter().collect();
            if let Some(name) = item.trim().strip_prefix("mod ") {
                test_modules.push(name.trim().to_string());
            }
            i = j + 1;
            continue;
        }
        let mut depth = 0;
        while j < bare.len() {
            match bare[j] {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            j += 1;
            if depth == 0 {
                break;
            }
        }
        i = j;
    }
    (out, test_modules)
}

/// What [`blank_out`] does with a literal.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Literals {
    Blank,
    Keep,
}

fn blank_out(src: &str, literals: Literals) -> String {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < chars.len() {
        let (end, is_comment) = match chars[i] {
            '/' if chars.get(i + 1) == Some(&'/') => (line_end(&chars, i), true),
            '/' if chars.get(i + 1) == Some(&'*') => (block_comment_end(&chars, i), true),
            '"' => (string_end(&chars, i + 1), false),
            '\'' => (char_literal_end(&chars, i).unwrap_or(i + 1), false),
            c if is_ident_start(c) => {
                let word_end = ident_end(&chars, i);
                let word: String = chars[i..word_end].iter().collect();
                match literal_after_prefix(&word, &chars, word_end) {
                    Some(end) => (end, false),
                    None => {
                        out.push_str(&word);
                        i = word_end;
                        continue;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
                continue;
            }
        };
        if is_comment || literals == Literals::Blank {
            blank(&chars[i..end], &mut out);
        } else {
            out.extend(&chars[i..end]);
        }
        i = end;
    }
    out
}

/// The identifiers and punctuation of already stripped source (numbers are skipped).
pub fn tokens(stripped: &str) -> Vec<Token> {
    let chars: Vec<char> = stripped.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if is_ident_start(c) || c.is_ascii_digit() {
            let end = ident_end(&chars, i);
            if !c.is_ascii_digit() {
                let text = chars[i..end].iter().collect();
                out.push(Token { text, line });
            }
            i = end;
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push(Token {
                text: "::".into(),
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                text: c.to_string(),
                line,
            });
            i += 1;
        }
    }
    out
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn ident_end(chars: &[char], start: usize) -> usize {
    let len = chars[start..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
        .count();
    start + len
}

fn line_end(chars: &[char], start: usize) -> usize {
    let len = chars[start..].iter().take_while(|c| **c != '\n').count();
    start + len
}

/// Block comments nest in Rust: `/* a /* b */ c */` is one comment.
fn block_comment_end(chars: &[char], start: usize) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i < chars.len() {
        match (chars[i], chars.get(i + 1)) {
            ('/', Some('*')) => {
                depth += 1;
                i += 2;
            }
            ('*', Some('/')) => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    chars.len()
}

/// The end of a `"..."` literal whose body starts at `body` (escapes honoured).
fn string_end(chars: &[char], body: usize) -> usize {
    let mut i = body;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    chars.len()
}

/// The end of a char literal starting at the quote `start`, or `None` for a lifetime (`'a`).
fn char_literal_end(chars: &[char], start: usize) -> Option<usize> {
    match (chars.get(start + 1), chars.get(start + 2)) {
        (Some('\\'), _) => {
            let len = chars[start + 2..]
                .iter()
                .take_while(|c| **c != '\'')
                .count();
            Some(start + 3 + len)
        }
        (Some(_), Some('\'')) => Some(start + 3),
        _ => None,
    }
}

/// If `word` is a literal prefix (`b"..."`, `b'x'`, `r"..."`, `r#"..."#`, `br"..."`, `c"..."`)
/// followed by its literal at `at`, the end of that literal.
fn literal_after_prefix(word: &str, chars: &[char], at: usize) -> Option<usize> {
    let next = chars.get(at).copied();
    match (word, next) {
        ("b" | "c", Some('"')) => Some(string_end(chars, at + 1)),
        ("b", Some('\'')) => char_literal_end(chars, at),
        ("r" | "br" | "cr", Some('"' | '#')) => raw_string_end(chars, at),
        _ => None,
    }
}

/// The end of a raw string whose `#`s (possibly none) and opening quote start at `at`.
fn raw_string_end(chars: &[char], at: usize) -> Option<usize> {
    let hashes = chars[at..].iter().take_while(|c| **c == '#').count();
    if chars.get(at + hashes) != Some(&'"') {
        return None; // `r#ident`, a raw identifier
    }
    let mut i = at + hashes + 1;
    while i < chars.len() {
        let closes = chars[i] == '"'
            && chars[i + 1..]
                .iter()
                .take(hashes)
                .filter(|c| **c == '#')
                .count()
                == hashes;
        if closes {
            return Some(i + 1 + hashes);
        }
        i += 1;
    }
    Some(chars.len())
}

fn blank(span: &[char], out: &mut String) {
    out.extend(span.iter().map(|c| if *c == '\n' { '\n' } else { ' ' }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(src: &str) -> Vec<String> {
        tokens(&strip(src)).into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn comments_and_doc_comments_are_blanked() {
        let src = "//! see crate::a\n/// crate::b\nuse x; // crate::c\n/* crate::d /* nested */ crate::e */ y";
        assert_eq!(words(src), ["use", "x", ";", "y"]);
    }

    #[test]
    fn strings_of_every_kind_are_blanked() {
        let src = r###"a("crate::a \" crate::b", b"crate::c", r#"crate::d " "#, br"crate::e", 'x', b'"', '\'')"###;
        assert_eq!(words(src), ["a", "(", ",", ",", ",", ",", ",", ",", ")"]);
    }

    #[test]
    fn lifetimes_are_not_char_literals() {
        assert_eq!(
            words("fn f<'a>(x: &'a str) -> crate::T"),
            [
                "fn", "f", "<", "a", ">", "(", "x", ":", "&", "a", "str", ")", "-", ">", "crate",
                "::", "T"
            ]
        );
    }

    #[test]
    fn test_code_is_cut_and_literals_kept() {
        let (code, tests) = without_test_code(
            "fn a(m: &str) -> bool { m == \"reboot\" } // \"debug\" =>\n\
             const S: &str = \"{\";\n\
             #[cfg(test)]\nmod t { fn b() { let _ = '\"'; \"exchange_update\" == x; } }\n\
             #[cfg(test)]\nmod tests;\n",
        );
        assert!(code.contains("m == \"reboot\""), "{code}");
        assert!(!code.contains("debug"), "{code}");
        assert!(!code.contains("exchange_update"), "{code}");
        assert!(code.contains("const S: &str = \"{\";"), "{code}");
        assert_eq!(tests, ["tests"]);
    }

    #[test]
    fn lines_survive_stripping() {
        let toks = tokens(&strip("/* one\ntwo */\n\"three\nfour\"\nfive"));
        assert_eq!(
            toks,
            [Token {
                text: "five".into(),
                line: 5
            }]
        );
    }
}
