//! The CLI's rough edges, each pinned by running the real `mcpgate` binary:
//! `call --help`, read-only commands that create no store, log colours only
//! on a terminal (and never with `NO_COLOR`), `call`'s own exit codes for a
//! rate limit (4) and an exhausted balance (5), an unknown server named as
//! such, `tools --config` listing every server, `servers --url` refusing to
//! print an empty table without an admin key, and mounted wrappers that keep
//! working when their folder is moved. The upstream is the Rust fixture.

#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::admin::tenant_with_key;
use crate::common::*;

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(mcpgate_bin())
        .current_dir(dir)
        .args(args)
        .env_remove("MCPGATE_KEY")
        .env_remove("MCPGATE_ADMIN_KEY")
        .env("MCPGATE_STATE_DIR", dir.join("state"))
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(out: &Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn regression_call_help_prints_the_help_of_call() {
    let dir = TempDir::new("call-help");
    for args in [&["call", "--help"][..], &["call"], &["call", "-h"]] {
        let (code, out, err) = text(&run(&dir.0, args, &[]));
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        for word in [
            "Usage: mcpgate call",
            "--url",
            "--tools-file",
            "[SERVER]",
            "TOOL --help",
        ] {
            assert!(out.contains(word), "{args:?} lacks {word}:\n{out}");
        }
    }
}

#[test]
fn read_only_commands_create_no_store() {
    let dir = TempDir::new("read-only");
    // No config at all: the bundled demo config names ./.mcpgate.
    let (code, out, err) = text(&run(&dir.0, &["keys", "list"], &[]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("store: none yet at") && err.contains(".mcpgate/mcpgate.db"),
        "says which store it looked for: {err}"
    );
    let (code, out, _) = text(&run(&dir.0, &["keys", "list", "--json"], &[]));
    assert_eq!((code, out.trim()), (0, "[]"));
    // `check` with a config probes the upstream and still writes nothing.
    std::fs::write(dir.0.join("mcpgate.toml"), fixture_server("fx", "")).unwrap();
    let (code, out, err) = text(&run(&dir.0, &["check"], &[]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("fx") && out.contains("ready"), "{out}");
    for args in [
        &["tenants", "list"][..],
        &["usage"],
        &["audit"],
        &["servers"],
    ] {
        let (code, out, err) = text(&run(&dir.0, args, &[]));
        assert_eq!(code, 0, "{args:?}: {out}{err}");
    }
    let mut left: Vec<String> = files_in(&dir.0)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["mcpgate.toml"], "read-only commands wrote files");

    // Once a store exists, `keys list` names the one it read.
    let gw = Gateway::start("read-only-gw", &fixture_server("fx", ""));
    let out = Command::new(mcpgate_bin())
        .args(["keys", "list", "--config"])
        .arg(gw.config_path())
        .output()
        .unwrap();
    let (code, _, err) = text(&out);
    assert_eq!(code, 0, "{err}");
    let db = gw.dir.0.join(".mcpgate/mcpgate.db");
    assert!(
        err.contains(&format!("store: sqlite {}", db.display())),
        "{err}"
    );
}

#[test]
fn logs_are_coloured_only_on_a_terminal_and_never_with_no_color() {
    let dir = TempDir::new("colour");
    std::fs::write(dir.0.join("mcpgate.toml"), fixture_server("fx", "")).unwrap();
    // Off a terminal (stderr is a pipe here): plain text.
    let (code, _, err) = text(&run(&dir.0, &["check"], &[("RUST_LOG", "info")]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("INFO"), "some log lines to look at: {err}");
    assert!(!err.contains('\u{1b}'), "escape codes in a pipe: {err:?}");
    // On a terminal (`script` gives the command a pty): coloured, unless NO_COLOR.
    let on_tty = |no_color: Option<&str>| {
        let mut cmd = Command::new("script");
        cmd.current_dir(&dir.0)
            .args(["-qec"])
            .arg(format!("{} check", mcpgate_bin().display()))
            .arg("/dev/null")
            .env("RUST_LOG", "info")
            .env("MCPGATE_STATE_DIR", dir.0.join("state"))
            .env_remove("NO_COLOR");
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        String::from_utf8_lossy(&cmd.output().unwrap().stdout).into_owned()
    };
    let coloured = on_tty(None);
    assert!(coloured.contains("INFO"), "{coloured}");
    assert!(
        coloured.contains("\u{1b}["),
        "a terminal gets colour: {coloured:?}"
    );
    let plain = on_tty(Some("1"));
    assert!(plain.contains("INFO"), "{plain}");
    assert!(!plain.contains("\u{1b}["), "NO_COLOR=1 honoured: {plain:?}");
}

fn keys_gateway(tag: &str) -> Gateway {
    Gateway::start(
        tag,
        &format!(
            "auth = \"keys\"\n[plans]\nfree = \"free\"\npro = \"pro\"\n\
             [tiers.free]\ntools = [\"*\"]\nrate = \"1/min\"\n\
             [tiers.pro]\ntools = [\"*\"]\n{}",
            fixture_server("fx", "")
        ),
    )
}

#[test]
fn call_exits_4_when_rate_limited_and_5_when_the_balance_is_spent() {
    let gw = keys_gateway("call-exit-codes");
    gw.wait_ready(Duration::from_secs(30));
    let dir = TempDir::new("call-exit-codes-cli");
    let call = |key: &str| {
        text(&run(
            &dir.0,
            &["call", "--url", &gw.url, "fx", "echo", "--message", "hi"],
            &[("MCPGATE_KEY", key)],
        ))
    };
    let limited = tenant_with_key(&gw, "limited", "free", None);
    let (code, out, err) = call(&limited);
    assert_eq!(code, 0, "the first call is within the rate: {out}{err}");
    assert_eq!(out.trim(), "hi");
    let (code, _, err) = call(&limited);
    assert_eq!(code, 4, "rate limited: {err}");
    let broke = tenant_with_key(&gw, "broke", "pro", Some(0));
    let (code, _, err) = call(&broke);
    assert_eq!(code, 5, "balance exhausted: {err}");
    let (code, _, err) = call("mcpg_000000000000_0000000000000000000000000000000000000000");
    assert_eq!(code, 3, "a refused key stays 3: {err}");
}

#[test]
fn regression_call_with_an_unknown_server_names_the_server() {
    let gw = Gateway::start(
        "unknown-server",
        &format!("{}{}", fixture_server("fx", ""), fixture_server("fy", "")),
    );
    gw.wait_ready(Duration::from_secs(30));
    let dir = TempDir::new("unknown-server-cli");
    let (code, out, err) = text(&run(
        &dir.0,
        &["call", "--url", &gw.url, "nosuch", "echo"],
        &[],
    ));
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("no server \"nosuch\"") && err.contains("fx, fy"),
        "{err}"
    );
    assert!(!err.contains("no tool"), "{err}");
    // A known server still works, and an unknown tool is still a tool error.
    let (code, out, err) = text(&run(
        &dir.0,
        &["call", "--url", &gw.url, "fy", "echo", "--message", "ok"],
        &[],
    ));
    assert_eq!((code, out.trim()), (0, "ok"), "{err}");
    let (code, _, err) = text(&run(&dir.0, &["call", "--url", &gw.url, "fy", "nope"], &[]));
    assert_eq!(code, 2);
    assert!(err.contains("no tool \"nope\" on fy"), "{err}");
}

#[test]
fn regression_tools_with_a_config_and_no_server_lists_every_server() {
    let dir = TempDir::new("tools-all");
    std::fs::write(
        dir.0.join("servers.toml"),
        format!("{}{}", fixture_server("fx", ""), fixture_server("fy", "")),
    )
    .unwrap();
    let (code, out, err) = text(&run(&dir.0, &["tools", "--config", "servers.toml"], &[]));
    assert_eq!(code, 0, "{out}{err}");
    for name in ["fx__echo", "fy__echo", "fx__test_simple_text"] {
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().next() == Some(name)),
            "{name} missing:\n{out}"
        );
    }
    let (code, out, _) = text(&run(
        &dir.0,
        &["tools", "--config", "servers.toml", "fy"],
        &[],
    ));
    assert_eq!(code, 0);
    assert!(out.lines().any(|l| l.starts_with("echo ")), "{out}");
}

