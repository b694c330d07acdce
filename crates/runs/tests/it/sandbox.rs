//! The bubblewrap sandbox from the inside: a `command` run's output and
//! outcome, what the agent sees (its user, environment, files, rlimits), and
//! what it can reach: only the relayed port, never the host's PostgreSQL,
//! Redis or any other host port.

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use mcpgate_runs::{Backend, EventBody, HostRelay, InitProgram, LocalConfig, RunState, Stream};

use crate::common::*;

#[tokio::test]
async fn a_command_run_echoes_and_succeeds() {
    let h = harness(|_| {}).await;
    let (run, events) = h
        .run(shell("echo hello $MCPGATE_RUN_ID; echo oops >&2", ""))
        .await;
    assert_eq!(run.state, RunState::Succeeded, "{}", text(&events));
    assert_eq!(run.exit_code, Some(0));
    assert_eq!(stdout(&events), [format!("hello {}", run.id)]);
    assert!(
        events.iter().any(|e| matches!(&e.body,
            EventBody::Output { stream: Stream::Stderr, line } if line == "oops")),
        "{}",
        text(&events)
    );
    let states: Vec<RunState> = events
        .iter()
        .filter_map(|e| match e.body {
            EventBody::State { state, .. } => Some(state),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        [
            RunState::Queued,
            RunState::Starting,
            RunState::Running,
            RunState::Succeeded
        ]
    );
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
    assert!(
        !h.data.0.join("runs").join(run.id.as_str()).exists(),
        "the run directory is removed"
    );
}

#[tokio::test]
async fn a_failing_command_fails_with_its_exit_code() {
    let h = harness(|_| {}).await;
    let (run, events) = h.run(shell("echo before; exit 7", "")).await;
    assert_eq!(run.state, RunState::Failed, "{}", text(&events));
    assert_eq!(run.exit_code, Some(7));
    assert_eq!(run.reason.as_deref(), Some("exit code 7"));
    let (missing, _) = h
        .run(workflow(
            r#"{"agent": "command", "command": ["no-such-program-here"]}"#,
        ))
        .await;
    assert_eq!(missing.exit_code, Some(127), "sandbox-init: not found");
}

#[tokio::test]
async fn the_agent_sees_only_its_own_world() {
    let h = harness(|c| {
        c.limits.memory_bytes = Some(3 << 30);
        c.limits.file_size_bytes = Some(5 << 20);
    })
    .await;
    let script = "id -u; id -g; hostname; pwd; echo HOME=$HOME; \
        cat /proc/self/limits; env; \
        ls /root 2>&1 || true; ls /work 2>&1 || true; \
        touch /usr/x 2>&1 || true; touch /x 2>&1 || true; \
        echo data > /workspace/w && echo workspace-writable; \
        echo data > /tmp/t && echo tmp-writable; \
        if unshare --user true 2>/dev/null; then echo nested-userns; else echo no-nested-userns; fi; \
        ls /run/mcpgate; ps -e -o pid= | wc -l";
    let (run, events) = h.run(shell(script, r#", "env": {"GREETING": "hi"}"#)).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", text(&events));
    let out = stdout(&events);
    let all = out.join("\n");
    assert_eq!(
        &out[..4],
        ["1000", "1000", "mcpgate-run", "/workspace"],
        "{all}"
    );
    for want in [
        "HOME=/home/run",
        "GREETING=hi",
        &format!("MCPGATE_RUN_ID={}", run.id),
        "MCPGATE_KEY=mcpg_run_test_key",
        "workspace-writable",
        "tmp-writable",
        "no-nested-userns",
        "sandbox-init",
    ] {
        assert!(all.contains(want), "{want} missing from:\n{all}");
    }
    for (name, value) in [
        ("Max address space", 3u64 << 30),
        ("Max file size", 5u64 << 20),
    ] {
        let line = out
            .iter()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing from /proc/self/limits:\n{all}"));
        let numbers: Vec<&str> = line[name.len()..].split_whitespace().take(2).collect();
        assert_eq!(
            numbers,
            [value.to_string(), value.to_string()],
            "soft and hard {name}: {line}"
        );
    }
    for leak in ["CARGO_", "RUST_", "HOME=/root", "PWD=/work/"] {
        assert!(
            !out.iter().any(|l| l.starts_with(leak)),
            "the gateway's environment leaked ({leak}):\n{all}"
        );
    }
    assert!(
        all.contains("ls: cannot access '/root'") && all.contains("ls: cannot access '/work'"),
        "the host's home and tree are invisible:\n{all}"
    );
    assert!(
        all.contains("touch: cannot touch '/usr/x': Read-only file system")
            && all.contains("touch: cannot touch '/x': Read-only file system"),
        "{all}"
    );
    let processes: usize = out
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("a process count");
    assert!(
        processes <= 6,
        "the PID namespace shows only the run's processes, got {processes}:\n{all}"
    );
}

/// From inside a sandbox whose only relay (8787) leads to a Unix socket
/// answering `pong LINE`, probes each host port with bash's `/dev/tcp`; the
/// lines the run printed. Each port must be reachable from the host first,
/// and the relay must work, so `closed` means isolation, not a broken probe.
async fn probe_from_the_sandbox(ports: &[u16]) -> Vec<String> {
    let sockets = Scratch::new("sock");
    let socket = sockets.0.join("gateway.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).expect("unix listener");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            if reader.read_line(&mut line).is_ok() {
                let _ = (&stream).write_all(format!("pong {line}").as_bytes());
            }
        }
    });
    for port in ports {
        assert!(
            std::net::TcpStream::connect_timeout(
                &([127, 0, 0, 1], *port).into(),
                Duration::from_secs(2)
            )
            .is_ok(),
            "control: 127.0.0.1:{port} must be reachable from the host for this test to mean anything"
        );
    }
    let h = harness(|c| {
        c.relays = vec![HostRelay {
            port: 8787,
            socket: socket.clone(),
        }]
    })
    .await;
    let mut script = "exec 3<>/dev/tcp/127.0.0.1/8787 && echo ping >&3 && read -r reply <&3 \
        && echo \"$reply\"; exec 3>&-; "
        .to_owned();
    for port in ports {
        script.push_str(&format!(
            "if (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; then echo {port}:open; \
             else echo {port}:closed; fi; "
        ));
    }
    let script = serde_json::to_string(&script).expect("json");
    let (run, events) = h
        .run(workflow(&format!(
            r#"{{"agent": "command", "command": ["bash", "-c", {script}]}}"#
        )))
        .await;
    assert_eq!(run.state, RunState::Succeeded, "{}", text(&events));
    stdout(&events)
}

