//! Webhook delivery: outbox rows (written by the reducer in the same transaction as their
//! event) are POSTed in `seq` order per webhook, signed with HMAC-SHA256, retried with
//! exponential backoff until a 2xx; acknowledgements go back through the reducer.

use crate::clock::SharedClock;
use crate::handle::Handle;
use crate::reducer::{Query, QueryReply, ReducerInput};
use crate::store::OutboxRow;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// One configured webhook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Name (defaults to the URL); deliveries are ordered per name.
    #[serde(default)]
    pub name: String,
    /// Where to POST.
    pub url: String,
    /// HMAC secret.
    pub secret: String,
    /// Notification kinds to deliver (empty: all).
    #[serde(default)]
    pub events: Vec<String>,
}

impl WebhookConfig {
    /// Whether this webhook subscribes to `kind`.
    pub fn wants(&self, kind: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == kind)
    }
}

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
    let client =
        reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
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
            // Give the reducer a moment to commit the acknowledgement before re-reading.
            tokio::time::sleep(Duration::from_millis(5)).await;
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

async fn post(
    client: &reqwest::Client,
    webhook: &WebhookConfig,
    row: &OutboxRow,
    now: chrono::DateTime<chrono::Utc>,
) -> ReducerInput {
    let result = client
        .post(&webhook.url)
        .header("content-type", "application/json")
        .header("X-Steward-Signature", signature(&webhook.secret, row.body.as_bytes()))
        .body(row.body.clone())
        .send()
        .await;
    match result {
        Ok(response) if response.status().is_success() => {
            ReducerInput::OutboxDelivered { id: row.id }
        }
        Ok(response) => failed(row, now, format!("HTTP {}", response.status())),
        Err(error) => failed(row, now, error.to_string()),
    }
}

fn failed(row: &OutboxRow, now: chrono::DateTime<chrono::Utc>, error: String) -> ReducerInput {
    let exponent = row.attempts.min(16);
    let backoff = FIRST_BACKOFF.saturating_mul(1u32 << exponent).min(MAX_BACKOFF);
    let next_attempt_at = now + chrono::Duration::from_std(backoff).unwrap_or_default();
    ReducerInput::OutboxFailed { id: row.id, next_attempt_at, error }
}
