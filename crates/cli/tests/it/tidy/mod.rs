//! Tidy: tests that read the workspace's sources instead of running them, and
//! hold the tree to ARCHITECTURE.md's promises. Module imports run one way
//! (no file imports, through any chain, a file that imports it); every source
//! file opens with a `//!` paragraph; every file ARCHITECTURE.md names exists;
//! in the gateway, `state/` imports neither `mcp` nor `http`, and `mcp/` does
//! not import `http`. Each failure lists every offender, not just the first.
//!
//! An import edge is a file using another file's module or item through a
//! `crate::`/`super::`/`self::` path or a `use` (see `modules`). Two kinds of
//! edge are how Rust modules are built, not a direction, and are left out: a
//! module reaching down into its own submodules (`mod.rs` gathering its
//! children, `lib.rs` re-exporting), and a file reaching itself (its own
//! `#[cfg(test)] mod tests`). A child using its parent's items counts, as an
//! edge to the parent's file.

mod cycles;
mod docs;
mod modules;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cycles::{Edges, circles};
use modules::{Read, Target};

/// The usual crate roots in `src`: `lib.rs`, `main.rs`, `bin/*.rs` and
/// `bin/*/main.rs`.
fn usual_roots(src: &Path) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = ["lib.rs", "main.rs"]
        .iter()
        .map(|f| src.join(f))
        .filter(|f| f.is_file())
        .collect();
    for bin in sorted_dir(&src.join("bin")) {
        if bin.extension().is_some_and(|e| e == "rs") {
            roots.push(bin);
        } else if bin.join("main.rs").is_file() {
            roots.push(bin.join("main.rs"));
        }
    }
    roots
}

fn sorted_dir(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    entries
}

/// Every `.rs` file under `dir`, recursively, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in sorted_dir(dir) {
        if entry.is_dir() {
            out.extend(rust_files(&entry));
        } else if entry.extension().is_some_and(|e| e == "rs") {
            out.push(entry);
        }
    }
    out
}

