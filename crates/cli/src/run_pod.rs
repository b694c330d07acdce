//! The hidden `mcpgate run-pod` subcommand: the entry point of a Kubernetes
//! run's pod (see `mcpgate_runs::pod`). It reads the run's spec from the
//! mounted ConfigMap (`--spec DIR`) and the run key from `MCPGATE_KEY` (the
//! run's Secret), prepares the agent with the same adapter code as the
//! local backends, runs it in `--workspace` under `mcpgate sandbox-init`
//! (which mounts `cli_tools` and kills what the agent leaves behind) with its
//! output as the pod's own (the log the gateway follows), then uploads the files matching the
//! workflow's artifact globs with `PUT /api/v1/runs/{id}/artifacts/{path}`
//! and the run key, and exits with the agent's code (1 if the agent
//! succeeded but an artifact could not be uploaded; 125 if the run could
//! not be set up). SIGTERM (the Job being deleted) kills the agent.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mcpgate_runs::ArtifactLimits;
use mcpgate_runs::pod::{PodRun, prepare_pod, read_spec};

const EXIT_SETUP: u8 = 125;

struct Args {
    spec: PathBuf,
    workspace: PathBuf,
    home: PathBuf,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut spec, mut workspace, mut home) = (None, None, None);
    while let Some(flag) = args.next() {
        let slot = match flag.as_str() {
            "--spec" => &mut spec,
            "--workspace" => &mut workspace,
            "--home" => &mut home,
            other => return Err(format!("unknown argument {other:?}")),
        };
        *slot = Some(PathBuf::from(
            args.next().ok_or_else(|| format!("{flag} needs a value"))?,
        ));
    }
    Ok(Args {
        spec: spec.ok_or("--spec DIR is required")?,
        workspace: workspace.ok_or("--workspace DIR is required")?,
        home: home.ok_or("--home DIR is required")?,
    })
}

/// Runs run-pod if the first argument asks for it; `None` otherwise.
pub(crate) fn dispatch() -> Option<ExitCode> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some("run-pod") {
        return None;
    }
    let fail = |message: String| {
        eprintln!("mcpgate run-pod: {message}");
        Some(ExitCode::from(EXIT_SETUP))
    };
    let args = match parse(args) {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start: {e}")),
    };
    match runtime.block_on(run(args)) {
        Ok(code) => Some(ExitCode::from(u8::try_from(code).unwrap_or(1))),
        Err(e) => fail(e),
    }
}

async fn run(args: Args) -> Result<i32, String> {
    let spec = read_spec(&args.spec)?;
    let key = std::env::var("MCPGATE_KEY")
        .map_err(|_| "MCPGATE_KEY (the run key, from the run's Secret) is not set".to_owned())?;
    for dir in [&args.workspace, &args.home] {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let command = prepare_pod(&spec, &key, &args.home, &args.workspace)?;
    let program =
        std::env::current_exe().map_err(|e| format!("cannot find the mcpgate executable: {e}"))?;
    let program = program.display().to_string();
    let mut child = tokio::process::Command::new(&program)
        .arg("sandbox-init")
        .args(&command.init_args)
        .env_clear()
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&args.workspace)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    let status = tokio::select! {
        status = child.wait() => status.map_err(|e| format!("waiting for {program}: {e}"))?,
        _ = term.recv() => {
            // sandbox-init kills every process of the agent on SIGTERM.
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let _ = child.wait().await;
            return Ok(143);
        }
    };
    let code = {
        use std::os::unix::process::ExitStatusExt;
        status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(1)
    };
    let uploaded = upload_artifacts(&spec, &key, &args.workspace).await;
    if let Err(e) = &uploaded {
        eprintln!("mcpgate run-pod: {e}");
    }
    Ok(if code == 0 && uploaded.is_err() {
        1
    } else {
        code
    })
}

/// Collects the workflow's artifacts from the workspace and uploads each.
async fn upload_artifacts(spec: &PodRun, key: &str, workspace: &Path) -> Result<(), String> {
    if spec.workflow.artifacts.is_empty() {
        return Ok(());
    }
    let dest = std::env::temp_dir().join(format!("mcpgate-artifacts-{}", spec.run_id));
    let collected = mcpgate_runs::artifacts::collect(
        workspace,
        &spec.workflow.artifacts,
        &dest,
        &ArtifactLimits::default(),
    )
    .map_err(|e| format!("artifacts not collected: {e}"))?;
    for refusal in &collected.refused {
        eprintln!("mcpgate run-pod: artifact not kept: {refusal}");
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(300))
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
    let base = spec.gateway_url.trim_end_matches('/');
    for artifact in &collected.artifacts {
        let file = dest.join(&artifact.name);
        let bytes = tokio::fs::read(&file)
            .await
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let path: Vec<String> = artifact.name.split('/').map(encode_segment).collect();
        let url = format!(
            "{base}/api/v1/runs/{}/artifacts/{}",
            spec.run_id,
            path.join("/")
        );
        let resp = http
            .put(&url)
            .bearer_auth(key)
            .body(bytes)
            .send()
            .await
            .map_err(|e| format!("uploading artifact {}: {e}", artifact.name))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return Err(format!(
                "uploading artifact {}: HTTP {status}: {body}",
                artifact.name
            ));
        }
        eprintln!(
            "mcpgate run-pod: uploaded artifact {} ({} bytes)",
            artifact.name, artifact.size
        );
    }
    let _ = std::fs::remove_dir_all(&dest);
    Ok(())
}

/// Percent-encodes one path segment (unreserved characters stay).
fn encode_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_read_and_checked() {
        let args = |v: &[&str]| parse(v.iter().map(|s| s.to_string()));
        let ok = args(&["--spec", "/s", "--workspace", "/w", "--home", "/h"]).expect("parses");
        assert_eq!(ok.spec, Path::new("/s"));
        assert!(args(&["--spec", "/s"]).is_err());
        assert!(args(&["--bogus"]).is_err());
        assert_eq!(encode_segment("a b+c.txt"), "a%20b%2Bc.txt");
    }
}
