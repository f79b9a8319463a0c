//! Renders answers: the flat Graylog body of `/lookup` and the MISP-shaped drop-in body.
//!
//! Bodies are rendered once, when MISP's answer arrives, and cached as bytes.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::FieldSpec;
use crate::indicator::Indicator;
use crate::misp::matching::{bool_member, compare_for_answer, string_member};

/// The `/lookup` body.
#[derive(Serialize)]
struct GraylogBody<'a> {
    found: bool,
    fields: Map<String, Value>,
    matches: &'a [Value],
}

/// Renders `/lookup` bodies, with the `--field` extras and `event_url`.
pub struct Renderer {
    public_url: String,
    fields: Vec<FieldSpec>,
    /// One flag per `--field`, set once a result of the wrong shape has been logged.
    warned: Vec<AtomicBool>,
}

impl Renderer {
    /// Creates a renderer; `public_url` is the base of `event_url` links, without a trailing
    /// slash.
    pub fn new(public_url: String, fields: Vec<FieldSpec>) -> Self {
        let warned = fields.iter().map(|_| AtomicBool::new(false)).collect();
        Self {
            public_url,
            fields,
            warned,
        }
    }

    /// Renders the Graylog body for `indicator` from the attributes that matched it exactly.
    ///
    /// `received` is how many attributes MISP sent before exact matching and `limit` the limit
    /// the search sent, which together tell whether MISP may have cut the list.
    pub fn graylog(
        &self,
        indicator: &Indicator,
        mut matches: Vec<Value>,
        received: usize,
        limit: Option<u64>,
    ) -> Vec<u8> {
        matches.sort_by(compare_for_answer);

        let mut fields = Map::new();
        fields.insert("found".into(), Value::Bool(!matches.is_empty()));
        fields.insert("value".into(), Value::from(indicator.value()));
        fields.insert("kind".into(), Value::from(indicator.kind().as_str()));
        if let Some(first) = matches.first() {
            self.describe_first(first, &mut fields);
            fields.insert("tags".into(), string_list(collect_tags(&matches)));
            fields.insert("match_count".into(), Value::from(matches.len()));
            let capped = limit.is_some_and(|limit| received as u64 >= limit);
            fields.insert("match_count_capped".into(), Value::Bool(capped));
            fields.insert("event_ids".into(), string_list(collect_event_ids(&matches)));
            self.insert_extra_fields(first, &mut fields);
        }

        let body = GraylogBody {
            found: !matches.is_empty(),
            fields,
            matches: &matches,
        };
        serde_json::to_vec(&body).expect("a JSON value always serializes")
    }

    /// Writes the single-valued fields that describe the first match.
    fn describe_first(&self, first: &Value, fields: &mut Map<String, Value>) {
        let event = first.get("Event");
        let text_members = [
            (
                "type",
                first.get("type").and_then(Value::as_str).map(str::to_owned),
            ),
            (
                "category",
                first
                    .get("category")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            ),
            ("event_id", string_member(first, "event_id")),
            (
                "event_uuid",
                string_member(first, "event_uuid")
                    .or_else(|| event.and_then(|event| string_member(event, "uuid"))),
            ),
            (
                "event_info",
                event.and_then(|event| string_member(event, "info")),
            ),
            ("attribute_uuid", string_member(first, "uuid")),
        ];
        for (name, value) in text_members {
            if let Some(value) = value {
                fields.insert(name.into(), Value::from(value));
            }
        }
        fields.insert("to_ids".into(), Value::Bool(bool_member(first, "to_ids")));
        for name in ["first_seen", "last_seen"] {
            if let Some(value) = string_member(first, name) {
                fields.insert(name.into(), Value::from(value));
            }
        }
        if let Some(event_id) = string_member(first, "event_id") {
            let url = format!("{}/events/view/{event_id}", self.public_url);
            fields.insert("event_url".into(), Value::from(url));
        }
    }

