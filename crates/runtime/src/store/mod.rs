//! The SQLite store: state rows, the event log and the webhook outbox.
