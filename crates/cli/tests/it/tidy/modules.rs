//! A crate target's module files and the imports between them, read from
//! the sources as tokens (proc-macro2's lexer, so comments, strings and doc
//! text never count as code). The tree is followed from the root (`lib.rs`,
//! `main.rs`, `bin/*.rs`) through `mod x;` declarations, as rustc does, so
//! a file belongs to the target that compiles it. Every `crate::`,
//! `super::` and `self::` path (in `use` trees and inline, macro bodies
//! included) and every `use child::…` is made absolute, then mapped to the
//! longest prefix that is a module file; a name a module only imports
//! (`pub use x::Y`, or a parent's private `use` its children see) is followed
//! to the module that defines it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use proc_macro2::{Delimiter, TokenStream, TokenTree};

/// Reads one file's text; `None` when there is no such file.
pub(crate) type Read<'a> = &'a dyn Fn(&Path) -> Option<String>;

/// A module path from the crate root: `["state", "servers"]`.
type ModPath = Vec<String>;

/// One crate target (a `lib.rs`, `main.rs` or `bin/*.rs`) and its module files.
pub(crate) struct Target {
    pub(crate) root: PathBuf,
    /// Every module that is a file, by module path (`[]` is the root).
    pub(crate) files: BTreeMap<ModPath, PathBuf>,
    /// Inline modules (`mod tests { … }`) as well as file modules.
    modules: BTreeSet<ModPath>,
    /// What each module (inline ones included) imports: name → absolute path.
    imports: BTreeMap<ModPath, BTreeMap<String, ModPath>>,
    /// Every path a file names, as written, with where it was written.
    raw: Vec<RawPath>,
}

/// A path as written: its segments (`crate`, `super`, `self` included) and the
/// module (inline ones included) it was written in.
struct RawPath {
    file: PathBuf,
    file_module: ModPath,
    module: ModPath,
    segments: Vec<String>,
    /// The name a `use` binds (`None` outside `use`, and for globs).
    binding: Option<String>,
}

/// A path a file uses, resolved to the module file that defines what it names.
pub(crate) struct Resolved {
    pub(crate) from: PathBuf,
    /// The module path of `from`.
    pub(crate) from_module: ModPath,
    /// The absolute path as written (before following imports), `crate::…`.
    pub(crate) written: String,
    pub(crate) to: PathBuf,
    pub(crate) to_module: ModPath,
    /// The item named in `to` (the module itself when the path ends there).
    pub(crate) name: String,
}

impl Target {
    /// Reads the target whose root file is `root`, following `mod x;`.
    pub(crate) fn load(root: &Path, read: Read) -> Result<Target, String> {
        let mut target = Target {
            root: root.to_path_buf(),
            files: BTreeMap::new(),
            modules: BTreeSet::new(),
            imports: BTreeMap::new(),
            raw: Vec::new(),
        };
        let mut queue = vec![(ModPath::new(), root.to_path_buf())];
        while let Some((module, file)) = queue.pop() {
            let text = read(&file).ok_or_else(|| format!("{} cannot be read", file.display()))?;
            let tokens = TokenStream::from_str(&text)
                .map_err(|e| format!("{} is not Rust tokens: {e}", file.display()))?;
            target.files.insert(module.clone(), file.clone());
            target.modules.insert(module.clone());
            let mut scan = Scan {
                file: &file,
                file_module: &module,
                read,
                target: &mut target,
                children: Vec::new(),
            };
            scan.stream(tokens, &module, &children_dir(&file, root), true);
            queue.append(&mut scan.children);
        }
        target.collect_imports();
        Ok(target)
    }

