//! `switchboard serve`: configuration (flags over environment over a TOML file over
//! defaults), the first-start app, the engine, and the server run until SIGINT/SIGTERM.

use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use switchboard_engine::HistoryRetention;
use switchboard_engine_memory::{MemoryBroker, MemoryConfig, SqliteHistory};
use switchboard_server::{AppConfig, Server, ServerConfig};

/// Default listen address: loopback, port 7400.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7400";

/// `serve` flags. Each also reads `SWITCHBOARD_<NAME>` and the config file's key.
#[derive(Args, Default)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:7400).
    #[arg(long, env = "SWITCHBOARD_LISTEN")]
    listen: Option<String>,
    /// Address of the HTTP side: health, metrics, server API (default: off).
    #[arg(long, env = "SWITCHBOARD_HTTP_LISTEN")]
    http_listen: Option<String>,
    /// Directory for durable data (default ./data).
    #[arg(long, env = "SWITCHBOARD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// An app as APP_ID or APP_ID:CERTIFICATE; repeatable. Comma-separated in the env.
    #[arg(long = "app", env = "SWITCHBOARD_APPS", value_delimiter = ',')]
    apps: Vec<String>,
    /// Most simultaneous connections (default 50000).
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Largest WebSocket message, bytes (default 1048576).
    #[arg(long, env = "SWITCHBOARD_MAX_FRAME_BYTES")]
    max_frame_bytes: Option<usize>,
    /// Largest WebSocket message before login, bytes (default 65536).
    #[arg(long, env = "SWITCHBOARD_MAX_FRAME_BYTES_BEFORE_LOGIN")]
    max_frame_bytes_before_login: Option<usize>,
    /// Most sockets in the WebSocket handshake at once (default 1024).
    #[arg(long, env = "SWITCHBOARD_MAX_HANDSHAKES")]
    max_handshakes: Option<usize>,
    /// Time allowed for the WebSocket handshake, ms (default 5000).
    #[arg(long, env = "SWITCHBOARD_HANDSHAKE_TIMEOUT_MS")]
    handshake_timeout_ms: Option<u64>,
    /// Most connections from one IP address (default 0: no limit).
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS_PER_IP")]
    max_connections_per_ip: Option<usize>,
    /// Outbound queue per connection, bytes (default 4194304).
    #[arg(long, env = "SWITCHBOARD_OUTBOUND_QUEUE_BYTES")]
    outbound_queue_bytes: Option<usize>,
    /// Outbound queue per connection, items (default 16384).
    #[arg(long, env = "SWITCHBOARD_OUTBOUND_QUEUE_MESSAGES")]
    outbound_queue_messages: Option<usize>,
    /// Time from connect to login, ms (default 10000).
    #[arg(long, env = "SWITCHBOARD_LOGIN_TIMEOUT_MS")]
    login_timeout_ms: Option<u64>,
    /// Time allowed for one socket write, ms (default 10000).
    #[arg(long, env = "SWITCHBOARD_WRITE_TIMEOUT_MS")]
    write_timeout_ms: Option<u64>,
    /// Recovery log length per channel (default 1000).
    #[arg(long, env = "SWITCHBOARD_RECOVERY_MAX_COUNT")]
    recovery_max_count: Option<usize>,
    /// Recovery log age, seconds (default 300).
    #[arg(long, env = "SWITCHBOARD_RECOVERY_MAX_AGE_SECS")]
    recovery_max_age_secs: Option<u64>,
    /// Allowed heartbeat interval range, seconds, as MIN-MAX (default 5-1800).
    #[arg(long, env = "SWITCHBOARD_HEARTBEAT_INTERVAL_RANGE", value_parser = parse_range)]
    heartbeat_interval_range: Option<(u32, u32)>,
    /// Allowed presence timeout range, seconds, as MIN-MAX (default 5-300).
    #[arg(long, env = "SWITCHBOARD_PRESENCE_TIMEOUT_RANGE", value_parser = parse_range)]
    presence_timeout_range: Option<(u32, u32)>,
    /// Will-expire notice lead before a token's expiry, seconds (default 30).
    #[arg(long, env = "SWITCHBOARD_TOKEN_WILL_EXPIRE_LEAD_SECS")]
    token_will_expire_lead_secs: Option<u64>,
    /// Graceful shutdown wait, ms (default 5000).
    #[arg(long, env = "SWITCHBOARD_SHUTDOWN_GRACE_MS")]
    shutdown_grace_ms: Option<u64>,
    /// Live messages held back per session during a replay, bytes (default 16777216).
    #[arg(long, env = "SWITCHBOARD_RECOVERY_HOLD_BYTES")]
    recovery_hold_bytes: Option<usize>,
    /// History kept per channel, messages (default 10000).
    #[arg(long, env = "SWITCHBOARD_HISTORY_MAX_PER_CHANNEL")]
    history_max_per_channel: Option<usize>,
    /// History age, seconds (default 604800 = 7 days).
    #[arg(long, env = "SWITCHBOARD_HISTORY_MAX_AGE_SECS")]
    history_max_age_secs: Option<u64>,
    /// Where shared state lives: `memory` (this process, the default) or `redis`
    /// (several nodes on one Redis; needs --redis-url).
    #[arg(long, env = "SWITCHBOARD_ENGINE", value_parser = ["memory", "redis"])]
    engine: Option<String>,
    /// The Redis of `--engine redis`: redis://[:PASSWORD@]HOST:PORT[/DB], or through
    /// Redis Sentinel redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT…]/MASTER_NAME[/DB]
    /// (the sentinels; the master is found at start and after every failover).
    #[arg(long, env = "SWITCHBOARD_REDIS_URL")]
    redis_url: Option<String>,
    /// This node's id on Redis (default: random), in the log and the health report.
    #[arg(long, env = "SWITCHBOARD_NODE_ID")]
    node_id: Option<String>,
    /// TLS certificate chain, PEM (with --tls-key): both listeners serve wss:// and
    /// https:// only.
    #[arg(long, env = "SWITCHBOARD_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key, PEM (PKCS#8, PKCS#1 or SEC1), with --tls-cert.
    #[arg(long, env = "SWITCHBOARD_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Origins a browser may open a WebSocket from, as scheme://host[:port]; others get
    /// 403 at the handshake. Comma-separated; default: any.
    #[arg(long, env = "SWITCHBOARD_ALLOWED_ORIGINS", value_delimiter = ',')]
    allowed_origins: Vec<String>,
    /// URL that gets the webhook events (signed JSON POSTs; needs --webhook-secret).
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_URL", requires = "webhook_secret")]
    webhook_url: Option<String>,
    /// Secret that signs the webhook events (HMAC-SHA256).
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    /// Webhook events to send, comma-separated (user.online, member.joined, …; see
    /// docs/operations.md); default: all.
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_EVENTS", value_delimiter = ',')]
    webhook_events: Vec<String>,
    /// How long a webhook leave waits for a join of the same user in the same channel
    /// that cancels both, ms (default 0: off).
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_DEBOUNCE_MS")]
    webhook_debounce_ms: Option<u64>,
}

