//! A MISP emulator for the `--demo` mode and the integration tests.
//!
//! [`Emulator`] serves `POST /attributes/restSearch` and `GET /servers/getVersion` the way
//! MISP 2.5.1 does on the wire: the same filters, value matching, JSON layout, headers and error
//! bodies. It can be switched into failure modes ([`Fault`]) and it counts the requests it
//! receives, so tests can check how often the service reached MISP and with what filter.

pub mod dataset;
pub mod emulator;

pub use emulator::{ApiKey, Emulator, EmulatorConfig, Fault, RecordedRequest};

/// The API key the demo emulator accepts (40 ASCII alphanumerics, as MISP requires).
pub const DEMO_API_KEY: &str = "MispLookupDemoKey00000000000000000000000";
