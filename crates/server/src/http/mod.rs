//! The HTTP side (top layer): a separate listener for operators and app backends,
//! so the WebSocket hot path stays untouched. Routes: health (`/healthz`, `/readyz`),
//! `/metrics`, `/openapi.json`, and the per-app server API under `/v1/apps/{app_id}/`
//! (HTTP Basic with the app's API key and secret), whose thin handlers call the same
//! feature cores as the WebSocket requests, and the web console at `/console`, a
//! client of that API. With TLS configured it answers `https://` only. Every request
//! gets an id (its `x-request-id` header when it has a usable one, else a new one),
//! echoed in the answer's `x-request-id` and carried by its log span (`http{request_id=…}`)
//! and by the one access line it is logged with.

mod api;
mod auth;
mod console;
mod error;
mod health;
mod metrics;
mod openapi;
mod tls_listener;

use crate::node::Node;
use crate::tls::Tls;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::Instrument;

/// The header that carries a request's id, in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Every route of the HTTP side.
pub(crate) fn router(node: Arc<Node>, sampler: Arc<api::overview::Sampler>) -> Router {
    Router::new()
        .route("/console", get(console::index))
        .route("/console/", get(console::index))
        .route("/console/{file}", get(console::asset))
        .route("/v1/apps/{app_id}/stats", get(api::overview::stats))
        .route("/v1/apps/{app_id}/node", get(api::overview::node_info))
        .route("/v1/apps/{app_id}/channels", get(api::channels::list))
        .route(
            "/v1/apps/{app_id}/tail/{channel_type}/{channel}",
            get(api::channels::tail),
        )
        .route("/v1/apps/{app_id}/users", get(api::users::list))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(openapi::document))
        .route("/v1/apps/{app_id}/publish", post(api::messages::publish))
        .route(
            "/v1/apps/{app_id}/publish/batch",
            post(api::messages::publish_batch),
        )
        .route(
            "/v1/apps/{app_id}/users/{user_id}/kick",
            post(api::users::kick),
        )
        .route(
            "/v1/apps/{app_id}/users/{user_id}/ban",
            post(api::users::ban),
        )
        .route(
            "/v1/apps/{app_id}/users/{user_id}/unban",
            post(api::users::unban),
        )
        .route("/v1/apps/{app_id}/tokens/rtm", post(api::tokens::rtm_token))
        .route("/v1/apps/{app_id}/tokens/rtc", post(api::tokens::rtc_token))
        .route(
            "/v1/apps/{app_id}/users/{user_id}/channels",
            get(api::presence::where_now),
        )
        .route(
            "/v1/apps/{app_id}/presence/{channel_type}/{channel}",
            get(api::presence::who_now),
        )
        .route(
            "/v1/apps/{app_id}/metadata/{channel_type}/{name}",
            get(api::metadata::get),
        )
        .route(
            "/v1/apps/{app_id}/metadata/{channel_type}/{name}/{op}",
            post(api::metadata::write),
        )
        .route(
            "/v1/apps/{app_id}/locks/{channel_type}/{channel}",
            get(api::locks::list),
        )
        .route(
            "/v1/apps/{app_id}/locks/{channel_type}/{channel}/{lock_name}/revoke",
            post(api::locks::revoke),
        )
        .route(
            "/v1/apps/{app_id}/history/{channel_type}/{channel}",
            get(api::history::get_messages),
        )
        .fallback(api::not_found)
        .layer(axum::Extension(sampler))
        .layer(axum::Extension(Arc::new(
            api::channels::ChannelRates::default(),
        )))
        .layer(axum::middleware::from_fn_with_state(node.clone(), count))
        .layer(axum::middleware::from_fn(request_id))
        .with_state(node)
}

/// Whether a client's request id can be used as given: 1 to 128 visible ASCII
/// characters (nothing that could break a log line or a header).
fn usable_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Gives the request its id, runs it in the id's log span, logs it (method, path
/// without the query, status, time; at debug for health, metrics and console files)
/// and echoes the id in the answer.
async fn request_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| usable_request_id(v))
        .map_or_else(
            || format!("{:032x}", rand::random::<u128>()),
            str::to_string,
        );
    let span = tracing::info_span!("http", request_id = %id);
    let method = req.method().clone();
    // The path only: a query may carry a paging cursor or more, never worth a log.
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    // Probes, scrapes and the console's own files come every few seconds: debug only.
    let routine = matches!(path.as_str(), "/healthz" | "/readyz" | "/metrics")
        || path.starts_with("/console");
    span.in_scope(|| {
        if routine {
            tracing::debug!(%method, %path, status, ms, "http request");
        } else {
            tracing::info!(%method, %path, status, ms, "http request");
        }
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    resp
}

/// Counts each answer by status class.
async fn count(State(node): State<Arc<Node>>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let class = match resp.status().as_u16() {
        200..=299 => "2xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    };
    node.metrics.http_requests.inc(class);
    resp
}

/// Serves the HTTP side on `listener` (over TLS when `tls` is set) until the node
/// shuts down.
pub(crate) async fn serve(
    node: Arc<Node>,
    listener: TcpListener,
    tls: Option<Tls>,
) -> std::io::Result<()> {
    let mut shutdown = node.shutdown.subscribe();
    let sampler = api::overview::Sampler::new();
    tokio::spawn(sampler.clone().run(node.clone()));
    let down = async move {
        let _ = shutdown.wait_for(|down| *down).await;
    };
    let app = router(node, sampler);
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(down)
                .await
        }
        Some(tls) => {
            let listener = tls_listener::TlsListener::new(listener, tls)?;
            axum::serve(listener, app)
                .with_graceful_shutdown(down)
                .await
        }
    }
}
