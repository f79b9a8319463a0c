//! The Graylog content pack shipped in `examples/graylog/content-pack.json`, with its adapter
//! URLs pointed at a given service URL.

use serde_json::{Value, json};

/// The content pack as shipped.
const CONTENT_PACK: &str = include_str!("../examples/graylog/content-pack.json");

/// The service URL in the shipped pack; it occurs only in the adapter URL parameters'
/// default values.
pub const DEFAULT_URL: &str = "http://misp-lookup:8080";

/// An invalid `--url` for the content pack.
#[derive(Debug, thiserror::Error)]
#[error("invalid --url {url:?}: {reason}")]
pub struct ContentPackError {
    /// The URL as given.
    pub url: String,
    /// The reason it is invalid.
    pub reason: String,
}

/// Returns the content pack with every adapter URL based at `url`, and with an
/// `Authorization: Bearer` header on every adapter when the service requires `api_token`.
pub fn render(url: &str, api_token: Option<&str>) -> Result<String, ContentPackError> {
    let invalid = |reason: &str| ContentPackError {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let parsed = reqwest::Url::parse(url).map_err(|err| invalid(&err.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("must start with http:// or https://"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid("must not have a query or fragment"));
    }
    let base = url.trim_end_matches('/');
    if base.ends_with("/lookup") {
        return Err(invalid(
            "must be the service's base URL; the adapters add /lookup/${key} themselves",
        ));
    }
    // The URL lands inside JSON strings: escape it as JSON, without the quotes.
    let escaped = serde_json::to_string(base).expect("a string always serializes");
    let pack = CONTENT_PACK.replace(DEFAULT_URL, &escaped[1..escaped.len() - 1]);
    match api_token {
        Some(token) => Ok(add_authorization(&pack, token)),
        None => Ok(pack),
    }
}

/// Adds `Authorization: Bearer <token>` to the headers of every lookup adapter.
fn add_authorization(pack: &str, token: &str) -> String {
    let mut document: Value = serde_json::from_str(pack).expect("the shipped pack is JSON");
    let entities = document
        .get_mut("entities")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten();
    for entity in entities {
        if entity.pointer("/type/name").and_then(Value::as_str) != Some("lookup_adapter") {
            continue;
        }
        if let Some(Value::Object(headers)) = entity.pointer_mut("/data/configuration/headers") {
            headers.insert(
                "Authorization".into(),
                json!({"@type": "string", "@value": format!("Bearer {token}")}),
            );
        }
    }
    serde_json::to_string_pretty(&document).expect("a JSON value always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects every string in a JSON document.
    fn strings(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(text) => out.push(text.clone()),
            Value::Array(items) => items.iter().for_each(|item| strings(item, out)),
            Value::Object(members) => members.values().for_each(|item| strings(item, out)),
            _ => {}
        }
    }

    #[test]
    fn adapter_urls_follow_given_url() {
        let pack: Value =
            serde_json::from_str(&render("https://lookup.example:8443/", None).unwrap())
                .expect("the rendered pack is JSON");
        let mut texts = Vec::new();
        strings(&pack, &mut texts);
        let lookup_urls: Vec<&String> = texts
            .iter()
            .filter(|t| t.starts_with("http") && t.contains("/lookup/${key}"))
            .collect();
        assert_eq!(lookup_urls.len(), 4, "adapter URLs: {lookup_urls:?}");
        for url in lookup_urls {
            assert!(
                url.starts_with("https://lookup.example:8443/lookup/${key}?type="),
                "{url}"
            );
        }
        assert!(!texts.iter().any(|t| t.contains(DEFAULT_URL)));
    }

    #[test]
    fn invalid_url_is_rejected() {
        assert!(render("ftp://x", None).is_err());
        assert!(render("not a url", None).is_err());
        assert!(render("http://x/?a=b", None).is_err());
        assert!(render("http://x:8080/lookup", None).is_err());
    }

    #[test]
    fn api_token_added_to_every_adapter() {
        let pack: Value =
            serde_json::from_str(&render("http://x:8080", Some("token-1234567890ab")).unwrap())
                .expect("the rendered pack is JSON");
        let adapters: Vec<&Value> = pack["entities"]
            .as_array()
            .expect("entities")
            .iter()
            .filter(|entity| entity["type"]["name"] == "lookup_adapter")
            .collect();
        assert_eq!(adapters.len(), 4);
        for adapter in adapters {
            let header = &adapter["data"]["configuration"]["headers"]["Authorization"];
            assert_eq!(header["@value"], "Bearer token-1234567890ab", "{adapter}");
        }
    }
}
