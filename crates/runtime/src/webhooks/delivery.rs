//! Webhook delivery (feature `webhooks`): outbox rows (written by the reducer in the same
//! transaction as their event) are POSTed in `seq` order per webhook, signed with HMAC-SHA256,
//! retried with exponential backoff until a 2xx; acknowledgements go back through the reducer.

use super::WebhookConfig;
use crate::clock::SharedClock;
use crate::handle::Handle;
use crate::protocol::{Query, QueryReply, ReducerInput};
use crate::store::OutboxRow;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sha2::Sha256;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// `sha256=HEX` of HMAC-SHA256(body, secret).
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(), // HMAC accepts keys of any length; unreachable in practice.
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// First retry delay; doubles per attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Delivers one webhook's outbox until stopped. Order: the next row is sent only after the
/// previous one was acknowledged.
pub(crate) async fn deliver(
    handle: Handle,
    webhook: WebhookConfig,
    clock: SharedClock,
    stop: CancellationToken,
) {
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let mut events = handle.subscribe();
    loop {
        let due = match due_rows(&handle, &webhook.name).await {
            Some(rows) => rows,
            None => break,
        };
        let now = clock.now();
        let mut waited = false;
        if let Some(row) = due.first() {
            if row.next_attempt_at > now {
                let wait = (row.next_attempt_at - now).to_std().unwrap_or_default();
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
                continue;
            }
            let input = post(&client, &webhook, row, clock.now()).await;
            if handle.inputs.send(input).await.is_err() {
                break;
            }
            // The next query queues behind the acknowledgement, and queries are answered after
            // the batch they arrive in commits: the re-read sees the acknowledgement.
            waited = true;
        }
        if !waited {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = events.recv() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

async fn due_rows(handle: &Handle, webhook: &str) -> Option<Vec<OutboxRow>> {
    let (reply, answer) = oneshot::channel();
    let query = Query::OutboxDue { webhook: webhook.to_string(), limit: 1 };
    handle.inputs.send(ReducerInput::Query { query, reply }).await.ok()?;
    match answer.await.ok()? {
        Ok(QueryReply::Outbox(rows)) => Some(rows),
        _ => None,
    }
}

/// The webhook client: plain HTTP/1 over hyper (no TLS, as before; webhook receivers are
/// expected on the site's own network or behind a local proxy).
type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// How long one delivery attempt may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

async fn post(
    client: &HttpClient,
    webhook: &WebhookConfig,
    row: &OutboxRow,
    now: chrono::DateTime<chrono::Utc>,
) -> ReducerInput {
    let request = http::Request::post(webhook.url.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("X-Steward-Signature", signature(&webhook.secret, row.body.as_bytes()))
        .body(Full::new(Bytes::from(row.body.clone())));
    let request = match request {
        Ok(request) => request,
        Err(error) => return failed(row, now, format!("invalid webhook request: {error}")),
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, client.request(request)).await {
        Ok(Ok(response)) if response.status().is_success() => {
            ReducerInput::OutboxDelivered { id: row.id }
        }
        Ok(Ok(response)) => failed(row, now, format!("HTTP {}", response.status())),
        Ok(Err(error)) => failed(row, now, error.to_string()),
        Err(_) => failed(row, now, format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())),
    }
}

fn failed(row: &OutboxRow, now: chrono::DateTime<chrono::Utc>, error: String) -> ReducerInput {
    let exponent = row.attempts.min(16);
    let backoff = FIRST_BACKOFF.saturating_mul(1u32 << exponent).min(MAX_BACKOFF);
    let next_attempt_at = now + chrono::Duration::from_std(backoff).unwrap_or_default();
    ReducerInput::OutboxFailed { id: row.id, next_attempt_at, error }
}
