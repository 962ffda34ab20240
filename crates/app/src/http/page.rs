//! `GET /`: the status page, and `GET /ui/{file}`: its script and style sheet.
//!
//! Plain HTML, one hand-written JavaScript module and one CSS file from `crates/app/assets/`,
//! embedded at compile time: no CDN, no front-end toolchain. The page holds no data; it reads the
//! API with the viewer's token (kept in `sessionStorage`, sent as a Bearer header) and follows
//! `GET /v1/events/stream`. So these routes are public, and the Content-Security-Policy allows
//! only this origin.

use super::problem::Problem;
use axum::extract::Path;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../../assets/index.html");
const APP_JS: &str = include_str!("../../assets/app.js");
const STYLE_CSS: &str = include_str!("../../assets/style.css");

/// Same-origin only: no inline script, no third-party anything, no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The status page.
#[utoipa::path(get, path = "/", tag = "status page",
    responses((status = 200, description = "The status page (HTML)", body = String,
        content_type = "text/html")))]
pub(super) async fn index() -> Response {
    asset_response(INDEX_HTML, "text/html; charset=utf-8")
}

/// The page's script (`app.js`) and style sheet (`style.css`).
#[utoipa::path(get, path = "/ui/{file}", tag = "status page",
    params(("file" = String, Path, description = "app.js or style.css")),
    responses(
        (status = 200, description = "The asset", body = String),
        (status = 404, description = "No such asset")))]
pub(super) async fn asset(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "app.js" => asset_response(APP_JS, "text/javascript; charset=utf-8"),
        "style.css" => asset_response(STYLE_CSS, "text/css; charset=utf-8"),
        other => Problem::not_found(format!("no asset {other:?}; assets: app.js, style.css"))
            .into_response(),
    }
}

fn asset_response(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_references_only_embedded_assets() {
        assert!(INDEX_HTML.contains("/ui/app.js") && INDEX_HTML.contains("/ui/style.css"));
        assert!(!INDEX_HTML.contains("http://") && !INDEX_HTML.contains("https://"));
        assert!(!APP_JS.contains("https://"), "the script must not load anything remote");
    }

    #[tokio::test]
    async fn unknown_asset_is_a_problem() {
        let response = asset(Path("nope.js".to_string())).await;
        assert_eq!(response.status().as_u16(), 404);
    }
}
