//! Webhooks: their configuration (always; the reducer writes the outbox from it) and, with the
//! `webhooks` feature (default), their delivery.

use serde::{Deserialize, Serialize};

#[cfg(feature = "webhooks")]
mod delivery;
#[cfg(feature = "webhooks")]
pub(crate) use delivery::deliver;
#[cfg(feature = "webhooks")]
pub use delivery::signature;

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
