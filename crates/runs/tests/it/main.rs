//! The runs crate's integration tests, as one test binary: runs on the real
//! bubblewrap sandbox (`sandbox`: isolation and reachability; `lifecycle`:
//! cancel, timeout, concurrency, logs, artifacts; `sql_store`: runs and
//! workflows in mcpgate's database across restarts) and, in the peers tier
//! (`#[ignore]`d, run by scripts/test.sh with `--ignored`), the real Claude
//! Code CLI in the sandbox against the MOCK model (`claude_code`).

mod claude_code;
mod common;
mod lifecycle;
mod sandbox;
mod sql_store;
