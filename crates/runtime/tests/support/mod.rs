//! Shared helpers of the store tests: backends to run each case on, a throwaway PostgreSQL.

pub mod backends;
#[cfg(feature = "postgres")]
pub mod pg_cluster;
