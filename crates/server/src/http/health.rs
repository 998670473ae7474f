//! Health endpoints: `/healthz` (the process answers) and `/readyz` (the engines
//! answer: a broker position read and, with storage on, a metadata read).

use crate::node::Node;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use switchboard_engine::{ChannelKey, ChannelKind};

/// How long one engine check may take before the node counts as not ready.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// A health answer.
#[derive(Serialize, serde::Deserialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    /// What failed, when not ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
}

/// `GET /healthz`: 200 while the process serves requests.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "the process is up", body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        failed: Vec::new(),
    })
}

/// `GET /readyz`: 200 when the engines answer, 503 with what failed otherwise.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "the engines answer", body = Health),
              (status = 503, description = "an engine did not answer", body = Health)))]
pub(crate) async fn readyz(State(node): State<Arc<Node>>) -> (StatusCode, Json<Health>) {
    let key = ChannelKey::new("_readyz", ChannelKind::Message, "_readyz");
    let mut failed = Vec::new();
    match tokio::time::timeout(CHECK_TIMEOUT, node.broker.position(&key)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => failed.push(format!("broker: {e}")),
        Err(_) => failed.push("broker: no answer in time".into()),
    }
    if let Some(store) = &node.metadata {
        match tokio::time::timeout(CHECK_TIMEOUT, store.get(&key)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => failed.push(format!("metadata store: {e}")),
            Err(_) => failed.push("metadata store: no answer in time".into()),
        }
    }
    if node.shutdown.borrow().to_owned() {
        failed.push("shutting down".into());
    }
    let status = if failed.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = if failed.is_empty() {
        "ok"
    } else {
        "unavailable"
    };
    (
        status,
        Json(Health {
            status: word.into(),
            failed,
        }),
    )
}