    /// Every path the target's files use, resolved (paths to other crates,
    /// and relative ones that name no module, are left out).
    pub(crate) fn resolved(&self) -> Vec<Resolved> {
        let mut out = Vec::new();
        for raw in &self.raw {
            let Some(absolute) = self.absolute(&raw.segments, &raw.module) else {
                continue;
            };
            let (to_module, name) = self.resolve(&absolute, 0);
            let Some(to) = self.files.get(&to_module) else {
                continue;
            };
            out.push(Resolved {
                from: raw.file.clone(),
                from_module: raw.file_module.clone(),
                written: std::iter::once("crate")
                    .chain(absolute.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join("::"),
                to: to.clone(),
                to_module: to_module.clone(),
                name: name.unwrap_or_else(|| to_module.last().cloned().unwrap_or_default()),
            });
        }
        out
    }

    /// `segments` written in `module`, as a path from the crate root.
    fn absolute(&self, segments: &[String], module: &[String]) -> Option<ModPath> {
        let first = segments.first()?;
        let (mut path, rest) = match first.as_str() {
            "crate" => (ModPath::new(), &segments[1..]),
            "self" => (module.to_vec(), &segments[1..]),
            "super" => {
                let ups = segments.iter().take_while(|s| *s == "super").count();
                let keep = module.len().checked_sub(ups)?;
                (module[..keep].to_vec(), &segments[ups..])
            }
            _ => {
                let mut child = module.to_vec();
                child.push(first.clone());
                if !self.modules.contains(&child) {
                    return None; // another crate, or a local item: not an import edge
                }
                (module.to_vec(), segments)
            }
        };
        path.extend(rest.iter().filter(|s| *s != "self").cloned());
        Some(path)
    }

    /// The module file that defines what `path` names, following imports;
    /// returns its module path and the name looked up in it.
    fn resolve(&self, path: &[String], depth: u8) -> (ModPath, Option<String>) {
        let known = (0..=path.len())
            .rev()
            .find(|&k| self.files.contains_key(&path[..k]))
            .unwrap_or(0);
        let module = path[..known].to_vec();
        let Some(name) = path.get(known) else {
            return (module, None);
        };
        if depth < 8
            && let Some(target) = self.imports.get(&module).and_then(|m| m.get(name))
        {
            let mut next = target.clone();
            next.extend(path[known + 1..].iter().cloned());
            if next != path {
                return self.resolve(&next, depth + 1);
            }
        }
        (module, Some(name.clone()))
    }

    /// Fills `imports` from the `use` paths that bind a name.
    fn collect_imports(&mut self) {
        let mut imports: BTreeMap<ModPath, BTreeMap<String, ModPath>> = BTreeMap::new();
        for raw in &self.raw {
            let Some(binding) = &raw.binding else {
                continue;
            };
            if let Some(absolute) = self.absolute(&raw.segments, &raw.module) {
                imports
                    .entry(raw.module.clone())
                    .or_default()
                    .insert(binding.clone(), absolute);
            }
        }
        self.imports = imports;
    }
}

/// Where the files of `file`'s child modules live.
fn children_dir(file: &Path, root: &Path) -> PathBuf {
    let parent = file.parent().unwrap_or(Path::new("")).to_path_buf();
    let own_dir = file == root || file.file_name().is_some_and(|n| n == "mod.rs");
    match file.file_stem() {
        Some(stem) if !own_dir => parent.join(stem),
        _ => parent,
    }
}

/// One file's walk over its tokens.
struct Scan<'a> {
    file: &'a Path,
    file_module: &'a [String],
    read: Read<'a>,
    target: &'a mut Target,
    /// Child module files found: (module path, file).
    children: Vec<(ModPath, PathBuf)>,
}

