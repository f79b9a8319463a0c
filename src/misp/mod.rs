//! Everything about MISP: the restSearch client, its errors, the protections in front of it,
//! attribute types and the rule that decides whether an attribute matches a key.

pub mod client;
pub mod error;
pub mod guard;
pub mod matching;
pub mod types;

pub use client::{Client, SearchRequest};
pub use error::MispError;
