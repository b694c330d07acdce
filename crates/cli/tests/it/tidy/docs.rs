//! The two written promises tidy holds the tree to: every source file opens
//! with a `//!` paragraph saying what it owns, and every file or folder that
//! ARCHITECTURE.md names in backticks exists.
//!
//! ARCHITECTURE.md names files the way a reader meets them: a crate's bullet
//! starts with `crates/NAME`, and the files under it are named from the crate's
//! `src/` (`config/tiers.rs`), or from a folder the same bullet or paragraph
//! named before (`state/` … `servers.rs`); other names are from the repository
//! root (`tests/interop/`). So a name is looked up, in this order, under the
//! folders named earlier in its bullet or paragraph, under the crate's `src/`,
//! `tests/` and own folder, and under the root.

use std::path::{Path, PathBuf};

/// Files whose first lines (after blank lines and attributes) are not a `//!`
/// paragraph, with what they open with instead.
pub(crate) fn files_without_doc_paragraph(files: &[(PathBuf, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (path, text) in files {
        let mut lines = text.lines().peekable();
        let mut depth = 0i32; // inside a multi-line attribute
        while let Some(line) = lines.peek() {
            let t = line.trim();
            if depth > 0 || t.is_empty() || t.starts_with("#[") || t.starts_with("#![") {
                depth += brackets(t);
                lines.next();
            } else {
                break;
            }
        }
        let doc: Vec<&str> = lines
            .take_while(|l| l.trim_start().starts_with("//!"))
            .collect();
        let says_something = doc
            .iter()
            .any(|l| !l.trim_start().trim_start_matches("//!").trim().is_empty());
        if !says_something {
            let first = text
                .lines()
                .find(|l| {
                    let t = l.trim();
                    !t.is_empty() && !t.starts_with('#')
                })
                .unwrap_or("(nothing)");
            out.push(format!(
                "{} does not open with a `//!` paragraph saying what it owns and why; it opens with: {first}",
                path.display()
            ));
        }
    }
    out
}

/// `[` minus `]` on a line (strings in attributes rarely hold brackets).
fn brackets(line: &str) -> i32 {
    line.chars()
        .map(|c| match c {
            '[' => 1,
            ']' => -1,
            _ => 0,
        })
        .sum()
}

/// One backticked file or folder name ARCHITECTURE.md uses that is not in the
/// tree: a message naming the line, the name, and where it was looked for.
pub(crate) fn missing_architecture_names(root: &Path, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_fence = false;
    let mut krate: Option<PathBuf> = None;
    let mut folders: Vec<PathBuf> = Vec::new();
    let mut after_blank = true;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            folders.clear();
            if trimmed.starts_with('#') {
                krate = None;
            }
            after_blank = true;
            continue;
        }
        let top_level = !line.starts_with(' ');
        if trimmed.starts_with("- ") {
            folders.clear();
            if top_level {
                krate = None; // a top-level bullet: a new crate, if it names one
            }
        } else if top_level && after_blank {
            krate = None; // a new paragraph, outside any bullet
        }
        after_blank = false;
        for name in backticked(line) {
            if let Some(c) = crate_of(&name) {
                krate = Some(PathBuf::from(c));
            }
            if !(name.ends_with(".rs") || name.ends_with('/')) {
                continue;
            }
            let mut bases: Vec<PathBuf> = folders.iter().rev().cloned().collect();
            if let Some(k) = &krate {
                bases.extend([k.join("src"), k.join("tests"), k.clone()]);
            }
            bases.push(PathBuf::new());
            let mut candidates: Vec<PathBuf> = Vec::new();
            for candidate in bases.iter().map(|b| b.join(&name)) {
                if !candidates.contains(&candidate) {
                    candidates.push(candidate);
                }
            }
            match candidates.iter().find(|c| root.join(c).exists()) {
                Some(found) if name.ends_with('/') => folders.push(found.clone()),
                Some(_) => {}
                None => out.push(format!(
                    "ARCHITECTURE.md:{}: `{name}`{} is not in the tree; looked for {}",
                    n + 1,
                    krate
                        .as_ref()
                        .map(|k| format!(" (under `{}`)", k.display()))
                        .unwrap_or_default(),
                    candidates
                        .iter()
                        .map(|c| c.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
    }
    out
}

/// The backticked spans of a line that look like file or folder names.
fn backticked(line: &str) -> Vec<String> {
    line.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
        })
        .map(str::to_owned)
        .collect()
}

/// `crates/NAME` for a name inside a crate's folder.
fn crate_of(name: &str) -> Option<String> {
    let rest = name.strip_prefix("crates/")?;
    let krate = rest.split('/').next().filter(|k| !k.is_empty())?;
    Some(format!("crates/{krate}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(path: &str, text: &str) -> Vec<String> {
        files_without_doc_paragraph(&[(PathBuf::from(path), text.to_owned())])
    }

    #[test]
    fn tidy_doc_paragraph_may_follow_attributes_and_blank_lines() {
        assert!(one("a.rs", "//! Owns a.\nfn a() {}\n").is_empty());
        assert!(one("b.rs", "\n#![allow(\n    dead_code,\n)]\n\n//! Owns b.\n").is_empty());
    }

    #[test]
    fn tidy_a_file_without_doc_paragraph_is_named() {
        let found = one("c.rs", "// just a comment\n//! late\n");
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("c.rs") && found[0].contains("// just a comment"));
        assert_eq!(
            one("d.rs", "//!\n//!\nuse x;\n").len(),
            1,
            "an empty paragraph"
        );
        assert_eq!(one("e.rs", "/// item doc\nfn e() {}\n").len(), 1);
    }

    #[test]
    fn tidy_architecture_names_resolve_like_a_reader_would() {
        let root = crate::common::TempDir::new("tidy-arch");
        for dir in ["crates/gw/src/state", "crates/gw/tests", "tests/interop"] {
            std::fs::create_dir_all(root.0.join(dir)).expect("dir");
        }
        for file in [
            "crates/gw/src/lib.rs",
            "crates/gw/src/state/servers.rs",
            "crates/gw/tests/t.rs",
        ] {
            std::fs::write(root.0.join(file), "//! x\n").expect("file");
        }
        let doc = "# A\n\n- `crates/gw` — the gateway; `lib.rs` and `/admin/`.\n  - `state/` holds: `servers.rs`,\n    and `sessions.rs`.\n  - `servers.rs` again, outside `state/`'s bullet.\n\n```\n`ghost.rs` in a code block\n```\n\nTests: `t.rs` is not here, `tests/interop/` and `crates/gw/tests/t.rs` are.\n";
        let missing = missing_architecture_names(&root.0, doc);
        assert_eq!(missing.len(), 3, "{missing:#?}");
        assert!(missing[0].starts_with("ARCHITECTURE.md:5: `sessions.rs` (under `crates/gw`)"));
        assert!(missing[1].starts_with("ARCHITECTURE.md:6: `servers.rs`"));
        assert!(missing[2].starts_with("ARCHITECTURE.md:12: `t.rs`"));
    }
}