#[tokio::test]
async fn only_the_relayed_port_is_reachable() {
    let host = std::net::TcpListener::bind("127.0.0.1:0").expect("tcp listener");
    let port = host.local_addr().expect("addr").port();
    assert_eq!(
        probe_from_the_sandbox(&[port]).await,
        ["pong ping".to_owned(), format!("{port}:closed")]
    );
}

#[tokio::test]
#[ignore = "peers tier: needs PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379"]
async fn postgres_and_redis_are_unreachable_from_the_sandbox() {
    assert_eq!(
        probe_from_the_sandbox(&[5432, 6379]).await,
        ["pong ping", "5432:closed", "6379:closed"]
    );
}

#[tokio::test]
async fn the_local_backend_refuses_without_bubblewrap() {
    let error = Backend::local(LocalConfig {
        bwrap: Some("/nonexistent/bwrap".into()),
        init: init_program(),
    })
    .await
    .expect_err("no bwrap");
    let message = error.to_string();
    assert!(
        message.contains("bubblewrap") && message.contains("unsandboxed"),
        "the message says what to do: {message}"
    );
    let error = Backend::local(LocalConfig {
        bwrap: None,
        init: InitProgram {
            program: "/nonexistent/mcpgate".into(),
            args: vec!["sandbox-init".into()],
        },
    })
    .await
    .expect_err("no init program");
    assert!(
        error.to_string().contains("/nonexistent/mcpgate"),
        "{error}"
    );
}

#[tokio::test]
async fn the_unsandboxed_backend_runs_and_warns() {
    let h = harness_with(
        Backend::unsandboxed(init_program()),
        grant("http://127.0.0.1:1/mcp"),
        |_| {},
    )
    .await;
    let (run, events) = h.run(shell("echo plain; pwd", "")).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", text(&events));
    let out = stdout(&events);
    assert_eq!(out[0], "plain");
    assert!(
        out[1].ends_with("/workspace") && out[1] != "/workspace",
        "{out:?}"
    );
    assert!(
        events.iter().any(|e| matches!(&e.body,
            EventBody::Notice { message } if message.contains("NOT sandboxed"))),
        "{}",
        text(&events)
    );
}
