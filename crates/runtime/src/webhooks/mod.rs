//! Webhooks: their configuration (always; the reducer writes the outbox from it) and, with the
//! `webhooks` feature (default), their delivery.

use serde::{Deserialize, Serialize};

#[cfg(feature = "webhooks")]
mod delivery;
#[cfg(feature = "webhooks")]
pub use delivery::signature;
#[cfg(feature = "webhooks")]
pub(crate) use delivery::{DeliverySettings, deliver};

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

/// Default for how many failed attempts park a delivery (config `webhook_max_attempts`).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 20;

impl WebhookConfig {
    /// Whether this webhook subscribes to `kind`.
    pub fn wants(&self, kind: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == kind)
    }
}