#[test]
fn regression_servers_url_on_a_keys_gateway_needs_an_admin_key() {
    let gw = keys_gateway("servers-admin");
    gw.wait_ready(Duration::from_secs(30));
    let dir = TempDir::new("servers-admin-cli");
    let (code, out, err) = text(&run(&dir.0, &["servers", "--url", &gw.url], &[]));
    assert_eq!(code, 3, "not an empty table and exit 0: {out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("MCPGATE_ADMIN_KEY is not set") && err.contains("keys create --admin"),
        "{err}"
    );
    let admin = crate::common::admin::cli_ok(&gw, &["keys", "create", "--admin"]);
    let (code, out, err) = text(&run(
        &dir.0,
        &["servers", "--url", &gw.url],
        &[("MCPGATE_ADMIN_KEY", admin.trim())],
    ));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.lines().any(|l| l.starts_with("fx ")), "{out}");
}

#[test]
fn regression_mounted_commands_work_after_their_folder_moves() {
    let gw = Gateway::start("mount-moved", &fixture_server("fx", ""));
    gw.wait_ready(Duration::from_secs(30));
    let dir = TempDir::new("mount-moved-cli");
    let (code, out, err) = text(&run(
        &dir.0,
        &["mount", "--url", &gw.url, "--out", "bin"],
        &[],
    ));
    assert_eq!(code, 0, "{out}{err}");
    let script = std::fs::read_to_string(dir.0.join("bin/fx")).unwrap();
    let canonical = std::fs::canonicalize(&dir.0).unwrap();
    assert!(
        !script.contains(&canonical.join("bin").display().to_string()),
        "the wrapper holds its folder's absolute path:\n{script}"
    );
    // Moved (as a bind mount elsewhere would show it), and run from elsewhere.
    std::fs::rename(dir.0.join("bin"), dir.0.join("moved")).unwrap();
    let elsewhere = TempDir::new("mount-moved-cwd");
    let out = Command::new(dir.0.join("moved/fx"))
        .args(["echo", "--message", "still here"])
        .current_dir(&elsewhere.0)
        .env("MCPGATE_STATE_DIR", dir.0.join("state"))
        .output()
        .unwrap();
    let (code, out, err) = text(&out);
    assert_eq!((code, out.trim()), (0, "still here"), "{err}");
    // --help reads the cached list that moved with it: no gateway needed.
    drop(gw);
    let out = Command::new(dir.0.join("moved/fx"))
        .arg("--help")
        .current_dir(&elsewhere.0)
        .env("MCPGATE_STATE_DIR", dir.0.join("state"))
        .output()
        .unwrap();
    let (code, out, err) = text(&out);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("echo"), "{out}");
    // The folder is read-only: make it removable again.
    use std::os::unix::fs::PermissionsExt as _;
    for d in [dir.0.join("moved/.tools"), dir.0.join("moved")] {
        let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755));
    }
}

