//! `GET /v1/events/stream`: the event log as Server-Sent Events.
//!
//! Each event goes out with `id: SEQ`, `event: KIND` and the whole record (`{"seq","at","kind",
//! "data"}`) as `data`. Without `Last-Event-ID` the stream starts with the next event committed
//! (a live view should not replay a long log; `Last-Event-ID: 0` does). A client that reconnects
//! with `Last-Event-ID: SEQ` gets every event after SEQ, so nothing is lost between connections.
//! The stream subscribes to the runtime's broadcast *before* reading the log, then fills any gap
//! (a lagging subscription, or a backlog longer than one page) from the log, so the events it
//! sends are exactly the log's, in order, without duplicates.
//!
//! Browsers cannot put an `Authorization` header on an `EventSource`; the status page reads this
//! stream with `fetch()` instead, which can, so tokens never go into URLs.

use super::ApiState;
use super::problem::Problem;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;
use steward_proto::EventRecord;
use steward_runtime::Handle;
use tokio::sync::broadcast;

/// Events read from the log per catch-up query.
const CATCH_UP_PAGE: u32 = 1000;
/// Interval of keep-alive comments, so proxies and browsers keep an idle stream open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The event log as Server-Sent Events.
#[utoipa::path(
    get,
    path = "/v1/events/stream",
    tag = "events",
    params(("Last-Event-ID" = Option<u64>, Header,
        description = "Resume after this sequence number (0: the whole log); without it the \
            stream starts with the next event")),
    responses(
        (status = 200, description = "An endless `text/event-stream`: one SSE event per event-log \
            record, `id` = seq, `event` = kind, `data` = the record as JSON",
            body = EventRecord, content_type = "text/event-stream"),
        (status = 400, description = "`Last-Event-ID` is not a sequence number"),
    )
)]
pub(super) async fn stream(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let after = match last_event_id(&headers) {
        Ok(after) => after,
        Err(problem) => return problem.into_response(),
    };
    let stream = records(state.handle.clone(), after);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response()
}

/// The sequence number a client resumes after (`None`: start with the next event).
fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, Problem> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        Problem::validation(
            Some("Last-Event-ID".into()),
            format!("Last-Event-ID {text:?} is not a non-negative integer"),
        )
    })
}

/// Where a stream is: the last seq sent (`None` before the first one of a stream that starts
/// live), events read but not sent yet, the live subscription.
struct Cursor {
    handle: Handle,
    subscription: broadcast::Receiver<EventRecord>,
    last: Option<u64>,
    pending: VecDeque<EventRecord>,
    caught_up: bool,
}

/// The SSE events of every record after `after` (or from the next one), then of every new one,
/// until shutdown.
fn records(handle: Handle, after: Option<u64>) -> impl Stream<Item = Result<Event, Infallible>> {
    let cursor = Cursor {
        subscription: handle.subscribe(),
        handle,
        last: after,
        pending: VecDeque::new(),
        caught_up: after.is_none(),
    };
    futures_util::stream::unfold(cursor, |mut cursor| async move {
        let record = cursor.next().await?;
        Some((Ok(sse_event(&record)), cursor))
    })
}

impl Cursor {
    /// The next record after `last`, or `None` once the runtime has stopped.
    async fn next(&mut self) -> Option<EventRecord> {
        loop {
            if let Some(record) = self.pending.pop_front() {
                if self.last.is_none_or(|last| record.seq > last) {
                    self.last = Some(record.seq);
                    return Some(record);
                }
                continue;
            }
            if !self.caught_up {
                self.read_log().await?;
                continue;
            }
            let last = self.last;
            match self.subscription.recv().await {
                Ok(record) if last.is_some_and(|last| record.seq <= last) => {}
                Ok(record) if last.is_none_or(|last| record.seq == last + 1) => {
                    self.pending.push_back(record);
                }
                // A gap (the subscription lagged, or a record came before the log was read).
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => self.caught_up = false,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Reads one page of the log after `last`; a short page means the stream is caught up.
    async fn read_log(&mut self) -> Option<()> {
        let after = self.last.unwrap_or(0);
        let page = self.handle.events(after, CATCH_UP_PAGE, Duration::ZERO).await.ok()?;
        let full = u32::try_from(page.events.len()).unwrap_or(u32::MAX) >= CATCH_UP_PAGE;
        self.caught_up = !full;
        self.pending.extend(page.events);
        Some(())
    }
}

/// One record as an SSE event.
fn sse_event(record: &EventRecord) -> Event {
    let data = serde_json::to_string(record).unwrap_or_else(|_| "{}".to_string());
    Event::default().id(record.seq.to_string()).event(record.kind.as_str()).data(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn last_event_id_is_parsed() {
        let mut headers = HeaderMap::new();
        assert_eq!(last_event_id(&headers).ok(), Some(None));
        headers.insert("last-event-id", HeaderValue::from_static("42"));
        assert_eq!(last_event_id(&headers).ok(), Some(Some(42)));
        headers.insert("last-event-id", HeaderValue::from_static("x"));
        let problem = last_event_id(&headers).err();
        assert_eq!(problem.and_then(|p| p.field), Some("Last-Event-ID".to_string()));
    }

    #[test]
    fn events_carry_seq_and_kind() {
        let record = EventRecord {
            seq: 7,
            at: chrono::DateTime::UNIX_EPOCH,
            kind: "run_created".into(),
            data: serde_json::json!({"run_id": "r1"}),
        };
        let text = format!("{:?}", sse_event(&record));
        assert!(text.contains("run_created") && text.contains('7'), "{text}");
    }
}
