//! Classification, refanging and normalization of lookup keys.
//!
//! Graylog's HTTP JSONPath lookup adapter sends one raw key per request: an IP address, domain,
//! hash, URL, email address or any other string. [`parse`] rejects keys that MISP's restSearch
//! would read as search operators, refangs the defanged forms found in reports, and normalizes
//! the value so that equivalent keys share one cache entry and one MISP query. `parse` is
//! idempotent: parsing the value of a parsed [`Indicator`] returns the same indicator.

use std::borrow::Cow;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// Longest key accepted, in bytes after percent-decoding.
pub const MAX_KEY_BYTES: usize = 4096;

/// Maximum length of a domain name, in bytes of its ASCII (punycode) form without the trailing dot.
const MAX_DOMAIN_BYTES: usize = 253;

/// Maximum length of a domain label, in bytes of its ASCII (punycode) form.
const MAX_LABEL_BYTES: usize = 63;

/// Defanged forms and their replacements. Matching ignores ASCII case, so `[DOT]` counts too.
///
/// Every form starts with an opening bracket, ends with a closing bracket and has no bracket
/// inside, so two occurrences never overlap. No replacement ends with a closing bracket, so a
/// replacement can never complete a new form that ends at it (see [`refang_brackets`]).
const DEFANGED_FORMS: [(&str, &str); 10] = [
    ("[://]", "://"),
    ("[.]", "."),
    ("(.)", "."),
    ("{.}", "."),
    ("[dot]", "."),
    ("(dot)", "."),
    ("[:]", ":"),
    ("[@]", "@"),
    ("[at]", "@"),
    ("(at)", "@"),
];

/// Category of an indicator, named after the MISP attribute type it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// IPv4 address or CIDR network, such as `192.0.2.1` or `192.0.2.0/24`.
    Ipv4,
    /// IPv6 address or CIDR network, such as `2001:db8::1` or `2001:db8::/32`.
    Ipv6,
    /// Domain or host name in lowercase ASCII, with IDN labels in punycode.
    Domain,
    /// Absolute URL with a scheme, such as `http://example.com/path`.
    Url,
    /// MD5 hash as 32 lowercase hex digits.
    Md5,
    /// SHA-1 hash as 40 lowercase hex digits.
    Sha1,
    /// SHA-256 hash as 64 lowercase hex digits.
    Sha256,
    /// SHA-512 hash as 128 lowercase hex digits.
    Sha512,
    /// Email address with a valid domain part.
    Email,
    /// Any other value, looked up as received after trimming and refanging.
    Other,
}

impl Kind {
    /// Every kind, in declaration order.
    pub const ALL: [Kind; 10] = [
        Kind::Ipv4,
        Kind::Ipv6,
        Kind::Domain,
        Kind::Url,
        Kind::Md5,
        Kind::Sha1,
        Kind::Sha256,
        Kind::Sha512,
        Kind::Email,
        Kind::Other,
    ];

    /// Returns the lowercase name, the same string that serde serializes.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ipv4 => "ipv4",
            Kind::Ipv6 => "ipv6",
            Kind::Domain => "domain",
            Kind::Url => "url",
            Kind::Md5 => "md5",
            Kind::Sha1 => "sha1",
            Kind::Sha256 => "sha256",
            Kind::Sha512 => "sha512",
            Kind::Email => "email",
            Kind::Other => "other",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lookup key after classification and normalization, created by [`parse`].
///
/// The value is never empty, never longer than [`MAX_KEY_BYTES`], contains no control
/// character, never starts with `!`, never starts or ends with `%`, and never contains `&&` or
/// `||`, so MISP reads it as a plain value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Indicator {
    kind: Kind,
    value: String,
    unmatchable: bool,
}

impl Indicator {
    /// Returns the category of the value.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Returns the normalized value.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// True when no MISP attribute can match the value, so MISP need not be asked: the value `0`
    /// (MISP reads it as "no filter") and a full composite string containing `|` (e.g.
    /// `203.0.113.77|443`), because MISP stores composite halves in separate columns.
    pub fn is_unmatchable(&self) -> bool {
        self.unmatchable
    }

    fn new(kind: Kind, value: String) -> Self {
        Indicator {
            kind,
            value,
            unmatchable: false,
        }
    }
}

impl fmt::Display for Indicator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