#[test]
fn mount_refuses_to_merge_two_ports_into_one() {
    let dir = TempDir::new("mount-ports");
    let (_a, url_a) = fixture_http(&[]);
    let (_b, url_b) = fixture_http(&[]);
    std::fs::write(
        dir.0.join("manifest.json"),
        serde_json::json!({"servers": [
            {"name": "a", "url": url_a},
            {"name": "b", "url": url_b},
        ]})
        .to_string(),
    )
    .unwrap();
    let (code, out, err) = text(&run(
        &dir.0,
        &[
            "mount",
            "--manifest",
            "manifest.json",
            "--out",
            "bin",
            "--rewrite-host",
            "gw:9000",
        ],
        &[],
    ));
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("--rewrite-host gw:9000"), "{err}");
    let (code, out, err) = text(&run(
        &dir.0,
        &[
            "mount",
            "--manifest",
            "manifest.json",
            "--out",
            "bin2",
            "--rewrite-host",
            "gw",
        ],
        &[],
    ));
    assert_eq!(code, 0, "{out}{err}");
    let port = |u: &str| {
        u.rsplit(':')
            .next()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_owned()
    };
    let a = std::fs::read_to_string(dir.0.join("bin2/a")).unwrap();
    let b = std::fs::read_to_string(dir.0.join("bin2/b")).unwrap();
    assert!(
        a.contains(&format!("http://gw:{}/mcp", port(&url_a))),
        "{a}"
    );
    assert!(
        b.contains(&format!("http://gw:{}/mcp", port(&url_b))),
        "{b}"
    );
    use std::os::unix::fs::PermissionsExt as _;
    for d in [dir.0.join("bin2/.tools"), dir.0.join("bin2")] {
        let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755));
    }
}