    /// Evaluates each `--field` path against the first match.
    fn insert_extra_fields(&self, first: &Value, fields: &mut Map<String, Value>) {
        for (spec, warned) in self.fields.iter().zip(&self.warned) {
            match extract_field(spec, first) {
                FieldValue::Value(value) => {
                    fields.insert(spec.name.clone(), value);
                }
                FieldValue::Absent => {}
                FieldValue::WrongShape => {
                    if !warned.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            field = %spec.name,
                            path = %spec.source,
                            "--field result is neither a scalar nor a list of strings; the \
                             field is left out (logged once per field)"
                        );
                    }
                }
            }
        }
    }
}

/// The outcome of one `--field` path.
enum FieldValue {
    Value(Value),
    Absent,
    WrongShape,
}

/// Applies a `--field` path. A singular path yields a string, number or boolean, or a list of
/// strings when it selects an array of strings; any other path yields a list of strings.
fn extract_field(spec: &FieldSpec, first: &Value) -> FieldValue {
    let nodes = spec.path.query(first).all();
    if spec.singular {
        return match nodes.first() {
            None | Some(Value::Null) => FieldValue::Absent,
            Some(value @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => {
                FieldValue::Value((*value).clone())
            }
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                FieldValue::Value(Value::Array(items.clone()))
            }
            Some(_) => FieldValue::WrongShape,
        };
    }
    if nodes.is_empty() {
        return FieldValue::Absent;
    }
    if nodes.iter().all(|node| node.is_string()) {
        let mut items: Vec<String> = Vec::with_capacity(nodes.len());
        for node in nodes {
            let text = node.as_str().unwrap_or_default();
            if !items.iter().any(|item| item == text) {
                items.push(text.to_owned());
            }
        }
        return FieldValue::Value(string_list(items));
    }
    FieldValue::WrongShape
}

/// Collects tag names of every match, attribute tags and inherited event tags alike, without
/// duplicates, in the order first seen.
fn collect_tags(matches: &[Value]) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for attribute in matches {
        let attribute_tags = attribute.get("Tag").and_then(Value::as_array);
        let event_tags = attribute
            .get("Event")
            .and_then(|event| event.get("Tag"))
            .and_then(Value::as_array);
        for tag in attribute_tags.into_iter().chain(event_tags).flatten() {
            if let Some(name) = tag.get("name").and_then(Value::as_str)
                && !name.is_empty()
                && !tags.iter().any(|known| known == name)
            {
                tags.push(name.to_owned());
            }
        }
    }
    tags
}

/// Collects the event ids of every match without duplicates, in match order.
fn collect_event_ids(matches: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for attribute in matches {
        if let Some(id) = string_member(attribute, "event_id")
            && !ids.contains(&id)
        {
            ids.push(id);
        }
    }
    ids
}

fn string_list(items: Vec<String>) -> Value {
    Value::Array(items.into_iter().map(Value::String).collect())
}

/// Renders MISP's own restSearch wire format: `{"response": {"Attribute": [` + each attribute
/// as compact JSON, joined by commas + `]}}` and a newline. Attributes are written as received
/// (unknown members and member order kept), with slashes and non-ASCII text unescaped, as
/// MISP's JSON exporter writes them.
pub fn dropin(attributes: &[Value]) -> Vec<u8> {
    let mut body = Vec::with_capacity(64 + attributes.len() * 1024);
    body.extend_from_slice(b"{\"response\": {\"Attribute\": [");
    for (index, attribute) in attributes.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        serde_json::to_writer(&mut body, attribute).expect("a JSON value always serializes");
    }
    body.extend_from_slice(b"]}}\n");
    body
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn dropin_empty_is_misp_bytes() {
        assert_eq!(&dropin(&[])[..], b"{\"response\": {\"Attribute\": []}}\n");
    }

    #[test]
    fn dropin_keeps_slashes_and_order() {
        let attribute = json!({"z": "http://a/b", "a": "é"});
        let body = dropin(&[attribute]);
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            "{\"response\": {\"Attribute\": [{\"z\":\"http://a/b\",\"a\":\"é\"}]}}\n"
        );
    }

    #[test]
    fn tags_merge_without_duplicates() {
        let matches = [
            json!({"Tag": [{"name": "tlp:white"}, {"name": "malware"}]}),
            json!({"Tag": [{"name": "malware"}], "Event": {"Tag": [{"name": "apt"}]}}),
        ];
        assert_eq!(collect_tags(&matches), ["tlp:white", "malware", "apt"]);
    }
}
