//! Property tests for `misp_lookup::indicator::parse` over arbitrary strings and over generated
//! near-indicators with defanged forms, MISP operators and awkward characters inserted.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use misp_lookup::indicator::{Indicator, KeyError, Kind, MAX_KEY_BYTES, parse};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::TestCaseError;

/// Cases per property, kept modest so that CI stays fast.
const CASES: u32 = 512;

/// Tokens inserted into generated keys: defanged forms in several cases, MISP operators and
/// their single-character halves, separators, whitespace and control characters. The non-ASCII
/// tokens change byte length under case or IDN mapping (`Ⱥ`, `İ`, the Kelvin sign, the soft
/// hyphen, the ideographic full stop).
const INSERTED_TOKENS: &[&str] = &[
    "[.]", "(.)", "{.}", "[dot]", "[DOT]", "(dot)", "[:]", "[@]", "[at]", "(AT)", "[://]",
    "hxxp://", "hXXps://", "[", "]", "(", ")", "{", "}", ".", ":", "/", "@", "!", "%", "&", "&&",
    "|", "||", "0", " ", "\t", "\n", "\0", "\u{7f}", "\u{85}", "\u{a0}", "\u{ad}", "\u{3002}", "ü",
    "Ⱥ", "İ", "\u{212a}", "ß", "ｅ",
];

fn ipv4_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,4}(\\.[0-9]{1,3}){0,4}(/[0-9]{1,3})?",
        "[0-9]{1,3}(\\.[0-9]{1,3}){3}(/[0-9]{1,2})?",
        (any::<[u8; 4]>(), proptest::option::of(0u8..=33)).prop_map(|(octets, prefix)| {
            let address = Ipv4Addr::from(octets);
            match prefix {
                Some(prefix) => format!("{address}/{prefix}"),
                None => address.to_string(),
            }
        }),
    ]
}

/// IPv6-like text: free-form hex groups, or a valid address written in full in uppercase,
/// compressed, in brackets, or as an IPv4-mapped or IPv4-compatible address, each with an
/// optional prefix.
fn ipv6_like() -> impl Strategy<Value = String> {
    let valid = (any::<[u16; 8]>(), 0u8..5, proptest::option::of(0u8..=130)).prop_map(
        |(segments, style, prefix)| {
            let address = Ipv6Addr::from(segments);
            let mut text = match style {
                0 => {
                    format!("{:X}", segments[0])
                        + &segments[1..]
                            .iter()
                            .map(|s| format!(":{s:X}"))
                            .collect::<String>()
                }
                1 => address.to_string(),
                2 => format!("[{address}]"),
                3 => {
                    let [.., a, b, c, d] = address.octets();
                    format!("::ffff:{a}.{b}.{c}.{d}")
                }
                _ => {
                    let [.., a, b, c, d] = address.octets();
                    format!("::{a}.{b}.{c}.{d}")
                }
            };
            if let Some(prefix) = prefix {
                text.push_str(&format!("/{prefix}"));
            }
            text
        },
    );
    prop_oneof![
        "\\[?[0-9a-fA-F]{0,4}(::?[0-9a-fA-F]{0,4}){1,8}(\\.[0-9]{1,3}){0,3}(/[0-9]{1,3})?\\]?",
        valid,
    ]
}

fn hex_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-fA-F]{32}",
        "[0-9a-fA-F]{40}",
        "[0-9a-fA-F]{64}",
        "[0-9a-fA-F]{128}",
        "[0-9a-fA-F]{1,130}",
    ]
}

fn domain_like() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_üÜé-]{1,12}(\\.[a-zA-Z0-9_üé-]{1,12}){1,4}\\.?"
}

fn url_like() -> impl Strategy<Value = String> {
    "(http|HTTPS|hxxp|hXXps|ftp|svn\\+ssh)://[a-zA-Z0-9.:@\\[\\]-]{0,20}\
     (/[a-zA-Z0-9%!?#=&._-]{0,20}){0,3}"
}

fn email_like() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._+%-]{1,12}@[a-zA-Zü0-9-]{1,10}(\\.[a-zA-Z]{2,6}){1,2}\\.?"
}