/// `path` relative to `root`, for messages.
fn shown(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The import edges between a target's files (see this module's doc for the
/// two kinds left out), with the names each uses.
fn import_edges(target: &Target) -> Edges {
    let mut edges = Edges::new();
    for used in target.resolved() {
        if used.to == used.from || used.to_module.starts_with(&used.from_module) {
            continue;
        }
        edges
            .entry((used.from, used.to))
            .or_default()
            .insert(used.name);
    }
    edges
}

fn read_disk(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Every target of the workspace, read from disk: the usual roots of each
/// crate, then each file no target reached yet (a `[[bin]]` with its own
/// `path`, like testkit's `mock_model.rs`) as the root of one more.
fn workspace_targets(root: &Path) -> Vec<Target> {
    let read: Read = &read_disk;
    let load = |r: &Path| {
        Target::load(r, read).unwrap_or_else(|e| panic!("tidy cannot read a crate: {e}"))
    };
    let mut targets = Vec::new();
    for krate in sorted_dir(&root.join("crates")) {
        let src = krate.join("src");
        let mut reached = std::collections::BTreeSet::new();
        for file in usual_roots(&src).into_iter().chain(rust_files(&src)) {
            if reached.contains(&file) {
                continue;
            }
            let target = load(&file);
            reached.extend(target.files.values().cloned());
            targets.push(target);
        }
    }
    targets
}

/// The circles of every target, written out for a person.
fn describe_circles(root: &Path, targets: &[Target]) -> Vec<String> {
    let mut out = Vec::new();
    for target in targets {
        for circle in circles(&import_edges(target)) {
            let mut text = format!(
                "a circle of {} files in {}:\n  loop: {}\n  files: {}\n  ties (file -> file: names it uses):",
                circle.files.len(),
                shown(root, &target.root),
                circle
                    .loop_path
                    .iter()
                    .map(|f| shown(root, f))
                    .collect::<Vec<_>>()
                    .join(" -> "),
                circle
                    .files
                    .iter()
                    .map(|f| shown(root, f))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            for (from, to, names) in &circle.edges {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                text.push_str(&format!(
                    "\n    {} -> {}: {}",
                    shown(root, from),
                    shown(root, to),
                    names.join(", ")
                ));
            }
            out.push(text);
        }
    }
    out
}

fn fail_with(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what} ({} found):\n\n{}\n",
        problems.len(),
        problems.join("\n\n")
    );
}

#[test]
fn tidy_no_module_imports_run_in_a_circle() {
    let root = crate::common::repo_root();
    let targets = workspace_targets(&root);
    assert!(
        targets.len() >= 7,
        "tidy found only {} crate targets under crates/: {:?}",
        targets.len(),
        targets.iter().map(|t| &t.root).collect::<Vec<_>>()
    );
    fail_with(
        "module imports that run in a circle; cut one tie of each (move the shared piece into a leaf both can stand on)",
        &describe_circles(&root, &targets),
    );
}

#[test]
fn tidy_every_source_file_opens_with_a_doc_paragraph() {
    let root = crate::common::repo_root();
    let files: Vec<(PathBuf, String)> = sorted_dir(&root.join("crates"))
        .iter()
        .flat_map(|krate| rust_files(&krate.join("src")))
        .map(|f| {
            let text = read_disk(&f).unwrap_or_default();
            (f.strip_prefix(&root).unwrap_or(&f).to_path_buf(), text)
        })
        .collect();
    assert!(
        files.len() > 50,
        "tidy found only {} source files",
        files.len()
    );
    fail_with(
        "source files without a `//!` paragraph at the top",
        &docs::files_without_doc_paragraph(&files),
    );
}

#[test]
fn tidy_architecture_md_names_only_files_that_exist() {
    let root = crate::common::repo_root();
    let text = read_disk(&root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md at the root");
    fail_with(
        "names in ARCHITECTURE.md that are not in the tree; fix the name or the file",
        &docs::missing_architecture_names(&root, &text),
    );
}

/// The gateway's layers: `http/` stands on `mcp/`, which stands on `state/`.
/// Passes vacuously for a folder that does not exist.
#[test]
fn tidy_gateway_layers_import_only_downward() {
    let root = crate::common::repo_root();
    let lib = root.join("crates/gateway/src/lib.rs");
    let target = Target::load(&lib, &read_disk).unwrap_or_else(|e| panic!("{e}"));
    let problems = layer_violations(
        &root,
        &target,
        &[("state", &["mcp", "http"]), ("mcp", &["http"])],
    );
    fail_with(
        "gateway imports that run up the layers (http/ -> mcp/ -> state/)",
        &problems,
    );
}

/// Uses from files under each folder (a top-level module) of anything under
/// the modules it must not import, found by the written path and by the file
/// it resolves to (so a re-export through `lib.rs` is no way round).
fn layer_violations(root: &Path, target: &Target, rules: &[(&str, &[&str])]) -> Vec<String> {
    let mut found: BTreeMap<String, ()> = BTreeMap::new();
    for used in target.resolved() {
        for (layer, above) in rules {
            if used.from_module.first().map(String::as_str) != Some(*layer) {
                continue;
            }
            let written_top = used.written.split("::").nth(1).unwrap_or("");
            let lands_in = used.to_module.first().map(String::as_str).unwrap_or("");
            if let Some(bad) = above.iter().find(|a| **a == written_top || **a == lands_in) {
                found.insert(
                    format!(
                        "{} uses `{}` ({}), but nothing under {layer}/ may use crate::{bad}",
                        shown(root, &used.from),
                        used.written,
                        shown(root, &used.to)
                    ),
                    (),
                );
            }
        }
    }
    found.into_keys().collect()
}

#[cfg(test)]
mod tests {
    //! The import reader and the circle test against small made-up crates.
    use super::*;

    fn target(files: &[(&str, &str)]) -> Target {
        let map: BTreeMap<PathBuf, String> = files
            .iter()
            .map(|(p, t)| (PathBuf::from(p), (*t).to_owned()))
            .collect();
        let read = move |p: &Path| map.get(p).cloned();
        Target::load(Path::new("src/lib.rs"), &read).expect("a made-up crate")
    }

    fn edge_list(t: &Target) -> Vec<String> {
        import_edges(t)
            .iter()
            .map(|((a, b), names)| {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                format!("{} -> {}: {}", a.display(), b.display(), names.join(","))
            })
            .collect()
    }

    #[test]
    fn tidy_reads_use_trees_inline_paths_super_and_reexports() {
        let t = target(&[
            (
                "src/lib.rs",
                "//! r\nmod a;\nmod b;\nmod c;\npub use c::Thing;\npub(crate) fn top() {}\n",
            ),
            (
                "src/a.rs",
                "//! a\nuse crate::{b::{self, B}, Thing};\nfn f() { crate::c::deep::g(); let _ = \"crate::b::B\"; }\n// crate::b::Z in a comment\n",
            ),
            (
                "src/b.rs",
                "//! b\nuse super::top;\nmacro_rules! m { () => { $crate::a::X } }\n",
            ),
            (
                "src/c/mod.rs",
                "//! c\nmod deep;\npub struct Thing;\nuse deep::D;\n",
            ),
            (
                "src/c/deep.rs",
                "//! d\nuse super::Thing;\nuse super::super::b::B as Bee;\n#[cfg(test)]\nmod tests { use super::*; }\n",
            ),
        ]);
        assert_eq!(
            edge_list(&t),
            [
                "src/a.rs -> src/b.rs: B,b",
                "src/a.rs -> src/c/deep.rs: g",
                "src/a.rs -> src/c/mod.rs: Thing",
                "src/b.rs -> src/lib.rs: top",
                "src/c/deep.rs -> src/b.rs: B",
                "src/c/deep.rs -> src/c/mod.rs: Thing",
            ],
            "down edges (lib/mod.rs to children, a file to its own tests) are left out; \
             a re-export is followed to its definition; strings, comments and $crate are not code"
        );
        assert!(circles(&import_edges(&t)).is_empty());
    }

    #[test]
    fn tidy_finds_a_circle_through_a_child_its_parent_and_a_reexport() {
        let t = target(&[
            ("src/lib.rs", "//! r\nmod a;\nmod b;\npub use a::A;\n"),
            (
                "src/a.rs",
                "//! a\npub struct A;\nfn f() -> crate::b::inner::I { todo!() }\n",
            ),
            ("src/b.rs", "//! b\nmod inner;\npub struct B(crate::A);\n"),
            ("src/b/inner.rs", "//! i\npub struct I(super::B);\n"),
        ]);
        let found = describe_circles(Path::new(""), &[t]);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].contains("loop: src/a.rs -> src/b/inner.rs -> src/b.rs -> src/a.rs"),
            "{}",
            found[0]
        );
        assert!(found[0].contains("src/b.rs -> src/a.rs: A"), "{}", found[0]);
    }

    #[test]
    fn tidy_a_parent_using_its_child_is_no_circle() {
        let t = target(&[
            ("src/lib.rs", "//! r\nmod b;\n"),
            (
                "src/b/mod.rs",
                "//! b\nmod inner;\npub struct B(inner::I);\n",
            ),
            ("src/b/inner.rs", "//! i\npub struct I(Box<super::B>);\n"),
        ]);
        assert_eq!(edge_list(&t), ["src/b/inner.rs -> src/b/mod.rs: B"]);
        assert!(describe_circles(Path::new(""), &[t]).is_empty());
    }

    #[test]
    fn tidy_layer_rule_sees_written_paths_and_reexports() {
        let t = target(&[
            (
                "src/lib.rs",
                "//! r\nmod state;\nmod mcp;\nmod http;\npub use mcp::admin;\n",
            ),
            ("src/state/mod.rs", "//! s\nmod servers;\n"),
            (
                "src/state/servers.rs",
                "//! s\nuse crate::admin::op;\nfn f() { crate::http::serve(); }\n",
            ),
            (
                "src/mcp/mod.rs",
                "//! m\npub mod admin;\nuse crate::state;\n",
            ),
            ("src/mcp/admin.rs", "//! a\npub fn op() {}\n"),
            (
                "src/http/mod.rs",
                "//! h\nuse crate::mcp::admin;\npub fn serve() {}\n",
            ),
        ]);
        let found = layer_violations(
            Path::new(""),
            &t,
            &[("state", &["mcp", "http"]), ("mcp", &["http"])],
        );
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found[0].contains("`crate::admin::op` (src/mcp/admin.rs)"),
            "{}",
            found[0]
        );
        assert!(
            found[1].contains("`crate::http::serve` (src/http/mod.rs)"),
            "{}",
            found[1]
        );
    }
}
