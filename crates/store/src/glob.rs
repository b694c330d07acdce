//! The `*`/`?` glob used for audit name filters and for the gateway's tier
//! rules, plus its translations into SQL patterns (SQLite `GLOB`, PostgreSQL
//! `LIKE`) so a filter and a LIMIT can run inside the database.

/// Whether `text` matches `pattern`: `*` matches any run of characters
/// (including none, and including `/`), `?` exactly one character, every
/// other character itself. Iterative, O(len(pattern) × len(text)) at worst.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0usize, 0usize);
    // Position after the last `*` seen, and where in the text it resumes.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                pi += 1;
                star = Some((pi, ti));
            }
            Some(b'?') => {
                pi += 1;
                ti += char_len(t[ti]);
            }
            Some(&c) if c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    // Let the last `*` swallow one more character.
                    let st = st + char_len(t[st]);
                    star = Some((sp, st));
                    pi = sp;
                    ti = st;
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|&c| c == b'*')
}

/// Length of the UTF-8 sequence starting with `lead`.
fn char_len(lead: u8) -> usize {
    match lead {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

/// The glob as a SQLite `GLOB` pattern: same `*` and `?`; `[` made literal.
pub(crate) fn to_sqlite_glob(pattern: &str) -> String {
    pattern.replace('[', "[[]")
}

/// The glob as a PostgreSQL `LIKE ... ESCAPE '\'` pattern.
pub(crate) fn to_like(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    for c in pattern.chars() {
        match c {
            '*' => out.push('%'),
            '?' => out.push('_'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_wildcards() {
        assert!(glob_match("", ""));
        assert!(!glob_match("", "a"));
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "anything/with/slashes"));
        assert!(glob_match("**", "x"));
        assert!(glob_match("abc", "abc"));
        assert!(!glob_match("abc", "abd"));
        assert!(!glob_match("abc", "abcd"));
        assert!(!glob_match("abcd", "abc"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("fs.*", "fs.read_file"));
        assert!(glob_match("fs.*", "fs."));
        assert!(!glob_match("fs.*", "fsx"));
        assert!(glob_match("*_file", "fs.read_file"));
        assert!(glob_match("*.*.*", "a.b.c"));
        assert!(!glob_match("*.*.*", "a.b"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(glob_match("a*b*c", "abc"));
        assert!(!glob_match("a*b*c", "acb"));
        assert!(glob_match("*a", "aaaa"));
        assert!(glob_match("a*a*a", "aaa"));
        assert!(!glob_match("a*a*a", "aa"));
        assert!(glob_match("?*", "x"));
        assert!(!glob_match("?*", ""));
        assert!(glob_match("*?", "xy"));
    }

    #[test]
    fn no_other_specials() {
        assert!(glob_match("[a]", "[a]"));
        assert!(!glob_match("[a]", "a"));
        assert!(glob_match("100%", "100%"));
        assert!(glob_match("a_b", "a_b"));
        assert!(!glob_match("a_b", "axb"));
        assert!(glob_match("a\\*", "a\\xyz"));
    }

    #[test]
    fn question_mark_is_one_character_not_one_byte() {
        assert!(glob_match("caf?", "café"));
        assert!(glob_match("?", "€"));
        assert!(!glob_match("??", "€"));
        assert!(glob_match("*é", "cafébé"));
        assert!(glob_match("日*語", "日本語"));
        assert!(!glob_match("*x", "ééé"));
    }

    #[test]
    fn pathological_patterns_are_fast() {
        let text = "a".repeat(10_000);
        let pattern = format!("{}b", "*a".repeat(50));
        let start = std::time::Instant::now();
        assert!(!glob_match(&pattern, &text));
        assert!(glob_match(&"*a".repeat(50), &text));
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn sql_translations() {
        assert_eq!(to_sqlite_glob("a[b]*?"), "a[[]b]*?");
        assert_eq!(to_like("a_b%c\\d*e?"), "a\\_b\\%c\\\\d%e_");
    }
}
