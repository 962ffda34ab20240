//! Metrics the engine keeps. With the `metrics` feature (default) they are Prometheus metrics
//! (prometheus-client) that `/metrics` encodes; without it [`Metrics`] has the same methods and
//! records nothing, so an embedder that exports no metrics compiles no Prometheus client.

#[cfg(feature = "metrics")]
mod prometheus;
#[cfg(feature = "metrics")]
pub use prometheus::Metrics;

#[cfg(not(feature = "metrics"))]
mod noop;
#[cfg(not(feature = "metrics"))]
pub use noop::Metrics;
