//! Everything about MISP: the restSearch client, its errors, the protections in front of it,
//! attribute types and the rule that decides whether an attribute matches a key.

pub mod client;
pub mod error;
pub mod guard;
pub mod matching;
pub mod types;

pub use client::{Client, SearchRequest};
pub use error::MispError;

/// Tells whether a text has the form MISP requires of an API key: 40 ASCII letters and digits
/// (`AppController::__loginByAuthKey` in MISP 2.5). Any other key is rejected by MISP.
pub fn is_valid_key(key: &str) -> bool {
    key.len() == 40 && key.bytes().all(|b| b.is_ascii_alphanumeric())
}
