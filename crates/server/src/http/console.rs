//! The web console (issue 17): static pages embedded in the binary and served under
//! `/console`, plain HTML, CSS and JavaScript modules with no build step. The page is
//! a client of the server API (it logs in with the app's API key and secret, kept in
//! the tab's session storage and sent as HTTP Basic, never in a URL); these routes
//! only hand out the files and need no credentials.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The console's files: (path under `/console/`, content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "",
        "text/html; charset=utf-8",
        include_bytes!("../../console/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/api.js"),
    ),
    (
        "chart.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/chart.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../console/style.css"),
    ),
];

/// Scripts, styles and requests only from this origin; no frames, no plugins.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; \
    base-uri 'none'";

/// `GET /console` and `GET /console/`: the page.
pub(crate) async fn index() -> Response {
    serve("")
}

/// `GET /console/{file}`: one of the page's files, or 404.
pub(crate) async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    serve(&file)
}

fn serve(file: &str) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
                (header::CONTENT_SECURITY_POLICY, CSP),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::REFERRER_POLICY, "no-referrer"),
                (header::X_FRAME_OPTIONS, "DENY"),
            ],
            *bytes,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no such console file",
        )
            .into_response(),
    }
}
