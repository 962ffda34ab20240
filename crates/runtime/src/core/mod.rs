//! The `Core` trait (the system that owns the hardware) and its adapters.
