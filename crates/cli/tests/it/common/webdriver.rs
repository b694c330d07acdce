//! A small W3C WebDriver client over reqwest, driving Debian's real
//! `chromium` through `chromedriver` (both installed by
//! scripts/install-test-deps.sh): start the driver on port 0 and read the
//! port it reports, open a headless session, navigate, find, click, type,
//! read text and attributes, run a script, resize, screenshot, and read the
//! browser console. Only what the web page tests use.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Proc, TempDir};

/// Whether chromium and chromedriver are installed here.
pub fn available() -> Result<(), String> {
    for bin in ["chromium", "chromedriver"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {bin}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Err(format!(
                "{bin} is not installed: run scripts/install-test-deps.sh (Debian chromium and chromium-driver)"
            ));
        }
    }
    Ok(())
}

/// A running chromedriver with one browser session.
pub struct Browser {
    _driver: Proc,
    /// Chromium's TMPDIR, so the profile dirs it leaves go with the test.
    _tmp: TempDir,
    http: reqwest::Client,
    session: String,
    base: String,
}

/// The W3C element key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// Starts chromedriver on a free port it picks and a headless Chromium
    /// that downloads into `downloads` and records the console.
    pub async fn start(downloads: &Path) -> Browser {
        let tmp = TempDir::new("chromium-tmp");
        let mut child = Command::new("chromedriver")
            .arg("--port=0")
            .env("TMPDIR", &tmp.0)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    let _ = tx.send(rest.trim_end_matches('.').trim().to_owned());
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("chromedriver reports its port");
        let driver = Proc { child };
        let http = super::http_client(Duration::from_secs(60));
        let base = format!("http://127.0.0.1:{port}");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1280,900", "--no-first-run",
                         "--disable-extensions", "--disable-background-networking"],
                "prefs": {
                    "download.default_directory": downloads.display().to_string(),
                    "download.prompt_for_download": false,
                    "safebrowsing.enabled": false
                }
            }
        }}});
        let v = send(http.post(format!("{base}/session")), Some(&caps))
            .await
            .expect("new session");
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_owned();
        Browser {
            _driver: driver,
            _tmp: tmp,
            http,
            session,
            base,
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let v = send(self.http.request(method, &url), body.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        if v["value"].get("error").is_some() {
            panic!("webdriver {path}: {}", v["value"]);
        }
        v["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.cmd(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.cmd(reqwest::Method::GET, path, None).await
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    pub async fn url(&self) -> String {
        self.get("/url").await.as_str().unwrap_or("").to_owned()
    }

    /// The first element matching `css`, waiting up to 10 s for it.
    pub async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = self.try_find(css).await {
                return e;
            }
            if Instant::now() > deadline {
                let page = self.run("return document.documentElement.outerHTML").await;
                panic!("no element {css} on {}: {page}", self.url().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn try_find(&self, css: &str) -> Option<String> {
        let url = format!("{}/session/{}/element", self.base, self.session);
        let body = json!({"using": "css selector", "value": css});
        let v = send(self.http.post(&url), Some(&body)).await.ok()?;
        v["value"][ELEMENT].as_str().map(str::to_owned)
    }

    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.post(&format!("/element/{e}/click"), json!({})).await;
    }

    /// Clears a field and types `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.post(&format!("/element/{e}/clear"), json!({})).await;
        self.post(&format!("/element/{e}/value"), json!({ "text": text }))
            .await;
    }

    /// The element's rendered text (found again if the page replaced it meanwhile).
    pub async fn text(&self, css: &str) -> String {
        for _ in 0..50 {
            let e = self.find(css).await;
            let url = format!("{}/session/{}/element/{e}/text", self.base, self.session);
            if let Ok(v) = send(self.http.get(&url), None).await
                && let Some(t) = v["value"].as_str()
            {
                return t.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("cannot read the text of {css}");
    }

    /// Clicks something that loads a new page, and waits for that page.
    pub async fn click_and_load(&self, css: &str) {
        self.run("window.__wdOld = true; return true").await;
        self.click(css).await;
        self.wait_for(
            &format!("the page after clicking {css}"),
            "return window.__wdOld !== true && document.readyState === 'complete'",
            Duration::from_secs(30),
        )
        .await;
    }

    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let e = self.find(css).await;
        self.get(&format!("/element/{e}/attribute/{name}"))
            .await
            .as_str()
            .map(str::to_owned)
    }

    /// Runs a script in the page; its return value.
    pub async fn run(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    /// Types on the keyboard into whatever has focus (`\u{E004}` is Tab,
    /// `\u{E007}` Enter), as a person would, with no element targeted.
    pub async fn keys(&self, text: &str) {
        let mut actions = Vec::new();
        for c in text.chars() {
            actions.push(json!({"type": "keyDown", "value": c.to_string()}));
            actions.push(json!({"type": "keyUp", "value": c.to_string()}));
        }
        self.post(
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
        )
        .await;
    }

    /// A cookie's value (WebDriver sees HttpOnly cookies too).
    pub async fn cookie(&self, name: &str) -> Option<String> {
        let url = format!("{}/session/{}/cookie/{name}", self.base, self.session);
        let v = send(self.http.get(&url), None).await.ok()?;
        v["value"]["value"].as_str().map(str::to_owned)
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({"width": width, "height": height}))
            .await;
    }

    /// A PNG of the whole page (the viewport stretched to the page's height).
    pub async fn screenshot(&self, path: &Path) {
        let b64 = self.get("/screenshot").await;
        let png = base64_decode(b64.as_str().unwrap_or("")).expect("base64 PNG");
        std::fs::write(path, png).expect("write screenshot");
    }

    /// The browser console's entries since the last call: (level, message).
    pub async fn console(&self) -> Vec<(String, String)> {
        let v = self.post("/se/log", json!({"type": "browser"})).await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["level"].as_str().unwrap_or("").to_owned(),
                            e["message"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits up to `timeout` until `check` (a script returning a boolean) is true.
    pub async fn wait_for(&self, what: &str, script: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.run(script).await == Value::Bool(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the browser with the session; chromedriver itself is ended by Proc.
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = std::thread::spawn(move || {
            let _ = Command::new("curl")
                .args(["-s", "--max-time", "5", "-X", "DELETE", &url])
                .output();
        })
        .join();
    }
}

/// Sends a WebDriver command with an optional JSON body; the answer as JSON.
async fn send(r: reqwest::RequestBuilder, body: Option<&Value>) -> Result<Value, String> {
    let r = match body {
        Some(b) => r
            .header("content-type", "application/json")
            .body(b.to_string()),
        None => r,
    };
    let bytes = r
        .send()
        .await
        .map_err(|e| e.to_string())?
        .bytes()
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&bytes)))
}

/// Standard Base64 (padding optional) to bytes.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
