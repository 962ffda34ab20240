//! Browser and network safety, checked before authentication on every request.
//!
//! A web page the operator visits can send requests to the API: a form post needs no CORS
//! preflight, and DNS rebinding lets a foreign host name reach a loopback listener. So, in every
//! mode: a request with a body must be `application/json` (415), a mutating request whose
//! `Origin` names another origin is refused (403), a declared `Content-Length` over the limit is
//! refused before the body is read (413), and an over-long URL or header block is a 431. Without
//! tokens the `Host` header must also name a loopback address (403). Every refusal is
//! problem+json and happens before any handler runs, so nothing is changed.

use super::auth::Auth;
use super::problem::Problem;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::IpAddr;
use std::sync::Arc;

/// Largest accepted request line plus header block, in bytes.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Middleware: refuses what a browser or a rebinding attacker could send (see the module doc).
pub async fn guard(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    match check(&request, auth.enabled()) {
        Ok(()) => next.run(request).await,
        Err(problem) => problem.into_response(),
    }
}

/// Every check of the module doc, in order; the first refusal wins.
fn check(request: &Request, tokens: bool) -> Result<(), Problem> {
    check_header_size(request)?;
    let headers = request.headers();
    if !tokens {
        check_loopback_host(headers)?;
    }
    if is_mutating(request.method()) {
        check_origin(headers)?;
    }
    check_body(headers)
}

fn is_mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// 431 when the URL and the headers together exceed [`MAX_HEADER_BYTES`].
fn check_header_size(request: &Request) -> Result<(), Problem> {
    let uri = request.uri().to_string().len();
    let headers: usize =
        request.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    if uri + headers > MAX_HEADER_BYTES {
        return Err(Problem::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "header-too-large",
            format!("the URL and headers are over the limit of {MAX_HEADER_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// The host part of a `Host` header value (without the port; IPv6 without brackets).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// Whether a host name is a loopback name or address.
pub fn is_loopback_host(host: &str) -> bool {
    let name = host_name(host).trim_end_matches('.').to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Tokenless mode: the `Host` header must name a loopback address (DNS rebinding).
fn check_loopback_host(headers: &HeaderMap) -> Result<(), Problem> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if is_loopback_host(host) {
        return Ok(());
    }
    Err(Problem::forbidden(
        "no tokens are configured, so the Host header must name a loopback address \
         (localhost, 127.0.0.1 or [::1])",
    ))
}

/// A mutating request with an `Origin` must come from the origin it is addressed to.
fn check_origin(headers: &HeaderMap) -> Result<(), Problem> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let same = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|rest| !host.is_empty() && rest.eq_ignore_ascii_case(host));
    if same {
        return Ok(());
    }
    Err(Problem::forbidden("requests from another origin may not change anything"))
}

/// 413 on a declared length over the limit; 415 on a body that is not `application/json`.
fn check_body(headers: &HeaderMap) -> Result<(), Problem> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .map(|v| v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(u64::MAX));
    if declared.is_some_and(|length| length > super::MAX_BODY_BYTES as u64) {
        return Err(Problem::too_large(format!(
            "the request body is over the limit of {} bytes",
            super::MAX_BODY_BYTES
        )));
    }
    let has_body = declared.is_some_and(|length| length > 0)
        || headers.contains_key(header::TRANSFER_ENCODING);
    if has_body && !is_json(headers) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "a request body must have `Content-Type: application/json`",
        ));
    }
    Ok(())
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request(method: Method, headers: &[(&str, &str)]) -> Request {
        let mut builder = Request::builder().method(method).uri("/v1/runs");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::empty()).expect("request")
    }

    fn status(result: Result<(), Problem>) -> u16 {
        result.err().map_or(200, |p| p.status)
    }

    #[test]
    fn loopback_hosts() {
        for host in ["localhost", "localhost:8080", "127.0.0.1:1", "[::1]:80", "a.localhost"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["evil.example", "evil.example:80", "10.0.0.1", "", "localhost.evil.com"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn foreign_host_refused_without_tokens_only() {
        let r = request(Method::GET, &[("host", "rebind.example")]);
        assert_eq!(status(check(&r, false)), 403);
        assert_eq!(status(check(&r, true)), 200);
    }

    #[test]
    fn foreign_origin_refused_on_mutations() {
        let h = [("host", "127.0.0.1:8080"), ("origin", "http://evil.example")];
        assert_eq!(status(check(&request(Method::POST, &h), true)), 403);
        assert_eq!(status(check(&request(Method::GET, &h), true)), 200);
        let same = [("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")];
        assert_eq!(status(check(&request(Method::POST, &same), false)), 200);
        let null = [("host", "127.0.0.1:8080"), ("origin", "null")];
        assert_eq!(status(check(&request(Method::POST, &null), false)), 403);
    }

    #[test]
    fn bodies_must_be_json_and_small() {
        let h = [("host", "localhost"), ("content-length", "3"), ("content-type", "text/plain")];
        assert_eq!(status(check(&request(Method::POST, &h), false)), 415);
        let h = [("host", "localhost"), ("content-length", "3")];
        assert_eq!(status(check(&request(Method::POST, &h), false)), 415);
        let h = [
            ("host", "localhost"),
            ("content-length", "3"),
            ("content-type", "application/json; charset=utf-8"),
        ];
        assert_eq!(status(check(&request(Method::POST, &h), false)), 200);
        let h = [("host", "localhost"), ("content-length", "100000000000")];
        assert_eq!(status(check(&request(Method::POST, &h), false)), 413);
        let h = [("host", "localhost"), ("content-length", "0")];
        assert_eq!(status(check(&request(Method::POST, &h), false)), 200);
    }
}
