//! Artifacts: the files a run leaves behind. After the agent exits (and every
//! process of the run is gone), [`collect`] walks the workspace without
//! following symlinks, copies each regular file matching the workflow's
//! `artifacts` globs into the run's directory of the artifact store, and
//! returns name, size and SHA-256 of each. Paths cannot escape the workspace:
//! globs with `..` or a leading `/` are refused, a matching symlink is refused
//! and never followed (files are opened with `O_NOFOLLOW`), and the walk never
//! enters a symlinked directory. Caps bound one file, the total and the
//! count, so a run cannot fill the gateway's disk. [`artifact_path`] applies
//! the same rules to a name a client sends (download, upload).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::workflow::check_artifact_glob;

/// One file a run left behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Artifact {
    /// Its path relative to the workspace, with `/` separators.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 of its content, lowercase hex.
    pub sha256: String,
}

/// Caps on what one run may leave behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactLimits {
    /// Largest single file.
    pub max_file_bytes: u64,
    /// Largest total of all files.
    pub max_total_bytes: u64,
    /// Most files.
    pub max_files: usize,
}

impl Default for ArtifactLimits {
    fn default() -> Self {
        ArtifactLimits {
            max_file_bytes: 100 << 20,
            max_total_bytes: 500 << 20,
            max_files: 1000,
        }
    }
}

/// What [`collect`] kept and what it refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collected {
    /// The files copied, sorted by name.
    pub artifacts: Vec<Artifact>,
    /// One sentence per matching path that was not copied, and why.
    pub refused: Vec<String>,
}

/// Why artifacts could not be collected at all.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// A glob is not usable (the workflow should have been refused already).
    #[error("artifact glob: {0}")]
    Glob(String),
    /// A name a client sent is not a path inside the workspace.
    #[error("artifact path {name:?}: {reason}")]
    BadPath {
        /// The name as sent.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The artifact store cannot be written.
    #[error("artifact store {path}: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
}

/// Deepest directory nesting walked.
const MAX_DEPTH: usize = 64;
/// Most directory entries looked at in one workspace.
const MAX_ENTRIES: usize = 200_000;

/// Copies the files of `workspace` matching `globs` into `dest` (created if
/// needed), within `limits`.
pub fn collect(
    workspace: &Path,
    globs: &[String],
    dest: &Path,
    limits: &ArtifactLimits,
) -> Result<Collected, ArtifactError> {
    let mut out = Collected::default();
    if globs.is_empty() {
        return Ok(out);
    }
    let mut set = globset::GlobSetBuilder::new();
    for glob in globs {
        set.add(check_artifact_glob(glob).map_err(ArtifactError::Glob)?);
    }
    let set = set
        .build()
        .map_err(|e| ArtifactError::Glob(e.to_string()))?;
    let mut total: u64 = 0;
    let mut seen = 0usize;
    let mut stack: Vec<(PathBuf, PathBuf, usize)> = vec![(workspace.to_owned(), PathBuf::new(), 0)];
    let mut matched: Vec<(PathBuf, String)> = Vec::new();
    while let Some((dir, rel_dir, depth)) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                out.refused
                    .push(format!("{}: cannot read: {e}", rel_dir.display()));
                continue;
            }
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > MAX_ENTRIES {
                out.refused.push(format!(
                    "the workspace has more than {MAX_ENTRIES} entries; the rest were not looked at"
                ));
                stack.clear();
                break;
            }
            let rel = rel_dir.join(entry.file_name());
            let Ok(meta) = fs::symlink_metadata(entry.path()) else {
                continue;
            };
            let file_type = meta.file_type();
            if file_type.is_dir() {
                if depth + 1 < MAX_DEPTH {
                    stack.push((entry.path(), rel, depth + 1));
                }
                continue;
            }
            if !set.is_match(&rel) {
                continue;
            }
            let Some(name) = rel.to_str().map(str::to_owned) else {
                out.refused
                    .push(format!("{}: the name is not UTF-8", rel.display()));
                continue;
            };
            if file_type.is_symlink() {
                out.refused.push(format!(
                    "{name}: a symlink; artifacts must be regular files"
                ));
            } else if !file_type.is_file() {
                out.refused.push(format!("{name}: not a regular file"));
            } else {
                matched.push((entry.path(), name));
            }
        }
    }
    matched.sort_by(|a, b| a.1.cmp(&b.1));
    for (source, name) in matched {
        if out.artifacts.len() >= limits.max_files {
            out.refused.push(format!(
                "{name}: over the cap of {} files",
                limits.max_files
            ));
            continue;
        }
        let target = dest.join(&name);
        let room = limits
            .max_file_bytes
            .min(limits.max_total_bytes.saturating_sub(total));
        match copy_one(&source, &target, room) {
            Ok(Copied::Done { size, sha256 }) => {
                total += size;
                out.artifacts.push(Artifact { name, size, sha256 });
            }
            Ok(Copied::TooLarge) => {
                let _ = fs::remove_file(&target);
                let cap = if room < limits.max_file_bytes {
                    format!("the total cap of {} bytes", limits.max_total_bytes)
                } else {
                    format!("the file cap of {} bytes", limits.max_file_bytes)
                };
                out.refused.push(format!("{name}: larger than {cap}"));
            }
            Ok(Copied::NotRegular) => {
                out.refused.push(format!(
                    "{name}: not a regular file (or a symlink) when opened"
                ));
            }
            Err(CopyError::Source(e)) => {
                out.refused.push(format!("{name}: cannot read: {e}"));
            }
            Err(CopyError::Dest(source)) => {
                return Err(ArtifactError::Io {
                    path: target,
                    source,
                });
            }
        }
    }
    Ok(out)
}

