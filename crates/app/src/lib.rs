//! `steward-app`: the `steward` binary's own code, on top of the engine (`steward-runtime`) and
//! the simulated Core (`steward-sim`): the HTTP API (axum), the CLI client (clap, reqwest), the
//! TOML config, the demo and the entry point. Nothing here is needed to embed Steward; an
//! embedding daemon depends on `steward-runtime` alone.

pub mod cli;
pub mod config;
pub mod demo;
mod entry;
pub mod ha;
pub mod hooks_config;
pub mod http;
pub mod store_config;

pub use entry::main;
