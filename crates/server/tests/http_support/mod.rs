//! Shared helpers of the HTTP side's tests: a real server with its HTTP listener on a
//! second loopback port, the app's API credentials, and a real HTTP client.

#![allow(dead_code)]

use crate::common::{APP_ID, TestServer, base_config};
use std::net::SocketAddr;
use std::sync::Arc;
use switchboard_engine::HistoryRetention;
use switchboard_engine_memory::{MemoryBroker, MemoryConfig, SqliteHistory};
use switchboard_server::Server;

/// The API key of [`APP_ID`].
pub const API_KEY: &str = "backend-key-1";
/// The API secret of [`APP_ID`].
pub const API_SECRET: &str = "backend-secret-0123456789";

/// A running server with its HTTP side.
pub struct HttpServer {
    /// The WebSocket side (and the server's lifetime).
    pub ws: TestServer,
    /// Where the HTTP side listens.
    pub http: SocketAddr,
    /// An HTTP client.
    pub client: reqwest::Client,
    /// Removes the history store's directory when dropped.
    pub history_dir: DirGuard,
}

/// A directory removed when dropped.
pub struct DirGuard(pub std::path::PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl HttpServer {
    /// A server with [`base_config`], [`APP_ID`] given [`API_KEY`] / [`API_SECRET`],
    /// no publish rate limit, history on, and its HTTP side on a loopback port.
    pub async fn start() -> HttpServer {
        HttpServer::start_with(|_| {}).await
    }

    /// [`HttpServer::start`] with the config changed by `f` afterwards.
    pub async fn start_with(f: impl FnOnce(&mut switchboard_server::ServerConfig)) -> HttpServer {
        let mut config = base_config();
        for app in &mut config.apps {
            app.limits.publish_rate_per_channel = 0;
            if app.id == APP_ID {
                app.api_key = Some(API_KEY.into());
                app.api_secret = Some(API_SECRET.into());
            }
        }
        f(&mut config);
        let history_dir = crate::common::fresh_dir("http-history");
        let history =
            SqliteHistory::open(&history_dir, HistoryRetention::default()).expect("open history");
        let broker = Arc::new(MemoryBroker::new(MemoryConfig::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let http = listener.local_addr().expect("local addr");
        let server = Server::new(config, broker)
            .with_history(Arc::new(history))
            .with_http(listener);
        let ws = TestServer::with_parts(server).await;
        HttpServer {
            ws,
            http,
            client: reqwest::Client::new(),
            history_dir: DirGuard(history_dir),
        }
    }

    /// `http://127.0.0.1:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// A GET of `path`: status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self.client.get(self.url(path)).send().await.expect("GET");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    /// An authorized POST of `body` to `/v1/apps/{APP_ID}{path}`: status and JSON.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.post_as(API_KEY, API_SECRET, path, body).await
    }

    /// A POST with the given credentials.
    pub async fn post_as(
        &self,
        key: &str,
        secret: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let r = self
            .client
            .post(self.url(&format!("/v1/apps/{APP_ID}{path}")))
            .basic_auth(key, Some(secret))
            .json(&body)
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        let json = r.json().await.expect("a JSON body");
        (status, json)
    }

    /// The `/metrics` samples, parsed by a Prometheus text parser.
    pub async fn metrics(&self) -> prometheus_parse::Scrape {
        let (status, text) = self.get("/metrics").await;
        assert_eq!(status, 200);
        let lines = text.lines().map(|l| Ok(l.to_string()));
        prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text")
    }

    /// The value of `name` whose labels include every (label, value) of `labels`.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let scrape = self.metrics().await;
        sample(&scrape, name, labels)
    }
}

/// The value of `name` with `labels` in `scrape` (0 when absent, as a fresh counter).
pub fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map_or(0.0, |s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}