enum Copied {
    Done { size: u64, sha256: String },
    TooLarge,
    NotRegular,
}

enum CopyError {
    Source(io::Error),
    Dest(io::Error),
}

/// Whether an open failed because the last component is a symlink (`ELOOP`
/// under `O_NOFOLLOW`).
fn is_symlink_refusal(e: &io::Error) -> bool {
    e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32)
}

fn copy_one(source: &Path, target: &Path, room: u64) -> Result<Copied, CopyError> {
    let mut input = match OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits() | nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(source)
    {
        Ok(file) => file,
        Err(e) if is_symlink_refusal(&e) => return Ok(Copied::NotRegular),
        Err(e) => return Err(CopyError::Source(e)),
    };
    match input.metadata() {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Ok(Copied::NotRegular),
        Err(e) => return Err(CopyError::Source(e)),
    }
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(CopyError::Dest)?;
    }
    let mut output: File = File::create(target).map_err(CopyError::Dest)?;
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = input.read(&mut buf).map_err(CopyError::Source)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        if size > room {
            return Ok(Copied::TooLarge);
        }
        hasher.update(&buf[..n]);
        output.write_all(&buf[..n]).map_err(CopyError::Dest)?;
    }
    let sha256 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Copied::Done { size, sha256 })
}

/// The path of artifact `name` under a run's artifact directory `dir`, if the
/// name is a plain relative path (no `..`, no root, no empty or `.` parts).
pub fn artifact_path(dir: &Path, name: &str) -> Result<PathBuf, ArtifactError> {
    let bad = |reason| ArtifactError::BadPath {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() || name.len() > 1024 {
        return Err(bad("empty or longer than 1024 bytes"));
    }
    if name.contains('\0') || name.contains('\\') {
        return Err(bad("holds a NUL or a backslash"));
    }
    let path = Path::new(name);
    for part in path.components() {
        match part {
            Component::Normal(_) => {}
            Component::ParentDir => return Err(bad("`..` would leave the workspace")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(bad("absolute: names are relative to the workspace"));
            }
            Component::CurDir => return Err(bad("`.` parts are not allowed")),
        }
    }
    if name.split('/').any(|p| p.is_empty() || p == ".") {
        return Err(bad("empty or `.` parts are not allowed"));
    }
    Ok(dir.join(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Scratch(PathBuf);
    impl Scratch {
        fn new(tag: &str) -> Scratch {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let p = std::env::temp_dir().join(format!(
                "mcpgate-artifacts-{tag}-{}-{n}",
                std::process::id()
            ));
            fs::create_dir_all(&p).expect("scratch dir");
            Scratch(p)
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn write(root: &Path, rel: &str, content: &[u8]) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, content).expect("write");
    }

    fn globs(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn copies_matching_files_with_size_and_sha256() {
        let ws = Scratch::new("ws");
        let dest = Scratch::new("dest");
        write(&ws.0, "out/report.md", b"hello");
        write(&ws.0, "out/deep/nested.md", b"x");
        write(&ws.0, "notes.txt", b"not matched");
        let got = collect(
            &ws.0,
            &globs(&["out/*.md", "missing.json"]),
            &dest.0,
            &ArtifactLimits::default(),
        )
        .expect("collects");
        assert_eq!(
            got.artifacts,
            [Artifact {
                name: "out/report.md".into(),
                size: 5,
                sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824".into(),
            }],
            "`*` does not cross `/`"
        );
        assert!(got.refused.is_empty(), "{:?}", got.refused);
        assert_eq!(
            fs::read(dest.0.join("out/report.md")).expect("copied"),
            b"hello"
        );
        let all = collect(
            &ws.0,
            &globs(&["**/*.md"]),
            &dest.0,
            &ArtifactLimits::default(),
        )
        .expect("collects");
        assert_eq!(all.artifacts.len(), 2);
    }

    #[test]
    fn symlinks_are_refused_and_never_followed() {
        let ws = Scratch::new("ws");
        let dest = Scratch::new("dest");
        let outside = Scratch::new("outside");
        write(&outside.0, "secret.txt", b"secret");
        symlink(outside.0.join("secret.txt"), ws.0.join("leak.txt")).expect("symlink");
        symlink(&outside.0, ws.0.join("dir")).expect("dir symlink");
        let got = collect(
            &ws.0,
            &globs(&["*.txt", "dir/*", "dir/**"]),
            &dest.0,
            &ArtifactLimits::default(),
        )
        .expect("collects");
        assert!(got.artifacts.is_empty(), "{:?}", got.artifacts);
        assert_eq!(got.refused.len(), 1, "{:?}", got.refused);
        assert!(got.refused[0].contains("leak.txt") && got.refused[0].contains("symlink"));
        assert!(!dest.0.join("leak.txt").exists());
        assert!(!dest.0.join("dir").exists());
    }

    #[test]
    fn dot_dot_globs_are_refused() {
        let ws = Scratch::new("ws");
        let dest = Scratch::new("dest");
        for glob in ["../x", "a/../../x", "/etc/passwd"] {
            let error = collect(&ws.0, &globs(&[glob]), &dest.0, &ArtifactLimits::default())
                .expect_err(glob);
            assert!(matches!(error, ArtifactError::Glob(_)), "{glob}: {error}");
        }
    }

    #[test]
    fn caps_bound_size_and_count() {
        let ws = Scratch::new("ws");
        let dest = Scratch::new("dest");
        write(&ws.0, "a.bin", &[1; 10]);
        write(&ws.0, "b.bin", &[2; 10]);
        write(&ws.0, "c.bin", &[3; 30]);
        let limits = ArtifactLimits {
            max_file_bytes: 20,
            max_total_bytes: 15,
            max_files: 10,
        };
        let got = collect(&ws.0, &globs(&["*.bin"]), &dest.0, &limits).expect("collects");
        let names: Vec<&str> = got.artifacts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["a.bin"]);
        assert_eq!(got.refused.len(), 2, "{:?}", got.refused);
        assert!(got.refused[0].starts_with("b.bin") && got.refused[0].contains("total cap"));
        assert!(got.refused[1].starts_with("c.bin"));
        assert!(!dest.0.join("b.bin").exists(), "a refused copy is removed");
        let limits = ArtifactLimits {
            max_files: 1,
            ..ArtifactLimits::default()
        };
        let got = collect(&ws.0, &globs(&["*.bin"]), &dest.0, &limits).expect("collects");
        assert_eq!(got.artifacts.len(), 1);
        assert_eq!(got.refused.len(), 2);
    }

    #[test]
    fn artifact_names_from_clients() {
        let dir = Path::new("/data/artifacts/run_1");
        assert_eq!(
            artifact_path(dir, "out/report.md").expect("plain"),
            dir.join("out/report.md")
        );
        for bad in [
            "",
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "./a",
            "a/./b",
            "a\\b",
            "a\0b",
        ] {
            assert!(artifact_path(dir, bad).is_err(), "{bad:?}");
        }
    }
}
