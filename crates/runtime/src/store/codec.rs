//! Column encodings shared by the store and replay: RFC 3339 timestamps, JSON columns and
//! integer range checks, each failure naming the row and column it is about.

use super::error::StoreError;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use steward_proto::Timestamp;

/// A timestamp as stored: RFC 3339 in UTC with as many fraction digits as it needs, so a
/// round trip is exact.
pub(crate) fn ts(at: &Timestamp) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Parses a stored timestamp.
pub(crate) fn parse_ts(text: &str, what: impl FnOnce() -> String) -> Result<Timestamp, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|err| StoreError::Decode { what: what(), message: format!("{text:?}: {err}") })
}

/// Parses an optional stored timestamp.
pub(crate) fn parse_opt_ts(
    text: Option<String>,
    what: impl FnOnce() -> String,
) -> Result<Option<Timestamp>, StoreError> {
    text.map(|text| parse_ts(&text, what)).transpose()
}

/// Encodes a JSON column.
pub(crate) fn to_json<T: Serialize + ?Sized>(
    value: &T,
    what: impl FnOnce() -> String,
) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|err| StoreError::Encode { what: what(), message: err.to_string() })
}

/// A reusable buffer for encoding JSON columns on the commit path (no allocation per row).
#[derive(Debug, Default)]
pub(crate) struct JsonBuf(Vec<u8>);

impl JsonBuf {
    /// Encodes `value` into the buffer and returns it as text, valid until the next call.
    pub(crate) fn encode<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        what: impl FnOnce() -> String,
    ) -> Result<&str, StoreError> {
        self.0.clear();
        let encode_error = |message: String| StoreError::Encode { what: what(), message };
        match serde_json::to_writer(&mut self.0, value) {
            Ok(()) => std::str::from_utf8(&self.0).map_err(|err| encode_error(err.to_string())),
            Err(err) => Err(encode_error(err.to_string())),
        }
    }
}

/// Decodes a JSON column.
pub(crate) fn from_json<T: DeserializeOwned>(
    text: &str,
    what: impl FnOnce() -> String,
) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|err| StoreError::Decode { what: what(), message: err.to_string() })
}

/// A `u64` (sequence number) as SQLite's signed integer.
pub(crate) fn to_i64(value: u64, what: impl FnOnce() -> String) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Encode {
        what: what(),
        message: format!("{value} does not fit in a signed 64-bit integer"),
    })
}

/// A stored integer as `u64`.
pub(crate) fn to_u64(value: i64, what: impl FnOnce() -> String) -> Result<u64, StoreError> {
    u64::try_from(value)
        .map_err(|_| StoreError::Decode { what: what(), message: format!("{value} is negative") })
}

/// A stored integer as `u32`.
pub(crate) fn to_u32(value: i64, what: impl FnOnce() -> String) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Decode {
        what: what(),
        message: format!("{value} is not in 0..=4294967295"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_round_trip_exactly() {
        let whole = Utc.with_ymd_and_hms(2026, 11, 25, 11, 38, 49).single();
        let Some(whole) = whole else { panic!("valid date") };
        let fine = whole + chrono::Duration::nanoseconds(123_456_789);
        for at in [whole, fine] {
            let text = ts(&at);
            assert_eq!(parse_ts(&text, || "t".into()).ok(), Some(at), "{text}");
        }
        assert_eq!(ts(&whole), "2026-11-25T11:38:49Z");
    }

    #[test]
    fn bad_values_name_the_column() {
        let err = parse_ts("yesterday", || "runs row r1 column updated_at".into());
        assert!(matches!(err, Err(StoreError::Decode { ref what, .. }) if what.contains("r1")));
        assert!(to_u32(-1, || "x".into()).is_err());
        assert!(to_i64(u64::MAX, || "x".into()).is_err());
    }
}