/// The TOML file: the same keys as the flags (snake_case) plus `[[apps]]` tables with
/// `id`, `certificate` and `[apps.limits]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    http_listen: Option<String>,
    data_dir: Option<PathBuf>,
    #[serde(default)]
    apps: Vec<AppConfig>,
    max_connections: Option<usize>,
    max_frame_bytes: Option<usize>,
    max_frame_bytes_before_login: Option<usize>,
    max_handshakes: Option<usize>,
    handshake_timeout_ms: Option<u64>,
    max_connections_per_ip: Option<usize>,
    outbound_queue_bytes: Option<usize>,
    outbound_queue_messages: Option<usize>,
    login_timeout_ms: Option<u64>,
    write_timeout_ms: Option<u64>,
    recovery_max_count: Option<usize>,
    recovery_max_age_secs: Option<u64>,
    history_max_per_channel: Option<usize>,
    history_max_age_secs: Option<u64>,
    heartbeat_interval_range: Option<(u32, u32)>,
    presence_timeout_range: Option<(u32, u32)>,
    token_will_expire_lead_secs: Option<u64>,
    shutdown_grace_ms: Option<u64>,
    recovery_hold_bytes: Option<usize>,
    engine: Option<String>,
    redis_url: Option<String>,
    node_id: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    allowed_origins: Option<Vec<String>>,
    webhook_url: Option<String>,
    webhook_secret: Option<String>,
    webhook_events: Option<Vec<String>>,
    webhook_debounce_ms: Option<u64>,
}

