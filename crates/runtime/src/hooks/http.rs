//! HTTP hooks (feature `webhooks`): the hook input as a JSON body, signed with
//! `X-Steward-Signature: sha256=HEX` exactly like webhooks when a secret is configured; a 2xx
//! answer is success, and the last line of the response body becomes the target's message.

use super::{HookOutcome, last_line};
use crate::webhooks::signature;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// Calls `url` with `input`, for at most `timeout`.
pub(super) async fn run(
    url: &str,
    method: &str,
    secret: Option<&str>,
    input: &str,
    timeout: Duration,
) -> HookOutcome {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut request = http::Request::builder()
        .method(method)
        .uri(url)
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(secret) = secret {
        request = request.header("X-Steward-Signature", signature(secret, input.as_bytes()));
    }
    let request = match request.body(Full::new(Bytes::from(input.to_string()))) {
        Ok(request) => request,
        Err(error) => {
            return HookOutcome { ok: false, message: format!("invalid hook request: {error}") };
        }
    };
    let call = async {
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok::<_, String>((status, String::from_utf8_lossy(&body).into_owned()))
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok((status, body))) if status.is_success() => {
            HookOutcome { ok: true, message: last_line(&body) }
        }
        Ok(Ok((status, body))) => {
            let said = last_line(&body);
            let message = if said.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {said}")
            };
            HookOutcome { ok: false, message }
        }
        Ok(Err(error)) => HookOutcome { ok: false, message: format!("hook call failed: {error}") },
        Err(_) => {
            HookOutcome { ok: false, message: format!("no answer within {} s", timeout.as_secs()) }
        }
    }
}