/// Reason why [`parse`] rejected a key. The `Display` text is meant for API users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key is empty or contains only whitespace.
    #[error("the key is empty or only whitespace: send the indicator value to look up")]
    Empty,
    /// The key is longer than [`MAX_KEY_BYTES`].
    #[error(
        "the key is {bytes} bytes long; the maximum is {max} bytes after percent-decoding",
        max = MAX_KEY_BYTES
    )]
    TooLong {
        /// Length of the key as received, in bytes.
        bytes: usize,
    },
    /// The key contains a search operator that MISP would interpret instead of matching it.
    #[error("{}", operator_message(operator))]
    Operator {
        /// The operator: `"!"`, `"%"`, `"&&"` or `"||"`.
        operator: &'static str,
    },
    /// The key contains a control character after trimming.
    #[error(
        "the key contains a control character at byte {position}; \
         remove it and send the plain indicator value"
    )]
    ControlChar {
        /// Byte offset of the character in the key as received.
        position: usize,
    },
}

impl KeyError {
    /// Returns a stable machine-readable code for API responses and metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            KeyError::Empty => "key_empty",
            KeyError::TooLong { .. } => "key_too_long",
            KeyError::Operator { .. } => "key_operator",
            KeyError::ControlChar { .. } => "key_control_char",
        }
    }
}

fn operator_message(operator: &str) -> &'static str {
    match operator {
        "!" => {
            "the key starts with '!', which MISP reads as the NOT operator; \
             send the plain indicator value"
        }
        "%" => {
            "the key starts or ends with '%', which MISP reads as a LIKE wildcard; \
             send the plain indicator value"
        }
        "&&" => {
            "the key contains '&&', which MISP splits into separate search terms; \
             send one indicator value per lookup"
        }
        "||" => {
            "the key contains '||', which MISP reads as a list separator; \
             send one indicator value per lookup"
        }
        _ => "the key contains a MISP search operator; send the plain indicator value",
    }
}

/// Classifies, refangs and normalizes one raw key (already percent-decoded, any UTF-8).
///
/// The steps, in order:
///
/// 1. Reject a key longer than [`MAX_KEY_BYTES`].
/// 2. Trim Unicode whitespace at both ends and reject an empty result.
/// 3. Reject any remaining control character.
/// 4. Refang defanged forms such as `hxxp://` and `[.]`.
/// 5. Reject MISP operators: a leading `!`, a leading or trailing `%`, `&&` and `||`.
/// 6. Mark `0` and composite values containing `|` as unmatchable, with kind [`Kind::Other`].
/// 7. Classify the value and normalize it for its kind. A value that fits no kind is kept as it
///    is, with kind [`Kind::Other`].
///
/// # Errors
///
/// Returns a [`KeyError`] naming the first rule the key breaks.
pub fn parse(raw: &str) -> Result<Indicator, KeyError> {
    if raw.len() > MAX_KEY_BYTES {
        return Err(KeyError::TooLong { bytes: raw.len() });
    }

    let without_leading = raw.trim_start();
    let leading_bytes = raw.len() - without_leading.len();
    let trimmed = without_leading.trim_end();
    if trimmed.is_empty() {
        return Err(KeyError::Empty);
    }

    if let Some((offset, _)) = trimmed.char_indices().find(|(_, c)| c.is_control()) {
        return Err(KeyError::ControlChar {
            position: leading_bytes + offset,
        });
    }

    // Refanging never adds or removes whitespace or control characters, and never shortens the
    // value to nothing, so the checks above still hold for the refanged value. It is kept only
    // when it makes an indicator of a known kind: a file name or mutex containing `(dot)` or
    // `[at]` is looked up as written.
    let refanged = refang(trimmed);
    let value = if refanged != trimmed && is_other(&refanged) {
        Cow::Borrowed(trimmed)
    } else {
        refanged
    };
    check_operators(&value)?;

    // NOTE: MISP compares the value with the value1 and value2 columns separately, so a
    // non-composite attribute whose value contains `|` (a URL with `|` in its query, a text
    // attribute) is stored whole in value1 and could still match. Such values are treated as
    // unmatchable too.
    if value == "0" || value.contains('|') {
        return Ok(Indicator {
            kind: Kind::Other,
            value: value.into_owned(),
            unmatchable: true,
        });
    }

    Ok(classify(value))
}

/// Tells whether a refanged value would still be of kind `other`. Composite strings keep their
/// refanged form, since their halves are indicators.
fn is_other(value: &str) -> bool {
    !value.contains('|') && classify(Cow::Borrowed(value)).kind == Kind::Other
}

