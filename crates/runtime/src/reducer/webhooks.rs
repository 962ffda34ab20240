//! The reducer's side of webhook delivery: parking a delivery that used up its attempts,
//! requeueing a webhook's parked deliveries (admin), and the `GET /v1/webhooks` view. Parking
//! and requeueing are acknowledgements written in the batch's transaction like any other.

use super::commands::not_found;
use super::{Batch, Reducer};
use crate::protocol::{CommandError, QueryReply, Reply, WebhookView};
use crate::store::OutboxAck;

impl Reducer {
    /// Parks outbox row `id` of `webhook` (its last allowed attempt failed).
    pub(super) fn park(&mut self, id: i64, webhook: String, error: String, batch: &mut Batch) {
        batch.rows.outbox_ack(OutboxAck::Parked { id, webhook, at: batch.now, error });
    }

    /// Requeues every parked delivery of `webhook`; answers how many.
    pub(super) fn redeliver(
        &mut self,
        webhook: String,
        initiator: &str,
        batch: &mut Batch,
    ) -> Result<Reply, CommandError> {
        if !self.settings.webhooks.iter().any(|w| w.name == webhook) {
            return Err(not_found("webhook", &webhook));
        }
        let stored = self
            .store
            .webhook_stats(&webhook)
            .map_err(|e| CommandError::Store(e.to_string()))?
            .parked;
        let count = stored.saturating_add(batch.rows.parked_in_batch(&webhook));
        tracing::info!(%webhook, count, %initiator, "parked webhook deliveries requeued");
        batch.rows.outbox_ack(OutboxAck::Requeued { webhook, at: batch.now });
        Ok(Reply::Requeued(count))
    }

    /// Every configured webhook with its backlog, parked count and last success and failure.
    pub(super) fn webhooks_view(&self) -> Result<QueryReply, CommandError> {
        let mut views = Vec::with_capacity(self.settings.webhooks.len());
        for webhook in &self.settings.webhooks {
            let stats = self
                .store
                .webhook_stats(&webhook.name)
                .map_err(|e| CommandError::Store(e.to_string()))?;
            views.push(WebhookView {
                name: webhook.name.clone(),
                events: webhook.events.clone(),
                stats,
            });
        }
        Ok(QueryReply::Webhooks(views))
    }
}
