//! A real browser for page tests: Debian's `chromium`, headless, driven
//! through `chromedriver` (WebDriver) by fantoccini. Each [`Browser`] starts
//! its own chromedriver on a free loopback port and a fresh profile, and
//! stops both when dropped. The scripts install both packages
//! (`scripts/lib.sh`, `ensure_browser`); without them the test fails and
//! says so.
//!
//! Imports: [`crate::servers`] (free ports, the scratch directory).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub use fantoccini::{Client, Locator};

use crate::servers::{free_port, TempDir};

/// Debian's chromium and its driver.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A headless chromium, driven over WebDriver.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    driver: Child,
    _profile: TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless chromium session.
    pub async fn start() -> Self {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: the page tests need Debian's chromium and \
                 chromium-driver (./scripts/test installs them)"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = TempDir::new("chromium").expect("a profile directory");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            let attempt = fantoccini::ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await;
            match attempt {
                Ok(c) => break c,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("chromium did not start through chromedriver: {e}"),
            }
        };
        Self {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Waits until the element `css` exists and its text satisfies `want`;
    /// the text it had last.
    pub async fn wait_text(&self, css: &str, want: impl Fn(&str) -> bool) -> String {
        self.wait_for(css, "", want, |e| async move { e.text().await.ok() })
            .await
    }

    /// Waits until the element `css` exists and its attribute `name`
    /// satisfies `want`; the value it had last.
    pub async fn wait_attr(&self, css: &str, name: &str, want: impl Fn(&str) -> bool) -> String {
        let what = format!(" [{name}]");
        self.wait_for(css, &what, want, |e| async move {
            e.attr(name).await.ok().flatten()
        })
        .await
    }

    /// Waits until what `read` finds on the element `css` satisfies `want`.
    async fn wait_for<F, R>(
        &self,
        css: &str,
        what: &str,
        want: impl Fn(&str) -> bool,
        read: R,
    ) -> String
    where
        R: Fn(fantoccini::elements::Element) -> F,
        F: std::future::Future<Output = Option<String>>,
    {
        let deadline = tokio::time::Instant::now() + crate::WAIT;
        let mut last = String::new();
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                if let Some(found) = read(e).await {
                    if want(&found) {
                        return found;
                    }
                    last = found;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{css}{what} never showed what was expected; last: {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// The page's visible text and its source, together (what a test
    /// searches for what must not be on screen).
    pub async fn text_and_source(&self) -> String {
        let text = match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let source = self.client.source().await.unwrap_or_default();
        format!("{text}\n{source}")
    }

    /// Saves a PNG of the page to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.expect("a screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot directory");
        }
        std::fs::write(path, png).expect("screenshot written");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