/// Replaces the defanged forms in [`DEFANGED_FORMS`] and a leading `hxxp://` or `hxxps://`
/// (any ASCII case) with the plain characters.
fn refang(value: &str) -> Cow<'_, str> {
    // A key that is not defanged is returned as it is, without a copy.
    if !value.contains([']', ')', '}']) && !starts_with_ignore_ascii_case(value, "hxxp") {
        return Cow::Borrowed(value);
    }
    let mut refanged = refang_brackets(value);

    // The scheme is handled after the brackets so that `hxxp[://]` and `hxxp[:]//` count too.
    for (defanged, plain) in [("hxxp://", "http://"), ("hxxps://", "https://")] {
        if starts_with_ignore_ascii_case(&refanged, defanged) {
            refanged.replace_range(..defanged.len(), plain);
            break;
        }
    }
    Cow::Owned(refanged)
}

/// Replaces every defanged form in one left-to-right pass, including forms that only appear
/// after an inner replacement, such as `[[.]]`, so the result contains none.
///
/// The output never contains a form, because a form can only be completed by the character just
/// appended, and a replacement never ends with a closing bracket. One pass is therefore enough,
/// which keeps the work linear in the key length.
fn refang_brackets(value: &str) -> String {
    let mut output = String::with_capacity(value.len());
    for c in value.chars() {
        output.push(c);
        if !matches!(c, ']' | ')' | '}') {
            continue;
        }
        for (defanged, plain) in DEFANGED_FORMS {
            if ends_with_ignore_ascii_case(&output, defanged) {
                // The matched bytes are ASCII, so the cut falls on a character boundary.
                output.truncate(output.len() - defanged.len());
                output.push_str(plain);
                break;
            }
        }
    }
    output
}

