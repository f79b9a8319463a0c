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

/// Starts the demo emulator on a loopback port and points `config` at it: its URL, its key,
/// and its URL for `event_url` unless `--misp-public-url` was given. The emulator stops when
/// the returned value is stopped or dropped.
pub async fn start_for(config: &mut crate::config::Config) -> std::io::Result<Emulator> {
    let emulator =
        Emulator::start(EmulatorConfig::new(dataset::Dataset::demo(), DEMO_API_KEY)).await?;
    config.misp.url = emulator.url();
    config.misp.key = Some(crate::config::Secret::new(DEMO_API_KEY));
    if config.public_url.is_empty() {
        config.public_url = emulator.url();
    }
    Ok(emulator)
}