#[test]
fn regression_tier_counts_are_logged_once_after_the_first_discovery() {
    let gw = Gateway::start(
        "tier-log-once",
        &format!(
            "auth = \"keys\"\n[plans]\nfree = \"free\"\nnone = \"none\"\n\
             [tiers.free]\ntools = [\"fx__echo\"]\n\
             [tiers.none]\ntools = [\"nothing__*\"]\n{}{}{}",
            fixture_server("fx", ""),
            fixture_server("fy", ""),
            fixture_server("fz", "")
        ),
    );
    gw.wait_ready(Duration::from_secs(30));
    let log = || gw.stderr();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !log().contains("tier 'none' exposes") {
        assert!(std::time::Instant::now() < deadline, "{}", log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = log();
    let lines = |tier: &str| {
        log.lines()
            .filter(|l| l.contains(&format!("tier '{tier}' exposes")))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let free = lines("free");
    let none = lines("none");
    assert_eq!(free.len(), 1, "{log}");
    assert_eq!(none.len(), 1, "{log}");
    assert!(free[0].contains("exposes 1 of "), "{}", free[0]);
    assert!(
        none[0].contains("WARN") && none[0].contains("exposes 0 of "),
        "{}",
        none[0]
    );
    // Counted after all three came up: three times one fixture's tools.
    let of: u64 = none[0]
        .split("exposes 0 of ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(of > 0 && of.is_multiple_of(3), "{}", none[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "peers tier: needs Node 22 and server-everything from tests/interop"]
async fn regression_per_session_servers_list_tools_that_need_client_roots() {
    let config = format!(
        "[servers.everything]\ncommand = {}\nargs = [{}, \"stdio\"]\nisolation = \"per-session\"\n\
         [servers.shared]\ncommand = {}\nargs = [{}, \"stdio\"]\n",
        q(node_bin().display().to_string()),
        q(server_everything_js().display().to_string()),
        q(node_bin().display().to_string()),
        q(server_everything_js().display().to_string()),
    );
    let gw = Gateway::start("per-session-roots", &config);
    gw.wait_ready(Duration::from_secs(60));
    let mut c = crate::common::client::Client::new(&gw);
    c.initialize().await;
    let names = c.all_tool_names().await;
    assert!(
        names.iter().any(|n| n == "everything__get-roots-list"),
        "per-session discovery declares roots: {names:?}"
    );
    assert!(names.iter().any(|n| n == "everything__echo"), "{names:?}");
    // A shared server is still listed as the shared connection really is.
    assert!(
        !names.iter().any(|n| n == "shared__get-roots-list"),
        "the shared connection declares no roots: {names:?}"
    );
}