/// Inserts each token at a character boundary chosen by its index.
fn insert_tokens(base: String, insertions: Vec<(Index, &'static str)>) -> String {
    let mut key = base;
    for (index, token) in insertions {
        let mut boundaries: Vec<usize> = key.char_indices().map(|(i, _)| i).collect();
        boundaries.push(key.len());
        key.insert_str(*index.get(&boundaries), token);
    }
    key
}

/// Keys shaped like each kind of indicator, with up to four tokens inserted.
fn near_indicator() -> impl Strategy<Value = String> {
    let base = prop_oneof![
        ipv4_like(),
        ipv6_like(),
        hex_like(),
        domain_like(),
        url_like(),
        email_like(),
    ];
    let insertions = prop::collection::vec((any::<Index>(), select(INSERTED_TOKENS)), 0..4);
    (base, insertions).prop_map(|(base, insertions)| insert_tokens(base, insertions))
}

/// Arbitrary strings: short ones of any characters and long ones around `MAX_KEY_BYTES`.
fn arbitrary_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        2 => ".{0,64}",
        1 => "[a-zA-Z0-9üȺ.@/%\\[\\]:-]{4000,4100}",
    ]
}

fn any_key() -> impl Strategy<Value = String> {
    prop_oneof![arbitrary_key(), near_indicator()]
}

/// Checks the guarantees that every parsed value gives, whatever its kind.
fn check_value_invariants(raw: &str, indicator: &Indicator) -> Result<(), TestCaseError> {
    let value = indicator.value();
    prop_assert!(!value.is_empty(), "empty value for {raw:?}");
    prop_assert!(!value.starts_with('!'), "value {value:?} starts with '!'");
    prop_assert!(!value.starts_with('%'), "value {value:?} starts with '%'");
    prop_assert!(!value.ends_with('%'), "value {value:?} ends with '%'");
    prop_assert!(!value.contains("&&"), "value {value:?} contains '&&'");
    prop_assert!(!value.contains("||"), "value {value:?} contains '||'");
    prop_assert!(
        !value.chars().any(char::is_control),
        "value {value:?} contains a control character"
    );
    prop_assert!(
        value.len() <= MAX_KEY_BYTES,
        "value of {raw:?} is {} bytes",
        value.len()
    );
    prop_assert_eq!(value.trim(), value, "value is not trimmed");
    Ok(())
}

/// Checks that each error names a rule that the raw key really breaks.
fn check_error(raw: &str, error: &KeyError) -> Result<(), TestCaseError> {
    match error {
        KeyError::TooLong { bytes } => {
            prop_assert_eq!(*bytes, raw.len());
            prop_assert!(raw.len() > MAX_KEY_BYTES);
        }
        KeyError::Empty => prop_assert!(raw.trim().is_empty()),
        KeyError::ControlChar { position } => {
            let c = raw[*position..].chars().next();
            prop_assert!(
                c.is_some_and(char::is_control),
                "no control char at {position}"
            );
        }
        KeyError::Operator { operator } => {
            prop_assert!(["!", "%", "&&", "||"].contains(operator));
            let first = operator.chars().next().unwrap();
            prop_assert!(raw.contains(first), "{raw:?} lacks {operator:?}");
        }
    }
    prop_assert!(!error.to_string().is_empty());
    prop_assert!(error.code().starts_with("key_"));
    Ok(())
}