/// The app created on first start, kept in `DATA_DIR/app.toml`.
#[derive(Serialize, Deserialize)]
struct StoredApp {
    id: String,
    certificate: String,
}

fn parse_app(spec: &str) -> anyhow::Result<AppConfig> {
    let (id, cert) = match spec.split_once(':') {
        Some((id, cert)) if !cert.is_empty() => (id, Some(cert.to_string())),
        Some((id, _)) => (id, None),
        None => (spec, None),
    };
    let app = AppConfig::new(id, cert);
    validate_app(&app).map_err(|e| anyhow::anyhow!("--app {spec}: {e}"))?;
    Ok(app)
}

/// The checks an app passes before the server starts, whether it comes from `--app`
/// or from the config file's `[[apps]]`: a valid app id (R1) and, when given, a
/// certificate of 32 hex characters (token.md); otherwise every login would fail.
fn validate_app(app: &AppConfig) -> Result<(), String> {
    switchboard_protocol::names::validate_app_id(&app.id).map_err(|e| e.reason.to_string())?;
    if let Some(c) = &app.certificate
        && !switchboard_token::is_hex32(c)
    {
        return Err("the certificate must be 32 hex characters".to_string());
    }
    for o in app.allowed_origins.iter().flatten() {
        if !is_origin(o) {
            return Err(format!(
                "allowed_origins: {o:?} is not an origin (scheme://host[:port], or *)"
            ));
        }
    }
    switchboard_server::check_app_webhooks(app)
}

/// Whether `o` can be on an origin allow-list: `*` or `http(s)://host[:port]`.
fn is_origin(o: &str) -> bool {
    o == "*" || o.starts_with("http://") || o.starts_with("https://")
}

/// Takes an exclusive lock on `DATA_DIR/switchboard.lock`, held while the returned file
/// lives (the OS drops it when the process ends, even on SIGKILL): two servers on one
/// data directory would each keep their own view of the same SQLite stores.
fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let path = data_dir.join("switchboard.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "the data directory {} is in use by another `switchboard serve` (it holds {}); \
             stop that server or give this one another --data-dir",
            data_dir.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// How this process was started, for commands the banner prints: the path it was run
/// by (`./target/release/switchboard`, works from the same directory), or
/// `switchboard` when it was found on PATH.
fn self_command() -> String {
    let arg0 = std::env::args().next().unwrap_or_default();
    if arg0.is_empty() || !arg0.contains('/') {
        return "switchboard".to_string();
    }
    if arg0
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
    {
        arg0
    } else {
        format!("'{}'", arg0.replace('\'', "'\\''"))
    }
}

/// Parses `MIN-MAX` (seconds).
fn parse_range(s: &str) -> Result<(u32, u32), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("expected MIN-MAX, got {s:?}"))?;
    let a: u32 = a.trim().parse().map_err(|e| format!("{a:?}: {e}"))?;
    let b: u32 = b.trim().parse().map_err(|e| format!("{b:?}: {e}"))?;
    if a == 0 || a > b {
        return Err(format!("need 0 < MIN <= MAX, got {a}-{b}"));
    }
    Ok((a, b))
}

