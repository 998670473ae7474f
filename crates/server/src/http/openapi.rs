//! The OpenAPI 3 document of the HTTP side, generated from the handlers' and types'
//! `utoipa` annotations and served at `GET /openapi.json`.

use super::api::{
    self, channels, history, locks, messages, metadata, overview, presence, tokens, users,
};
use super::{error, health, metrics};
use axum::Json;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// The document's derivation: every route and schema.
#[derive(OpenApi)]
#[openapi(
    info(title = "Switchboard HTTP API", description = "Health, metrics and the per-app server API (docs/operations.md)."),
    paths(
        health::healthz, health::readyz, metrics::metrics,
        messages::publish, messages::publish_batch,
        users::kick, users::list, users::ban, users::unban,
        overview::stats, overview::node_info,
        channels::list, channels::tail,
        presence::who_now, presence::where_now,
        metadata::get, metadata::write,
        locks::list, locks::revoke,
        history::get_messages,
        tokens::rtm_token, tokens::rtc_token,
    ),
    components(schemas(error::ErrorBody, api::PathChannelType, api::MetadataOp)),
    modifiers(&BasicAuth),
)]
pub(crate) struct ApiDoc;

/// Adds the `basic` security scheme (the app's API key and secret).
struct BasicAuth;

impl utoipa::Modify for BasicAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

/// `GET /openapi.json`.
pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