/// Checks that the value has the shape its kind promises.
fn check_kind_shape(indicator: &Indicator) -> Result<(), TestCaseError> {
    let value = indicator.value();
    let is_lower_hex = |len: usize| {
        value.len() == len
            && value
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    match indicator.kind() {
        Kind::Ipv4 => prop_assert!(
            value.parse::<Ipv4Addr>().is_ok() || value.parse::<Ipv4Net>().is_ok(),
            "ipv4 value {value:?} does not parse"
        ),
        Kind::Ipv6 => prop_assert!(
            value.parse::<Ipv6Addr>().is_ok() || value.parse::<Ipv6Net>().is_ok(),
            "ipv6 value {value:?} does not parse"
        ),
        Kind::Md5 => prop_assert!(is_lower_hex(32), "md5 value {value:?}"),
        Kind::Sha1 => prop_assert!(is_lower_hex(40), "sha1 value {value:?}"),
        Kind::Sha256 => prop_assert!(is_lower_hex(64), "sha256 value {value:?}"),
        Kind::Sha512 => prop_assert!(is_lower_hex(128), "sha512 value {value:?}"),
        Kind::Domain => {
            prop_assert!(value.len() <= 253, "domain value {value:?} too long");
            prop_assert!(value.contains('.'), "domain value {value:?} has one label");
            prop_assert!(
                value
                    .bytes()
                    .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.')),
                "domain value {value:?} has other characters"
            );
        }
        Kind::Email => {
            prop_assert_eq!(value.matches('@').count(), 1, "email value {}", value);
            let domain = value.split_once('@').unwrap().1;
            prop_assert!(domain.is_ascii(), "email domain {domain:?} is not ASCII");
        }
        Kind::Url => prop_assert!(value.contains("://"), "url value {value:?}"),
        Kind::Other => {}
    }
    prop_assert_eq!(
        indicator.is_unmatchable(),
        value == "0" || value.contains('|'),
        "unmatchable flag of {}",
        value
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn parse_output_keeps_invariants(raw in any_key()) {
        match parse(&raw) {
            Ok(indicator) => {
                check_value_invariants(&raw, &indicator)?;
                check_kind_shape(&indicator)?;
            }
            Err(error) => check_error(&raw, &error)?,
        }
    }

    #[test]
    fn parse_is_idempotent(raw in any_key()) {
        if let Ok(indicator) = parse(&raw) {
            let again = parse(indicator.value());
            prop_assert_eq!(again, Ok(indicator), "input {:?}", raw);
        }
    }

    #[test]
    fn parse_accepts_operator_free_keys(raw in any_key()) {
        let trimmed = raw.trim();
        let acceptable = raw.len() <= MAX_KEY_BYTES
            && !trimmed.is_empty()
            && !trimmed.chars().any(char::is_control)
            && !trimmed.contains(['!', '%', '&', '|']);
        if acceptable {
            prop_assert!(parse(&raw).is_ok(), "{:?} rejected: {:?}", raw, parse(&raw));
        }
    }

    #[test]
    fn parse_keeps_valid_ipv4(octets in any::<[u8; 4]>(), prefix in 0u8..=32) {
        let address = Ipv4Addr::from(octets);
        let indicator = parse(&address.to_string()).unwrap();
        prop_assert_eq!(indicator.kind(), Kind::Ipv4);
        prop_assert_eq!(indicator.value(), address.to_string());

        let network = parse(&format!("{address}/{prefix}")).unwrap();
        prop_assert_eq!(network.kind(), Kind::Ipv4);
        let expected = if prefix == 32 {
            address.to_string()
        } else {
            format!("{address}/{prefix}")
        };
        prop_assert_eq!(network.value(), expected);
    }

    #[test]
    fn parse_keeps_valid_ipv6(segments in any::<[u16; 8]>(), prefix in 0u8..=128) {
        // Compared as parsed addresses, because the text of an IPv4-compatible address
        // differs from Rust's `Display`.
        let address = Ipv6Addr::from(segments);
        let indicator = parse(&format!("[{address}]")).unwrap();
        prop_assert_eq!(indicator.kind(), Kind::Ipv6);
        prop_assert_eq!(indicator.value().parse::<Ipv6Addr>(), Ok(address));

        let network = parse(&format!("{address}/{prefix}")).unwrap();
        prop_assert_eq!(network.kind(), Kind::Ipv6);
        if prefix == 128 {
            prop_assert_eq!(network.value().parse::<Ipv6Addr>(), Ok(address));
        } else {
            let parsed: Ipv6Net = network.value().parse().unwrap();
            prop_assert_eq!(parsed.addr(), address);
            prop_assert_eq!(parsed.prefix_len(), prefix);
        }
    }
}
