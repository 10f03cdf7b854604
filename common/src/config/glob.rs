//! `match_user` globs: `*`, `?` and `[abc]` / `[a-z]` / `[!abc]` classes over a whole user name.
//!
//! A glob is translated into an anchored regular expression once, at load time, with every
//! literal character escaped, so no text in a glob can reach the regex engine as syntax.

use regex::Regex;

/// Why a glob was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum GlobError {
    Empty,
    Unclosed { at: usize },
    EmptyClass { at: usize },
    BackwardRange { at: usize, from: char, to: char },
    TooComplex,
}

impl std::fmt::Display for GlobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GlobError::Empty => f.write_str("the pattern is empty"),
            GlobError::Unclosed { at } => write!(
                f,
                "the '[' at character {at} is never closed; a class looks like [abc], [a-z] or [!abc]"
            ),
            GlobError::EmptyClass { at } => write!(
                f,
                "the class at character {at} is empty; a class looks like [abc], [a-z] or [!abc]"
            ),
            GlobError::BackwardRange { at, from, to } => write!(
                f,
                "the range {from:?}-{to:?} in the class at character {at} runs backwards"
            ),
            GlobError::TooComplex => f.write_str("the pattern is too long or complex"),
        }
    }
}

/// Compiles `glob` into a regex that must match the whole name.
pub(super) fn compile(glob: &str) -> Result<Regex, GlobError> {
    if glob.is_empty() {
        return Err(GlobError::Empty);
    }
    let chars: Vec<char> = glob.chars().collect();
    let mut out = String::from("^");
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => {
                let (class, next) = class(&chars, i)?;
                out.push_str(&class);
                i = next;
                continue;
            }
            literal => push_escaped(&mut out, literal),
        }
        i += 1;
    }
    out.push('$');
    // Every piece above is well-formed, so only the regex size limit can refuse it.
    Regex::new(&out).map_err(|_| GlobError::TooComplex)
}

/// The class starting at `chars[open] == '['`: its regex and the index after its `]`.
fn class(chars: &[char], open: usize) -> Result<(String, usize), GlobError> {
    let at = open + 1;
    let mut i = open + 1;
    let mut out = String::from("[");
    if matches!(chars.get(i), Some('!') | Some('^')) {
        out.push('^');
        i += 1;
    }
    let body_start = i;
    loop {
        match chars.get(i) {
            None => return Err(GlobError::Unclosed { at }),
            Some(']') if i == body_start => return Err(GlobError::EmptyClass { at }),
            Some(']') => break,
            Some(&from) => {
                // `a-z` is a range; a `-` just before the closing `]` is a literal dash.
                let range_end = match (chars.get(i + 1), chars.get(i + 2)) {
                    (Some('-'), Some(&to)) if to != ']' => Some(to),
                    _ => None,
                };
                if let Some(to) = range_end {
                    if to < from {
                        return Err(GlobError::BackwardRange { at, from, to });
                    }
                    push_escaped(&mut out, from);
                    out.push('-');
                    push_escaped(&mut out, to);
                    i += 3;
                } else {
                    push_escaped(&mut out, from);
                    i += 1;
                }
            }
        }
    }
    out.push(']');
    Ok((out, i + 1))
}

/// A character as a regex escape that means exactly that character, inside or outside a class.
fn push_escaped(out: &mut String, c: char) {
    out.push_str(&format!("\\x{{{:x}}}", u32::from(c)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(glob: &str, name: &str) -> bool {
        compile(glob).unwrap().is_match(name)
    }

    #[test]
    fn star_and_question_mark_match_within_the_whole_name() {
        assert!(matches("adm-*", "adm-"));
        assert!(matches("adm-*", "adm-alice"));
        assert!(!matches("adm-*", "xadm-alice"));
        assert!(matches("svc-??", "svc-01"));
        assert!(!matches("svc-??", "svc-1"));
        assert!(matches("*", "anyone"));
    }

    #[test]
    fn classes_ranges_and_negation() {
        assert!(matches("user[0-9]", "user7"));
        assert!(!matches("user[0-9]", "userx"));
        assert!(matches("[abc]x", "bx"));
        assert!(!matches("[!abc]x", "bx"));
        assert!(matches("[!abc]x", "dx"));
        assert!(matches("[a-]x", "-x"));
    }

    #[test]
    fn regex_syntax_in_a_glob_is_literal() {
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "axb"));
        assert!(matches("a+(b)|c$", "a+(b)|c$"));
        assert!(matches("DOM\\bob", "DOM\\bob"));
        assert!(matches("[.^\\]]", ".]"));
    }

    #[test]
    fn malformed_globs_are_refused() {
        assert_eq!(compile("").unwrap_err(), GlobError::Empty);
        assert_eq!(
            compile("adm-[0-9").unwrap_err(),
            GlobError::Unclosed { at: 5 }
        );
        assert_eq!(compile("a[]").unwrap_err(), GlobError::EmptyClass { at: 2 });
        assert_eq!(compile("[!]").unwrap_err(), GlobError::EmptyClass { at: 1 });
        assert_eq!(
            compile("[z-a]").unwrap_err(),
            GlobError::BackwardRange {
                at: 1,
                from: 'z',
                to: 'a'
            }
        );
    }
}