impl Scan<'_> {
    fn stream(&mut self, tokens: TokenStream, module: &[String], dir: &Path, top: bool) {
        let toks: Vec<TokenTree> = tokens.into_iter().collect();
        let mut path_attribute: Option<String> = None;
        let mut i = 0;
        while i < toks.len() {
            match &toks[i] {
                TokenTree::Punct(p) if p.as_char() == '#' => {
                    let mut j = i + 1;
                    if is_punct(toks.get(j), '!') {
                        j += 1;
                    }
                    if let Some(TokenTree::Group(g)) = toks.get(j)
                        && g.delimiter() == Delimiter::Bracket
                    {
                        path_attribute = path_attribute.or_else(|| path_attr(g.stream()));
                        i = j + 1; // attributes hold no imports (doc text, cfg, derive)
                        continue;
                    }
                }
                TokenTree::Ident(id) if id == "mod" => {
                    if let Some(TokenTree::Ident(name)) = toks.get(i + 1) {
                        let name = name.to_string();
                        let mut child = module.to_vec();
                        child.push(name.clone());
                        match toks.get(i + 2) {
                            Some(TokenTree::Punct(p)) if p.as_char() == ';' => {
                                let base = if top {
                                    self.file.parent().unwrap_or(Path::new("")).to_path_buf()
                                } else {
                                    dir.to_path_buf()
                                };
                                let file = match path_attribute.take() {
                                    Some(p) => Some(base.join(p)),
                                    None => [
                                        dir.join(format!("{name}.rs")),
                                        dir.join(&name).join("mod.rs"),
                                    ]
                                    .into_iter()
                                    .find(|f| (self.read)(f).is_some()),
                                };
                                if let Some(file) = file {
                                    self.children.push((child, file));
                                }
                                i += 3;
                                continue;
                            }
                            Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => {
                                self.target.modules.insert(child.clone());
                                self.stream(g.stream(), &child, &dir.join(&name), false);
                                path_attribute = None;
                                i += 3;
                                continue;
                            }
                            _ => {}
                        }
                    }
                }
                TokenTree::Ident(id) if id == "use" => {
                    let mut leaves = Vec::new();
                    let end = use_tree(&toks, i + 1, Vec::new(), true, &mut leaves);
                    self.record(module, leaves);
                    path_attribute = None;
                    i = end.max(i + 1);
                    continue;
                }
                TokenTree::Ident(id)
                    if (id == "crate" || id == "super" || id == "self")
                        && is_path_sep(&toks, i + 1)
                        && !(i > 0 && is_punct(toks.get(i - 1), '$'))
                        && !(i > 1 && is_path_sep(&toks, i - 2)) =>
                {
                    let mut leaves = Vec::new();
                    let end = use_tree(&toks, i, Vec::new(), false, &mut leaves);
                    let leaves = leaves.into_iter().map(|(p, _)| (p, None)).collect();
                    self.record(module, leaves);
                    i = end.max(i + 1);
                    continue;
                }
                TokenTree::Group(g) => self.stream(g.stream(), module, dir, false),
                TokenTree::Punct(p) if p.as_char() == ';' => path_attribute = None,
                _ => {}
            }
            i += 1;
        }
    }

    fn record(&mut self, module: &[String], leaves: Vec<(Vec<String>, Option<String>)>) {
        for (segments, binding) in leaves {
            if segments.is_empty() {
                continue;
            }
            self.target.raw.push(RawPath {
                file: self.file.to_path_buf(),
                file_module: self.file_module.to_vec(),
                module: module.to_vec(),
                segments,
                binding,
            });
        }
    }
}

/// `path = "…"` inside an attribute's brackets.
fn path_attr(tokens: TokenStream) -> Option<String> {
    let toks: Vec<TokenTree> = tokens.into_iter().collect();
    match toks.as_slice() {
        [
            TokenTree::Ident(id),
            TokenTree::Punct(eq),
            TokenTree::Literal(lit),
        ] if id == "path" && eq.as_char() == '=' => {
            Some(lit.to_string().trim_matches('"').to_owned())
        }
        _ => None,
    }
}

fn is_punct(t: Option<&TokenTree>, c: char) -> bool {
    matches!(t, Some(TokenTree::Punct(p)) if p.as_char() == c)
}

fn is_path_sep(toks: &[TokenTree], i: usize) -> bool {
    is_punct(toks.get(i), ':') && is_punct(toks.get(i + 1), ':')
}

/// Reads a path or a `use` tree starting at `toks[i]`, with `prefix` already
/// read; pushes each leaf (its segments and, in a `use`, the name it binds)
/// and returns the index after it.
fn use_tree(
    toks: &[TokenTree],
    mut i: usize,
    mut segments: Vec<String>,
    in_use: bool,
    leaves: &mut Vec<(Vec<String>, Option<String>)>,
) -> usize {
    if in_use && segments.is_empty() && is_path_sep(toks, i) {
        return i + 2; // `use ::other_crate::…`
    }
    loop {
        match toks.get(i) {
            Some(TokenTree::Ident(id)) => {
                segments.push(id.to_string());
                i += 1;
                if is_path_sep(toks, i) {
                    i += 2;
                    continue;
                }
                let mut binding = segments.iter().rev().find(|s| *s != "self").cloned();
                if let (Some(TokenTree::Ident(kw)), Some(TokenTree::Ident(alias))) =
                    (toks.get(i), toks.get(i + 1))
                    && in_use
                    && kw == "as"
                {
                    binding = Some(alias.to_string());
                    i += 2;
                }
                leaves.push((segments, binding.filter(|b| b != "_")));
                return i;
            }
            Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace && in_use => {
                let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                for part in inner.split(|t| is_punct(Some(t), ',')) {
                    if !part.is_empty() {
                        use_tree(part, 0, segments.clone(), true, leaves);
                    }
                }
                return i + 1;
            }
            Some(TokenTree::Punct(p)) if p.as_char() == '*' && in_use => {
                leaves.push((segments, None));
                return i + 1;
            }
            _ => {
                if !segments.is_empty() {
                    leaves.push((segments, None));
                }
                return i;
            }
        }
    }
}