fn random_hex32() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// Loads the first-start app from the data dir, creating it when absent.
fn first_start_app(data_dir: &Path) -> anyhow::Result<(AppConfig, bool)> {
    let path = data_dir.join("app.toml");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let stored: StoredApp =
            toml::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        return Ok((AppConfig::new(stored.id, Some(stored.certificate)), false));
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let stored = StoredApp {
        id: random_hex32(),
        certificate: random_hex32(),
    };
    let text = format!(
        "# Created by `switchboard serve` on first start. Keep the certificate secret.\n{}",
        toml::to_string(&stored)?
    );
    // The certificate signs every token of the app: only its owner may read the file.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok((AppConfig::new(stored.id, Some(stored.certificate)), true))
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let file: FileConfig = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => FileConfig::default(),
    };
    let defaults = ServerConfig::default();
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("./data"));
    let mut apps: Vec<AppConfig> = args
        .apps
        .iter()
        .map(|s| parse_app(s))
        .collect::<Result<_, _>>()?;
    if apps.is_empty() {
        apps = file.apps;
        for (i, app) in apps.iter().enumerate() {
            validate_app(app).map_err(|e| {
                let file = args
                    .config
                    .as_deref()
                    .unwrap_or(Path::new("the config file"));
                anyhow::anyhow!(
                    "{}: [[apps]] #{} (id {:?}): {e}",
                    file.display(),
                    i + 1,
                    app.id
                )
            })?;
        }
    }
    let _data_lock = lock_data_dir(&data_dir)?;
    let mut created = None;
    if apps.is_empty() {
        let (app, new) = first_start_app(&data_dir)?;
        created = Some(new);
        apps.push(app);
    }
    for app in &apps {
        if app.certificate.is_none() {
            tracing::warn!(app = %app.id, "app has no certificate: tokens are NOT checked (development only)");
        }
    }
    let ms = Duration::from_millis;
    let config = ServerConfig {
        apps: apps.clone(),
        max_connections: args
            .max_connections
            .or(file.max_connections)
            .unwrap_or(defaults.max_connections),
        max_frame_bytes: args
            .max_frame_bytes
            .or(file.max_frame_bytes)
            .unwrap_or(defaults.max_frame_bytes),
        max_frame_bytes_before_login: args
            .max_frame_bytes_before_login
            .or(file.max_frame_bytes_before_login)
            .unwrap_or(defaults.max_frame_bytes_before_login),
        max_handshakes: args
            .max_handshakes
            .or(file.max_handshakes)
            .unwrap_or(defaults.max_handshakes),
        handshake_timeout: args
            .handshake_timeout_ms
            .or(file.handshake_timeout_ms)
            .map_or(defaults.handshake_timeout, ms),
        max_connections_per_ip: args
            .max_connections_per_ip
            .or(file.max_connections_per_ip)
            .unwrap_or(defaults.max_connections_per_ip),
        outbound_queue_bytes: args
            .outbound_queue_bytes
            .or(file.outbound_queue_bytes)
            .unwrap_or(defaults.outbound_queue_bytes),
        outbound_queue_messages: args
            .outbound_queue_messages
            .or(file.outbound_queue_messages)
            .unwrap_or(defaults.outbound_queue_messages),
        login_timeout: args
            .login_timeout_ms
            .or(file.login_timeout_ms)
            .map_or(defaults.login_timeout, ms),
        write_timeout: args
            .write_timeout_ms
            .or(file.write_timeout_ms)
            .map_or(defaults.write_timeout, ms),
        heartbeat_interval_range: args
            .heartbeat_interval_range
            .or(file.heartbeat_interval_range)
            .unwrap_or(defaults.heartbeat_interval_range),
        presence_timeout_range: args
            .presence_timeout_range
            .or(file.presence_timeout_range)
            .unwrap_or(defaults.presence_timeout_range),
        token_will_expire_lead: args
            .token_will_expire_lead_secs
            .or(file.token_will_expire_lead_secs)
            .map_or(defaults.token_will_expire_lead, Duration::from_secs),
        shutdown_grace: args
            .shutdown_grace_ms
            .or(file.shutdown_grace_ms)
            .map_or(defaults.shutdown_grace, ms),
        recovery_hold_bytes: args
            .recovery_hold_bytes
            .or(file.recovery_hold_bytes)
            .unwrap_or(defaults.recovery_hold_bytes),
        ..defaults
    };
    let mut memory = MemoryConfig::default();
    if let Some(n) = args.recovery_max_count.or(file.recovery_max_count) {
        memory.retention.max_count = n;
    }
    if let Some(s) = args.recovery_max_age_secs.or(file.recovery_max_age_secs) {
        memory.retention.max_age = Duration::from_secs(s);
    }
    let tls = match (
        args.tls_cert.clone().or(file.tls_cert.clone()),
        args.tls_key.clone().or(file.tls_key.clone()),
    ) {
        (Some(cert), Some(key)) => Some(
            switchboard_server::Tls::from_pem_files(&cert, &key)
                .map_err(|e| anyhow::anyhow!("--tls-cert/--tls-key: {e}"))?,
        ),
        (None, None) => None,
        _ => bail!("TLS needs both a certificate (tls_cert) and a key (tls_key)"),
    };
    let allowed_origins = if args.allowed_origins.is_empty() {
        file.allowed_origins.clone().unwrap_or_default()
    } else {
        args.allowed_origins.clone()
    };
    for o in &allowed_origins {
        if !is_origin(o) {
            bail!("--allowed-origins: {o:?} is not an origin (scheme://host[:port], or *)");
        }
    }
    let webhooks = match (
        args.webhook_url.clone().or(file.webhook_url.clone()),
        args.webhook_secret.clone().or(file.webhook_secret.clone()),
    ) {
        (None, _) => None,
        (Some(_), None) => bail!("--webhook-url needs --webhook-secret (or webhook_secret)"),
        (Some(url), Some(secret)) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("--webhook-url: {url:?} is not an http:// or https:// URL");
            }
            if secret.is_empty() {
                bail!("--webhook-secret is empty");
            }
            let mut hooks = switchboard_server::WebhookConfig::new(url, secret);
            hooks.events = if args.webhook_events.is_empty() {
                file.webhook_events.clone().unwrap_or_default()
            } else {
                args.webhook_events.clone()
            };
            for e in &hooks.events {
                if !switchboard_server::WEBHOOK_EVENTS.contains(&e.as_str()) {
                    bail!(
                        "--webhook-events: unknown event {e:?}; known: {}",
                        switchboard_server::WEBHOOK_EVENTS.join(", ")
                    );
                }
            }
            if let Some(ms) = args.webhook_debounce_ms.or(file.webhook_debounce_ms) {
                hooks.debounce = Duration::from_millis(ms);
            }
            Some(hooks)
        }
    };
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    if let (Some(new), Some(app)) = (created, apps.first()) {
        let stored = data_dir.join("app.toml");
        if new {
            // Printed once, when created; later starts point at the file (mode 0600).
            let cert = app.certificate.clone().unwrap_or_default();
            println!("app created in {}:", stored.display());
            println!("  app id:      {}", app.id);
            println!("  certificate: {cert}");
            println!(
                "  make a token: {} token rtm --app-id {} --app-cert {cert} --user-id alice",
                self_command(),
                app.id
            );
        } else {
            println!("app loaded from {}:", stored.display());
            println!("  app id:      {}", app.id);
            println!(
                "  certificate: in {} (printed when it was created)",
                stored.display()
            );
        }
    }
    let mut retention = HistoryRetention::default();
    if let Some(n) = args
        .history_max_per_channel
        .or(file.history_max_per_channel)
    {
        retention.max_per_channel = n;
    }
    if let Some(s) = args.history_max_age_secs.or(file.history_max_age_secs) {
        retention.max_age = Duration::from_secs(s);
    }
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let engine = args
        .engine
        .clone()
        .or(file.engine.clone())
        .unwrap_or_else(|| "memory".into());
    let server = match engine.as_str() {
        "memory" => {
            let history = SqliteHistory::open(&data_dir, retention).map_err(|e| {
                anyhow::anyhow!("opening the history store in {}: {e}", data_dir.display())
            })?;
            let storage =
                switchboard_engine_memory::SqliteStorage::open(&data_dir).map_err(|e| {
                    anyhow::anyhow!("opening the storage in {}: {e}", data_dir.display())
                })?;
            let broker = Arc::new(MemoryBroker::new(memory));
            println!(
                "engine: memory (this process; durable data in {})",
                data_dir.display()
            );
            Server::new(config, broker)
                .with_history(Arc::new(history))
                .with_storage(Arc::new(storage))
                .with_topics(Arc::new(switchboard_engine_memory::MemoryTopics::new()))
                .with_presence(Arc::new(switchboard_engine_memory::MemoryPresence::new()))
        }
        "redis" => {
            let Some(url) = args.redis_url.clone().or(file.redis_url.clone()) else {
                bail!(
                    "--engine redis needs --redis-url redis://HOST:PORT (or SWITCHBOARD_REDIS_URL)"
                );
            };
            let node_id = args
                .node_id
                .clone()
                .or(file.node_id.clone())
                .unwrap_or_else(|| format!("{:08x}", rand::random::<u32>()));
            let mut redis =
                switchboard_engine_redis::RedisConfig::new(url.as_str(), node_id.as_str());
            redis.retention = memory.retention;
            redis.history = retention;
            // Never the password: the URL as logged and printed has it as `***`.
            let shown = switchboard_engine_redis::redacted(&url);
            let engine = switchboard_engine_redis::RedisEngine::connect_with(redis)
                .await
                .map_err(|e| anyhow::anyhow!("connecting to Redis at {shown}: {e}"))?;
            let health = engine.health().await;
            tracing::info!(node = %node_id, url = %shown, ?health, "engine: redis");
            println!("engine: redis at {shown} (node {node_id})");
            Server::new(config, engine.clone())
                .with_history(engine.clone())
                .with_storage(engine.clone())
                .with_topics(engine.clone())
                .with_presence(engine.clone())
                .with_sessions(engine)
        }
        other => bail!("unknown engine {other:?}: use memory or redis"),
    };
    let (ws, http_scheme) = if tls.is_some() {
        ("wss", "https")
    } else {
        ("ws", "http")
    };
    println!("listening on {ws}://{addr}");
    println!(
        "  websocket:   {ws}://{addr}{} (the Rust SDK and the CLI add the path themselves)",
        switchboard_protocol::WS_PATH
    );
    if !allowed_origins.is_empty() {
        println!("  origins:     {}", allowed_origins.join(", "));
    }
    let server = server.with_allowed_origins(allowed_origins);
    let server = match webhooks {
        Some(hooks) => {
            println!("  webhooks:    {}", hooks.url);
            server.with_webhooks(hooks)
        }
        None => server,
    };
    let server = match tls {
        Some(tls) => server.with_tls(tls),
        None => server,
    };
    let server = match args.http_listen.or(file.http_listen) {
        Some(at) => {
            let http = tokio::net::TcpListener::bind(&at)
                .await
                .with_context(|| format!("cannot listen on {at}"))?;
            println!("  http api:    {http_scheme}://{}", http.local_addr()?);
            server.with_http(http)
        }
        None => server,
    };
    server.run(listener, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
