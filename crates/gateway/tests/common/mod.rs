//! What the gateway's in-process tests share: a temp dir removed when the
//! test ends, a config and a SQLite store in it (as `mcpgate serve` opens
//! them), and the app built from both.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::PathBuf;
use std::sync::Arc;

use mcpgate_gateway::{App, Config, open_store, prepare_store};
use mcpgate_store::Store;

pub(crate) mod ui;

/// A temp dir removed when the test ends.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).expect("OS random");
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let p = std::env::temp_dir().join(format!("mcpgate-gw-{tag}-{hex}"));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `body` as a config in `dir` (with `data_dir` there), and its store, opened
/// and checked against it.
pub(crate) async fn config_and_store(dir: &TempDir, body: &str) -> (Config, Store) {
    let text = format!(
        "data_dir = {:?}\n{body}",
        dir.0.join("data").display().to_string()
    );
    let cfg = Config::parse(&dir.0.join("mcpgate.toml"), &text).expect("config");
    let store = open_store(&cfg).await.expect("store");
    prepare_store(&cfg, &store).await.expect("prepare");
    (cfg, store)
}

/// The app on `body` as a config in `dir`.
pub(crate) async fn app(dir: &TempDir, body: &str) -> Arc<App> {
    let (cfg, store) = config_and_store(dir, body).await;
    App::new(cfg, store)
}
