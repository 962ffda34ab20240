//! The `steward` binary. Everything it does lives in the `steward-app` crate (HTTP API, CLI,
//! config, demo) on top of the engine (`steward-runtime`); this file only hands over to it.

fn main() -> std::process::ExitCode {
    steward_app::main()
}
