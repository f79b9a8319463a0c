//! The exact-match rule and typed reads of MISP attribute members.
//!
//! MISP answers restSearch with every attribute whose `value1` or `value2` column equals the
//! search term under MySQL's `utf8mb3_unicode_ci` collation. The service re-applies that rule to
//! whatever MISP returns, so that a LIKE match, a changed collation or a proxy in between can
//! never turn into a reported hit.

use std::borrow::Cow;
use std::cmp::Ordering;

use icu_normalizer::DecomposingNormalizerBorrowed;
use serde_json::Value;

use super::types::is_composite;

/// Tells whether the attribute's value, or one half of its composite value, equals `key` as
/// MISP on MySQL compares them (see [`collation_key`]).
pub fn attribute_matches(attribute: &Value, key: &str) -> bool {
    let Some(value) = attribute.get("value").and_then(Value::as_str) else {
        return false;
    };
    let misp_type = attribute.get("type").and_then(Value::as_str).unwrap_or("");
    if is_composite(misp_type) {
        match value.split_once('|') {
            Some((first, second)) => misp_equal(first, key) || misp_equal(second, key),
            None => misp_equal(value, key),
        }
    } else {
        misp_equal(value, key)
    }
}

/// Compares two values as MySQL's `utf8mb3_unicode_ci` collation does (see [`collation_key`]).
pub fn misp_equal(stored: &str, key: &str) -> bool {
    if stored.is_ascii() && key.is_ascii() {
        let stored = stored.trim_end_matches(' ');
        let key = key.trim_end_matches(' ');
        return stored.eq_ignore_ascii_case(key);
    }
    collation_key(stored) == collation_key(key)
}

/// Combining diacritical marks that the collation ignores at its primary level, which is the
/// level a `_ci` collation compares. Marks of other blocks, such as Indic vowel signs, carry
/// primary weights, so removing them would make different values equal.
const IGNORED_MARKS: std::ops::RangeInclusive<char> = '\u{300}'..='\u{34f}';

/// Returns the form in which MySQL's `utf8mb3_unicode_ci` collation compares `text`: without
/// accents (the canonical decomposition without the marks in [`IGNORED_MARKS`], so `É`
/// becomes `e`), lowercased, and without trailing spaces (PAD SPACE). Values with equal keys
/// are equal under the collation, so a batch never gives a key another key's attributes.
///
/// NOTE: the model folds less than the collation does. Expansions (`ß` equals `ss`), width and
/// kana variants, ignorable characters and letters without a canonical decomposition (such as
/// `ø`) compare as written, so MISP's matches of those kinds are left out.
pub fn collation_key(text: &str) -> Cow<'_, str> {
    if text.is_ascii() {
        let trimmed = text.trim_end_matches(' ');
        if !trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
            return Cow::Borrowed(trimmed);
        }
        return Cow::Owned(trimmed.to_ascii_lowercase());
    }

    let mut key: String = DecomposingNormalizerBorrowed::new_nfd()
        .normalize_iter(text.chars())
        .filter(|c| !IGNORED_MARKS.contains(c))
        .flat_map(char::to_lowercase)
        .collect();
    key.truncate(key.trim_end_matches(' ').len());
    Cow::Owned(key)
}

/// Reads a member that MISP sends as a string but some installs send as a number (ids and
/// timestamps; see PDO's `ATTR_STRINGIFY_FETCHES`), as a string.
pub fn string_member(object: &Value, name: &str) -> Option<String> {
    match object.get(name)? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// Reads a MISP boolean, which older installs send as `0`/`1` or `"0"`/`"1"`.
pub fn bool_member(object: &Value, name: &str) -> bool {
    match object.get(name) {
        Some(Value::Bool(flag)) => *flag,
        Some(Value::Number(number)) => number.as_i64().unwrap_or(0) != 0,
        Some(Value::String(text)) => text == "1" || text.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// Reads the attribute's `timestamp` (epoch seconds, string or number); 0 when absent.
pub fn timestamp(attribute: &Value) -> i64 {
    match attribute.get("timestamp") {
        Some(Value::String(text)) => text.parse().unwrap_or(0),
        Some(Value::Number(number)) => number.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// Orders matches for the Graylog answer: attributes flagged `to_ids` first, then the newest
/// `timestamp` first. The sort is stable, so MISP's order breaks remaining ties.
pub fn compare_for_answer(a: &Value, b: &Value) -> Ordering {
    bool_member(b, "to_ids")
        .cmp(&bool_member(a, "to_ids"))
        .then_with(|| timestamp(b).cmp(&timestamp(a)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn plain_value_matches_case_insensitively() {
        let attribute = json!({"type": "domain", "value": "Evil.Example"});
        assert!(attribute_matches(&attribute, "evil.example"));
        assert!(!attribute_matches(&attribute, "evil.example.org"));
    }

    #[test]
    fn composite_halves_match_but_whole_does_not() {
        let attribute = json!({"type": "ip-dst|port", "value": "203.0.113.77|443"});
        assert!(attribute_matches(&attribute, "203.0.113.77"));
        assert!(attribute_matches(&attribute, "443"));
        assert!(!attribute_matches(&attribute, "203.0.113.77|443"));
    }

    #[test]
    fn trailing_spaces_are_ignored() {
        assert!(misp_equal("abc  ", "ABC"));
        assert!(!misp_equal("  abc", "abc"));
    }

    #[test]
    fn unicode_case_folds() {
        assert!(misp_equal("BÜCHER", "bücher"));
    }

    #[test]
    fn accents_are_ignored() {
        assert!(misp_equal("Café", "cafe"));
        assert!(misp_equal("naïve", "NAIVE"));
        assert!(misp_equal("İstanbul", "istanbul"));
        assert!(misp_equal("é ", "e"));
        assert!(!misp_equal("café", "cafes"));
    }

    #[test]
    fn marks_with_primary_weight_kept() {
        // The Devanagari vowel sign U and the combining Latin small letter A are weighed.
        assert!(!misp_equal("\u{915}\u{941}", "\u{915}"));
        assert!(!misp_equal("e\u{363}", "e"));
    }

    #[test]
    fn lowercase_ascii_key_is_borrowed() {
        assert!(matches!(
            collation_key("evil.example  "),
            Cow::Borrowed("evil.example")
        ));
        assert_eq!(collation_key("Évil.Example"), "evil.example");
    }

    #[test]
    fn ordering_puts_ids_then_newest_first() {
        let old_ids = json!({"to_ids": true, "timestamp": "100"});
        let new_ids = json!({"to_ids": true, "timestamp": "200"});
        let newest_plain = json!({"to_ids": false, "timestamp": "300"});
        let mut list = [newest_plain.clone(), old_ids.clone(), new_ids.clone()];
        list.sort_by(compare_for_answer);
        assert_eq!(list, [new_ids, old_ids, newest_plain]);
    }

    #[test]
    fn numeric_members_read_as_strings() {
        let attribute = json!({"event_id": 42, "id": "7", "to_ids": 1});
        assert_eq!(string_member(&attribute, "event_id").as_deref(), Some("42"));
        assert_eq!(string_member(&attribute, "id").as_deref(), Some("7"));
        assert!(bool_member(&attribute, "to_ids"));
    }
}
