//! Webhook delivery (feature `webhooks`): outbox rows (written by the reducer in the same
//! transaction as their event) are POSTed in `seq` order per webhook, signed with HMAC-SHA256,
//! retried with exponential backoff until a 2xx, parked (a dead letter) after
//! `webhook_max_attempts` failed attempts; acknowledgements and parking go back through the
//! reducer. Failures are counted in metrics and logged at warn, rate-limited.

use super::WebhookConfig;
use crate::clock::SharedClock;
use crate::handle::Handle;
use crate::metrics::Metrics;
use crate::protocol::{Query, QueryReply, ReducerInput};
use crate::store::OutboxRow;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sha2::Sha256;
use std::sync::Arc;
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

/// How often at most one webhook's failures are logged (the lines in between are counted).
const LOG_INTERVAL: Duration = Duration::from_secs(60);
/// How often at most the backlog gauges are refreshed while a webhook is busy.
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);

/// What a delivery worker needs besides its webhook.
pub(crate) struct DeliverySettings {
    /// Failed attempts after which a delivery is parked.
    pub max_attempts: u32,
    /// Where failures and backlog are counted.
    pub metrics: Arc<Metrics>,
}

/// Failure logging at warn, at most one line per [`LOG_INTERVAL`] with a count of the ones
/// suppressed since the last line. Parking is always logged. Never logs the URL or the secret.
#[derive(Default)]
struct FailureLog {
    last: Option<tokio::time::Instant>,
    suppressed: u64,
}

impl FailureLog {
    fn note(&mut self, webhook: &str, row: &OutboxRow, error: &str, parked: bool) {
        let now = tokio::time::Instant::now();
        let due = self.last.is_none_or(|last| now.duration_since(last) >= LOG_INTERVAL);
        if !(due || parked) {
            self.suppressed += 1;
            return;
        }
        let attempt = row.attempts.saturating_add(1);
        let suppressed = self.suppressed;
        if parked {
            tracing::warn!(
                webhook,
                seq = row.seq,
                attempt,
                error,
                suppressed,
                "webhook delivery parked after its last attempt; POST /v1/webhooks/{{name}}/redeliver requeues it"
            );
        } else {
            tracing::warn!(
                webhook,
                seq = row.seq,
                attempt,
                error,
                suppressed,
                "webhook delivery failed; retrying with backoff"
            );
        }
        self.last = Some(now);
        self.suppressed = 0;
    }
}

/// Delivers one webhook's outbox until stopped. Order: the next row is sent only after the
/// previous one was acknowledged (or parked).
pub(crate) async fn deliver(
    handle: Handle,
    webhook: WebhookConfig,
    settings: DeliverySettings,
    clock: SharedClock,
    stop: CancellationToken,
) {
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let mut events = handle.subscribe();
    let mut log = FailureLog::default();
    let mut gauges_at: Option<tokio::time::Instant> = None;
    loop {
        refresh_gauges(&handle, &webhook.name, &settings.metrics, &mut gauges_at).await;
        let due = match due_rows(&handle, &webhook.name).await {
            Some(rows) => rows,
            None => break,
        };
        let now = clock.now();
        if let Some(row) = due.first() {
            if row.next_attempt_at > now {
                let wait = (row.next_attempt_at - now).to_std().unwrap_or_default();
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(wait.min(Duration::from_secs(1))) => {}
                }
                continue;
            }
            let input = match post(&client, &webhook, row).await {
                Ok(()) => ReducerInput::OutboxDelivered { id: row.id },
                Err(error) => {
                    settings.metrics.webhook_failed(&webhook.name);
                    let park = row.attempts.saturating_add(1) >= settings.max_attempts;
                    log.note(&webhook.name, row, &error, park);
                    failed(row, clock.now(), error, park)
                }
            };
            if handle.inputs.send(input).await.is_err() {
                break;
            }
            // The next query queues behind the acknowledgement, and queries are answered after
            // the batch they arrive in commits: the re-read sees the acknowledgement.
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = events.recv() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Sets the backlog and parked gauges of `webhook`, at most once per [`GAUGE_INTERVAL`].
async fn refresh_gauges(
    handle: &Handle,
    webhook: &str,
    metrics: &Metrics,
    at: &mut Option<tokio::time::Instant>,
) {
    let now = tokio::time::Instant::now();
    if at.is_some_and(|at| now.duration_since(at) < GAUGE_INTERVAL) {
        return;
    }
    *at = Some(now);
    if let Ok(views) = handle.webhooks().await
        && let Some(view) = views.iter().find(|v| v.name == webhook)
    {
        metrics.webhook_backlog(webhook, view.stats.backlog, view.stats.parked);
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

/// One delivery attempt: `Err` with what went wrong unless the receiver answered 2xx.
async fn post(client: &HttpClient, webhook: &WebhookConfig, row: &OutboxRow) -> Result<(), String> {
    let request = http::Request::post(webhook.url.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("X-Steward-Signature", signature(&webhook.secret, row.body.as_bytes()))
        .body(Full::new(Bytes::from(row.body.clone())))
        .map_err(|error| format!("invalid webhook request: {error}"))?;
    match tokio::time::timeout(REQUEST_TIMEOUT, client.request(request)).await {
        Ok(Ok(response)) if response.status().is_success() => Ok(()),
        Ok(Ok(response)) => Err(format!("HTTP {}", response.status())),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())),
    }
}

/// The acknowledgement of a failed attempt: parked when it was the last allowed one, otherwise
/// retried after an exponential backoff.
fn failed(
    row: &OutboxRow,
    now: chrono::DateTime<chrono::Utc>,
    error: String,
    park: bool,
) -> ReducerInput {
    if park {
        return ReducerInput::OutboxParked { id: row.id, webhook: row.webhook.clone(), error };
    }
    let exponent = row.attempts.min(16);
    let backoff = FIRST_BACKOFF.saturating_mul(1u32 << exponent).min(MAX_BACKOFF);
    let next_attempt_at = now + chrono::Duration::from_std(backoff).unwrap_or_default();
    ReducerInput::OutboxFailed { id: row.id, next_attempt_at, error }
}
