//! Text from outside the process on its way to a terminal: names a client
//! chose (a tool name in the audit log), labels, plan names, and what
//! upstreams say about themselves (server names, error text). A newline
//! there forges a table row, an escape sequence drives the terminal, and
//! bidirectional or zero-width format characters reorder or hide text; all
//! of them are written as Rust-style escapes (`\n`, `\u{1b}`), so a
//! human-readable table shows one line per record and nothing a terminal
//! acts on. Backslashes are left as they are: the text stays readable, and
//! `--json` output (never passed through here) is the exact record.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether a terminal could act on `c` or hide or reorder text with it.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// `s` with every control or format character escaped; borrowed when there is none.
pub(crate) fn safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for s in ["fx__echo", "résumé ✓", "a\\nb", "file:///tmp/x?y=1#z", ""] {
            assert!(matches!(safe(s), Cow::Borrowed(b) if b == s), "{s}");
        }
    }

    #[test]
    fn controls_and_format_characters_are_escaped() {
        assert_eq!(safe("a\nb\r\tc"), "a\\nb\\r\\tc");
        assert_eq!(safe("\u{1b}[2J\u{7}"), "\\u{1b}[2J\\u{7}");
        assert_eq!(safe("x\u{9b}31m"), "x\\u{9b}31m");
        assert_eq!(safe("\u{7f}"), "\\u{7f}");
        assert_eq!(safe("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(
            safe("a\u{200b}b\u{2028}c\u{feff}"),
            "a\\u{200b}b\\u{2028}c\\u{feff}"
        );
        for s in ["a\nb", "\u{1b}]0;title\u{7}", "\u{2066}x\u{2069}"] {
            assert!(!safe(s).chars().any(is_unsafe), "{s:?}");
        }
    }
}