fn starts_with_ignore_ascii_case(value: &str, prefix: &str) -> bool {
    value.len() >= prefix.len()
        && value.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn ends_with_ignore_ascii_case(value: &str, suffix: &str) -> bool {
    value.len() >= suffix.len()
        && value.as_bytes()[value.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

/// Rejects values that MISP's restSearch would treat as operators rather than match literally.
fn check_operators(value: &str) -> Result<(), KeyError> {
    let operator = if value.starts_with('!') {
        "!"
    } else if value.starts_with('%') || value.ends_with('%') {
        "%"
    } else {
        // One pass over byte pairs, since a substring search per operator costs more on short
        // keys. `&&` is named first wherever it is, as the rule order in `parse` lists it.
        let mut has_or = false;
        for pair in value.as_bytes().windows(2) {
            match pair {
                b"&&" => return Err(KeyError::Operator { operator: "&&" }),
                b"||" => has_or = true,
                _ => {}
            }
        }
        if !has_or {
            return Ok(());
        }
        "||"
    };
    Err(KeyError::Operator { operator })
}

/// Picks the first kind that the value fits and returns it normalized for that kind.
///
/// Each normalized value is classified as the same kind again. For example, a domain's last
/// label is never all digits, so a domain never reads as an IPv4 address.
fn classify(value: Cow<'_, str>) -> Indicator {
    if let Some(normalized) = normalize_ipv4(&value) {
        return Indicator::new(Kind::Ipv4, normalized);
    }
    if let Some(normalized) = normalize_ipv6(&value) {
        return Indicator::new(Kind::Ipv6, normalized);
    }
    if let Some(kind) = hash_kind(&value) {
        return Indicator::new(kind, value.to_ascii_lowercase());
    }
    if let Some(normalized) = normalize_url(&value) {
        return Indicator::new(Kind::Url, normalized);
    }
    if let Some(normalized) = normalize_email(&value) {
        return Indicator::new(Kind::Email, normalized);
    }
    if let Some(normalized) = normalize_domain(&value) {
        return Indicator::new(Kind::Domain, normalized);
    }
    Indicator::new(Kind::Other, value.into_owned())
}

/// Parses a dotted-quad address or `address/prefix` network.
///
/// The address goes through the strict standard parser, which rejects leading zeros such as
/// `010.0.0.1` that some tools read as octal. A `/32` prefix is dropped and host bits are kept,
/// as MISP's `AttributeValidationTool::normalizeIp` does when it stores an attribute, because
/// MISP compares CIDR strings literally.
fn normalize_ipv4(value: &str) -> Option<String> {
    let Some((address, prefix)) = value.split_once('/') else {
        return value.parse::<Ipv4Addr>().ok().map(|a| a.to_string());
    };
    let address: Ipv4Addr = address.parse().ok()?;
    let network = Ipv4Net::new(address, parse_prefix_len(prefix)?).ok()?;
    if network.prefix_len() == 32 {
        Some(address.to_string())
    } else {
        Some(network.to_string())
    }
}

/// Parses an IPv6 address or `address/prefix` network, optionally inside `[...]`, into the
/// RFC 5952 text form (see [`format_ipv6`]). A `/128` prefix is dropped, as for IPv4 `/32`. A
/// zone id such as `%eth0` is not accepted.
fn normalize_ipv6(value: &str) -> Option<String> {
    let value = value
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(value);
    let Some((address, prefix)) = value.split_once('/') else {
        return value.parse::<Ipv6Addr>().ok().map(format_ipv6);
    };
    let address: Ipv6Addr = address.parse().ok()?;
    let network = Ipv6Net::new(address, parse_prefix_len(prefix)?).ok()?;
    if network.prefix_len() == 128 {
        Some(format_ipv6(address))
    } else {
        Some(format!("{}/{}", format_ipv6(address), network.prefix_len()))
    }
}

/// Formats an IPv6 address as MISP stores it, which is the output of glibc's `inet_ntop`.
///
/// That output equals Rust's `Display` except for the deprecated IPv4-compatible addresses
/// (96 zero bits, then a non-zero seventh group), which glibc writes as `::1.2.3.4` and Rust as
/// `::102:304`.
fn format_ipv6(address: Ipv6Addr) -> String {
    let segments = address.segments();
    if segments[..6].iter().all(|&s| s == 0) && segments[6] != 0 {
        let [.., a, b, c, d] = address.octets();
        return format!("::{a}.{b}.{c}.{d}");
    }
    address.to_string()
}

/// Parses a CIDR prefix length written as decimal digits only (`u8::from_str` alone would also
/// accept a leading `+`).
fn parse_prefix_len(prefix: &str) -> Option<u8> {
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    prefix.parse().ok()
}

fn hash_kind(value: &str) -> Option<Kind> {
    if !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match value.len() {
        32 => Some(Kind::Md5),
        40 => Some(Kind::Sha1),
        64 => Some(Kind::Sha256),
        128 => Some(Kind::Sha512),
        _ => None,
    }
}

/// Lowercases the scheme and the authority of a `scheme://…` value and keeps the rest
/// byte for byte.
///
/// The path, query and fragment keep their case and percent-encoding because MISP stores URLs
/// as submitted and a parser that re-encodes them would break exact matching. Only ASCII
/// letters are lowercased, so the byte length never changes. MISP's own comparison is
/// case-insensitive, so the lowercasing only merges cache entries.
fn normalize_url(value: &str) -> Option<String> {
    let (scheme, rest) = value.split_once("://")?;
    if !is_uri_scheme(scheme) {
        return None;
    }
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path_and_rest) = rest.split_at(authority_len);

    let mut normalized = String::with_capacity(value.len());
    normalized.push_str(&scheme.to_ascii_lowercase());
    normalized.push_str("://");
    normalized.push_str(&authority.to_ascii_lowercase());
    normalized.push_str(path_and_rest);
    Some(normalized)
}

/// Checks the RFC 3986 scheme syntax: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
fn is_uri_scheme(scheme: &str) -> bool {
    let mut bytes = scheme.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    first.is_ascii_alphabetic()
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Normalizes `local@domain` when the value contains exactly one `@`, the local part is
/// non-empty without whitespace, and the domain part is a valid domain.
///
/// The local part is lowercased in ASCII only, which keeps its byte length. The domain part
/// goes through [`normalize_domain`]. A value whose punycode domain would push it past
/// [`MAX_KEY_BYTES`] is not an email address, so a later lookup of the output is never rejected
/// as too long.
fn normalize_email(value: &str) -> Option<String> {
    let (local, domain) = value.split_once('@')?;
    if local.is_empty() || domain.contains('@') || local.chars().any(char::is_whitespace) {
        return None;
    }
    let domain = normalize_domain(domain)?;
    let normalized = format!("{}@{domain}", local.to_ascii_lowercase());
    (normalized.len() <= MAX_KEY_BYTES).then_some(normalized)
}

/// Converts a host name to lowercase ASCII with IDN labels in punycode and validates it.
///
/// `idna::domain_to_ascii` applies the UTS #46 mapping, which also lowercases, folds
/// full-width characters and maps `。` to `.`. One trailing dot is removed afterwards, so an
/// ideographic trailing full stop counts too. The result is valid when it has at least two
/// labels, each of 1 to 63 bytes of `[a-z0-9_-]`, at most 253 bytes in total, and a last
/// label that is not all digits.
fn normalize_domain(value: &str) -> Option<String> {
    if is_plain_ascii_domain(value) {
        // UTS 46 maps such a name to itself, so the costly UTS 46 step is skipped.
        return is_valid_domain(value).then(|| value.to_owned());
    }
    let mut ascii = idna::domain_to_ascii(value).ok()?;
    if ascii.ends_with('.') {
        ascii.pop();
    }
    is_valid_domain(&ascii).then_some(ascii)
}

/// Tells whether every label of `value` is lowercase ASCII letters, digits and inner hyphens,
/// with no `--` at the third and fourth characters (as `xn--` has), so that UTS 46 processing
/// leaves it unchanged.
fn is_plain_ascii_domain(value: &str) -> bool {
    value.split('.').all(|label| {
        let bytes = label.as_bytes();
        !bytes.is_empty()
            && bytes
                .iter()
                .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && bytes.first() != Some(&b'-')
            && bytes.last() != Some(&b'-')
            && bytes.get(2..4) != Some(b"--")
    })
}

fn is_valid_domain(domain: &str) -> bool {
    if domain.len() > MAX_DOMAIN_BYTES {
        return false;
    }
    let Some((_, last_label)) = domain.rsplit_once('.') else {
        return false;
    };
    let labels_valid = domain.split('.').all(|label| {
        (1..=MAX_LABEL_BYTES).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
    });
    labels_valid && !last_label.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The shortcut for plain ASCII names gives what UTS 46 processing gives.
        #[test]
        fn plain_domain_matches_idna(name in "[a-z0-9-]{1,12}(\\.[a-z0-9-]{1,12}){0,3}") {
            if is_plain_ascii_domain(&name) {
                proptest::prop_assert_eq!(idna::domain_to_ascii(&name).ok(), Some(name.clone()));
            }
        }
    }

    #[test]
    fn plain_domain_excludes_idna_cases() {
        assert!(is_plain_ascii_domain("www.example.com"));
        assert!(is_plain_ascii_domain("a-b.example"));
        for name in [
            "xn--bcher-kva.example",
            "-a.example",
            "a-.example",
            "Example.com",
            "a..b",
            "a_b.example",
            "b\u{fc}cher.example",
        ] {
            assert!(!is_plain_ascii_domain(name), "{name}");
        }
    }

    const EICAR_MD5: &str = "44d88612fea8a8f36de82e1278abb02f";
    const EICAR_SHA1: &str = "3395856ce81f2b7382dee72602f798b642f14140";
    const EICAR_SHA256: &str = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";

    /// Asserts that `raw` parses to `kind` and `value` and that the value parses to itself.
    fn assert_parses(raw: &str, kind: Kind, value: &str) {
        let indicator = parse(raw).unwrap_or_else(|e| panic!("parse({raw:?}) failed: {e}"));
        assert_eq!(indicator.kind(), kind, "kind of {raw:?}");
        assert_eq!(indicator.value(), value, "value of {raw:?}");
        assert!(!indicator.is_unmatchable(), "{raw:?} marked unmatchable");
        let again = parse(indicator.value()).expect("normalized value parses");
        assert_eq!(again, indicator, "parse is not idempotent for {raw:?}");
    }

    fn assert_rejected(raw: &str, expected: KeyError) {
        assert_eq!(parse(raw), Err(expected), "result for {raw:?}");
    }

    #[test]
    fn ipv4_addresses_and_networks() {
        let cases = [
            ("1.2.3.4", "1.2.3.4"),
            ("  8.8.8.8\n", "8.8.8.8"),
            ("8.8.8.8/32", "8.8.8.8"),
            ("192.0.2.0/24", "192.0.2.0/24"),
            ("192.0.2.77/24", "192.0.2.77/24"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("1.2.3.4/024", "1.2.3.4/24"),
        ];
        for (raw, value) in cases {
            assert_parses(raw, Kind::Ipv4, value);
        }
    }

    #[test]
    fn ipv4_invalid_forms_are_other() {
        for raw in [
            "010.0.0.1",
            "1.2.3.4/33",
            "1.2.3.4/+8",
            "1.2.3.4/",
            "1.2.3.4.",
        ] {
            assert_parses(raw, Kind::Other, raw);
        }
    }

    #[test]
    fn ipv6_addresses_and_networks() {
        let cases = [
            ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("2001:db8::1/128", "2001:db8::1"),
            ("2001:DB8::/32", "2001:db8::/32"),
            ("[2001:db8::5/64]", "2001:db8::5/64"),
            ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
            ("::ffff:102:304", "::ffff:1.2.3.4"),
            ("::102:304", "::1.2.3.4"),
            ("::1.2.3.4/120", "::1.2.3.4/120"),
            ("::0.0.1.2", "::102"),
            ("::1", "::1"),
            ("64:ff9b::1.2.3.4", "64:ff9b::102:304"),
            ("::", "::"),
            ("2001[:]db8[:][:]1", "2001:db8::1"),
        ];
        for (raw, value) in cases {
            assert_parses(raw, Kind::Ipv6, value);
        }
    }

    #[test]
    fn ipv6_zone_id_is_other() {
        assert_parses("fe80::1%eth0", Kind::Other, "fe80::1%eth0");
    }

    #[test]
    fn hashes_lowercased_by_length() {
        let sha512 = "A".repeat(128);
        let cases = [
            (EICAR_MD5.to_uppercase(), Kind::Md5, EICAR_MD5.to_owned()),
            (EICAR_SHA1.to_uppercase(), Kind::Sha1, EICAR_SHA1.to_owned()),
            (
                EICAR_SHA256.to_uppercase(),
                Kind::Sha256,
                EICAR_SHA256.to_owned(),
            ),
            (sha512, Kind::Sha512, "a".repeat(128)),
        ];
        for (raw, kind, value) in cases {
            assert_parses(&raw, kind, &value);
        }
    }

    #[test]
    fn hex_of_other_length_is_other() {
        let raw = &EICAR_MD5[..31];
        assert_parses(raw, Kind::Other, raw);
    }

    #[test]
    fn domains_normalized() {
        let cases = [
            ("example.com", "example.com"),
            ("EXAMPLE.com.", "example.com"),
            ("mb4z3nlfyrcjnoqf.onion", "mb4z3nlfyrcjnoqf.onion"),
            ("bücher.de", "xn--bcher-kva.de"),
            ("BÜCHER.DE", "xn--bcher-kva.de"),
            ("xn--bcher-kva.de", "xn--bcher-kva.de"),
            ("_dmarc.example.com", "_dmarc.example.com"),
            ("example。com", "example.com"),
            ("evil[.]com", "evil.com"),
            ("evil(dot)com", "evil.com"),
            ("evil[DOT]com", "evil.com"),
            ("evil{.}co(.)uk", "evil.co.uk"),
            ("evil[[.]]com", "evil.com"),
        ];
        for (raw, value) in cases {
            assert_parses(raw, Kind::Domain, value);
        }
    }

    #[test]
    fn domain_invalid_forms_are_other() {
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = format!("{}com", format!("{}.", "a".repeat(60)).repeat(5));
        let cases = [
            "localhost",
            "1.2.3",
            "example.123",
            "exa mple.com",
            "example.com..",
            "ex*ample.com",
            long_label.as_str(),
            long_name.as_str(),
        ];
        for raw in cases {
            assert_parses(raw, Kind::Other, raw);
        }
    }

    #[test]
    fn urls_lowercase_scheme_and_authority() {
        let cases = [
            ("HTTP://Evil.COM/Path?Q=1", "http://evil.com/Path?Q=1"),
            ("https://Evil.com", "https://evil.com"),
            ("https://EVIL.com?A=B#F", "https://evil.com?A=B#F"),
            (
                "ftp://User@Host.EXAMPLE/File",
                "ftp://user@host.example/File",
            ),
            ("http://[2001:DB8::1]:8080/X", "http://[2001:db8::1]:8080/X"),
            (
                "svn+SSH://Repo.example/Trunk",
                "svn+ssh://repo.example/Trunk",
            ),
            (
                "http://evil.com/a%20b!c?x=%25",
                "http://evil.com/a%20b!c?x=%25",
            ),
            ("http://evil.com/%E2%82%AC", "http://evil.com/%E2%82%AC"),
        ];
        for (raw, value) in cases {
            assert_parses(raw, Kind::Url, value);
        }
    }

    #[test]
    fn urls_defanged_refanged() {
        let cases = [
            ("hxxp://evil[.]com/x", "http://evil.com/x"),
            ("hXXps://evil[.]com/X", "https://evil.com/X"),
            ("HXXP://EVIL.com/X", "http://evil.com/X"),
            ("hxxp[://]evil(.)com", "http://evil.com"),
            ("hxxp[:]//evil{.}com", "http://evil.com"),
        ];
        for (raw, value) in cases {
            assert_parses(raw, Kind::Url, value);
        }
    }

    #[test]
    fn url_scheme_must_be_valid() {
        for raw in ["1http://evil.com", "://evil.com", "ht tp://evil.com"] {
            assert_parses(raw, Kind::Other, raw);
        }
    }

    #[test]
    fn defanged_ipv4_refanged() {
        assert_parses("1.2.3[.]4", Kind::Ipv4, "1.2.3.4");
        assert_parses("1[.]2(.)3{.}4", Kind::Ipv4, "1.2.3.4");
    }

    #[test]
    fn emails_normalized() {
        let cases = [
            ("user@example.com", "user@example.com"),
            ("User.Name+Tag@Example.COM", "user.name+tag@example.com"),
            ("user[@]evil[.]com", "user@evil.com"),
            ("user[at]evil[dot]com", "user@evil.com"),
            ("user(at)evil(dot)com", "user@evil.com"),
            ("info@bücher.de", "info@xn--bcher-kva.de"),
            ("user@example.com.", "user@example.com"),
        ];
        for (raw, value) in cases {
            assert_parses(raw, Kind::Email, value);
        }
    }

    #[test]
    fn email_invalid_forms_are_other() {
        for raw in [
            "@example.com",
            "a@b@example.com",
            "user@localhost",
            "us er@example.com",
        ] {
            assert_parses(raw, Kind::Other, raw);
        }
    }

    #[test]
    fn email_growing_past_max_is_other() {
        // Each "bü" label grows from 3 bytes to 9 ("xn--b-eha") in punycode.
        let domain = format!("{}de", "bü.".repeat(24));
        let local = "a".repeat(MAX_KEY_BYTES - 1 - domain.len());
        let raw = format!("{local}@{domain}");
        assert_eq!(raw.len(), MAX_KEY_BYTES);
        assert_parses(&raw, Kind::Other, &raw);
    }

    #[test]
    fn other_values_kept_as_is() {
        let cases = [
            ("Some Text", "Some Text"),
            ("C:\\Windows\\Evil.EXE", "C:\\Windows\\Evil.EXE"),
            ("HKLM\\Software\\Run", "HKLM\\Software\\Run"),
            ("a%b", "a%b"),
            ("a!", "a!"),
            ("a&b", "a&b"),
            ("[foo]", "[foo]"),
            ("[1.2.3.4]", "[1.2.3.4]"),
            ("(DOT)", "(DOT)"),
            ("C:\\report(dot)txt", "C:\\report(dot)txt"),
            ("invoice[at]2024", "invoice[at]2024"),
            ("12345", "12345"),
        ];
        for (raw, value) in cases {
            assert_parses(raw, Kind::Other, value);
        }
    }

    #[test]
    fn zero_is_unmatchable() {
        let indicator = parse(" 0 ").unwrap();
        assert_eq!(indicator.kind(), Kind::Other);
        assert_eq!(indicator.value(), "0");
        assert!(indicator.is_unmatchable());
    }

    #[test]
    fn composite_value_is_unmatchable() {
        let indicator = parse("203.0.113.77|443").unwrap();
        assert_eq!(indicator.kind(), Kind::Other);
        assert_eq!(indicator.value(), "203.0.113.77|443");
        assert!(indicator.is_unmatchable());
    }

    #[test]
    fn defanged_composite_is_refanged() {
        let indicator = parse("evil[.]com|1.2.3[.]4").unwrap();
        assert_eq!(indicator.value(), "evil.com|1.2.3.4");
        assert!(indicator.is_unmatchable());
    }

    #[test]
    fn plain_values_are_matchable() {
        assert!(!parse("00").unwrap().is_unmatchable());
        assert!(!parse("1.2.3.4").unwrap().is_unmatchable());
    }

    #[test]
    fn error_not_operator() {
        assert_rejected("!1.2.3.4", KeyError::Operator { operator: "!" });
    }

    #[test]
    fn error_and_named_before_or() {
        for key in ["a&&b||c", "a||b&&c"] {
            assert_rejected(key, KeyError::Operator { operator: "&&" });
        }
        assert_rejected("a||b", KeyError::Operator { operator: "||" });
    }

    #[test]
    fn error_like_wildcard_both_ends() {
        assert_rejected("%evil%", KeyError::Operator { operator: "%" });
    }

    #[test]
    fn error_like_wildcard_trailing() {
        assert_rejected("evil%", KeyError::Operator { operator: "%" });
    }

    #[test]
    fn error_like_wildcard_after_trim() {
        assert_rejected("  %evil.com ", KeyError::Operator { operator: "%" });
    }

    #[test]
    fn error_list_separator() {
        assert_rejected("a||b", KeyError::Operator { operator: "||" });
    }

    #[test]
    fn error_and_separator() {
        assert_rejected("a&&b", KeyError::Operator { operator: "&&" });
    }

    #[test]
    fn error_operator_after_refang() {
        assert_rejected("!evil[.]com", KeyError::Operator { operator: "!" });
    }

    #[test]
    fn error_empty_key() {
        assert_rejected("", KeyError::Empty);
    }

    #[test]
    fn error_whitespace_only_key() {
        assert_rejected("   ", KeyError::Empty);
        assert_rejected("\t\n\u{a0}\u{3000}", KeyError::Empty);
    }

    #[test]
    fn error_key_too_long() {
        let raw = "a".repeat(MAX_KEY_BYTES + 1);
        assert_rejected(&raw, KeyError::TooLong { bytes: 4097 });
    }

    #[test]
    fn key_at_max_length_accepted() {
        let raw = "a".repeat(MAX_KEY_BYTES);
        assert_parses(&raw, Kind::Other, &raw);
    }

    #[test]
    fn error_nul_control_char() {
        assert_rejected("evil\0.com", KeyError::ControlChar { position: 4 });
    }

    #[test]
    fn error_delete_control_char() {
        assert_rejected("ab\u{7f}", KeyError::ControlChar { position: 2 });
    }

    #[test]
    fn error_c1_control_char() {
        assert_rejected("ab\u{85}cd", KeyError::ControlChar { position: 2 });
    }

    #[test]
    fn error_tab_inside_key() {
        // The offset counts the two leading spaces that trimming removes.
        assert_rejected("  evil\t.com ", KeyError::ControlChar { position: 6 });
    }

    #[test]
    fn error_codes_distinct() {
        let errors = [
            (KeyError::Empty, "key_empty"),
            (KeyError::TooLong { bytes: 5000 }, "key_too_long"),
            (KeyError::Operator { operator: "!" }, "key_operator"),
            (KeyError::ControlChar { position: 3 }, "key_control_char"),
        ];
        for (error, code) in errors {
            assert_eq!(error.code(), code);
        }
    }

    #[test]
    fn error_messages_name_fix() {
        let cases = [
            (
                KeyError::Empty,
                "the key is empty or only whitespace: send the indicator value to look up",
            ),
            (
                KeyError::TooLong { bytes: 5000 },
                "the key is 5000 bytes long; the maximum is 4096 bytes after percent-decoding",
            ),
            (
                KeyError::Operator { operator: "!" },
                "the key starts with '!', which MISP reads as the NOT operator; \
                 send the plain indicator value",
            ),
            (
                KeyError::ControlChar { position: 3 },
                "the key contains a control character at byte 3; \
                 remove it and send the plain indicator value",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn operator_messages_name_operator() {
        for operator in ["!", "%", "&&", "||"] {
            let message = KeyError::Operator { operator }.to_string();
            assert!(
                message.contains(&format!("'{operator}'")),
                "message for {operator}: {message}"
            );
        }
    }

    #[test]
    fn kind_names_match_display() {
        for kind in Kind::ALL {
            assert_eq!(kind.to_string(), kind.as_str());
        }
        assert_eq!(Kind::Sha256.as_str(), "sha256");
        assert_eq!(Kind::Ipv4.as_str(), "ipv4");
        assert_eq!(Kind::Other.as_str(), "other");
    }
}
