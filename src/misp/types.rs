//! MISP attribute types, the `type=` filter and its kind groups.

use crate::indicator::Kind;

/// Every attribute type of MISP 2.5 (from the `AttributeType` enum of MISP's OpenAPI document,
/// MISP 2.5.1). A `type=` value outside this list is rejected rather than sent, because MISP
/// would silently match nothing.
pub const MISP_TYPES: &[&str] = &[
    "md5",
    "sha1",
    "sha256",
    "filename",
    "pdb",
    "filename|md5",
    "filename|sha1",
    "filename|sha256",
    "ip-src",
    "ip-dst",
    "hostname",
    "domain",
    "domain|ip",
    "email",
    "email-src",
    "eppn",
    "email-dst",
    "email-subject",
    "email-attachment",
    "email-body",
    "float",
    "git-commit-id",
    "url",
    "http-method",
    "user-agent",
    "ja3-fingerprint-md5",
    "jarm-fingerprint",
    "favicon-mmh3",
    "hassh-md5",
    "hasshserver-md5",
    "regkey",
    "regkey|value",
    "AS",
    "snort",
    "bro",
    "zeek",
    "community-id",
    "pattern-in-file",
    "pattern-in-traffic",
    "pattern-in-memory",
    "pattern-filename",
    "pgp-public-key",
    "pgp-private-key",
    "yara",
    "stix2-pattern",
    "sigma",
    "gene",
    "kusto-query",
    "mime-type",
    "identity-card-number",
    "cookie",
    "vulnerability",
    "cpe",
    "weakness",
    "attachment",
    "malware-sample",
    "link",
    "comment",
    "text",
    "hex",
    "other",
    "named pipe",
    "mutex",
    "process-state",
    "target-user",
    "target-email",
    "target-machine",
    "target-org",
    "target-location",
    "target-external",
    "btc",
    "dash",
    "xmr",
    "iban",
    "bic",
    "bank-account-nr",
    "aba-rtn",
    "bin",
    "cc-number",
    "prtn",
    "phone-number",
    "threat-actor",
    "campaign-name",
    "campaign-id",
    "malware-type",
    "uri",
    "authentihash",
    "vhash",
    "ssdeep",
    "imphash",
    "telfhash",
    "pehash",
    "impfuzzy",
    "sha224",
    "sha384",
    "sha512",
    "sha512/224",
    "sha512/256",
    "sha3-224",
    "sha3-256",
    "sha3-384",
    "sha3-512",
    "tlsh",
    "cdhash",
    "filename|authentihash",
    "filename|vhash",
    "filename|ssdeep",
    "filename|imphash",
    "filename|impfuzzy",
    "filename|pehash",
    "filename|sha224",
    "filename|sha384",
    "filename|sha512",
    "filename|sha512/224",
    "filename|sha512/256",
    "filename|sha3-224",
    "filename|sha3-256",
    "filename|sha3-384",
    "filename|sha3-512",
    "filename|tlsh",
    "windows-scheduled-task",
    "windows-service-name",
    "windows-service-displayname",
    "whois-registrant-email",
    "whois-registrant-phone",
    "whois-registrant-name",
    "whois-registrant-org",
    "whois-registrar",
    "whois-creation-date",
    "x509-fingerprint-sha1",
    "x509-fingerprint-md5",
    "x509-fingerprint-sha256",
    "dns-soa-email",
    "size-in-bytes",
    "counter",
    "datetime",
    "port",
    "ip-dst|port",
    "ip-src|port",
    "hostname|port",
    "mac-address",
    "mac-eui-64",
    "email-dst-display-name",
    "email-src-display-name",
    "email-header",
    "email-reply-to",
    "email-x-mailer",
    "email-mime-boundary",
    "email-thread-index",
    "email-message-id",
    "github-username",
    "github-repository",
    "github-organisation",
    "jabber-id",
    "twitter-id",
    "dkim",
    "dkim-signature",
    "first-name",
    "middle-name",
    "last-name",
    "full-name",
    "date-of-birth",
    "place-of-birth",
    "gender",
    "passport-number",
    "passport-country",
    "passport-expiration",
    "redress-number",
    "nationality",
    "visa-number",
    "issue-date-of-the-visa",
    "primary-residence",
    "country-of-residence",
    "special-service-request",
    "frequent-flyer-number",
    "travel-details",
    "payment-details",
    "place-port-of-original-embarkation",
    "place-port-of-clearance",
    "place-port-of-onward-foreign-destination",
    "passenger-name-record-locator-number",
    "mobile-application-id",
    "chrome-extension-id",
    "cortex",
    "boolean",
    "anonymised",
];

/// Kind groups that `type=` accepts besides MISP types, and the MISP types each expands to.
/// A group lists every type whose value, or one half of whose composite value, can hold an
/// indicator of that kind.
pub const KIND_GROUPS: &[(&str, &[&str])] = &[
    (
        "ip",
        &[
            "ip-src",
            "ip-dst",
            "ip-src|port",
            "ip-dst|port",
            "domain|ip",
        ],
    ),
    (
        "hash",
        &[
            "md5",
            "sha1",
            "sha256",
            "sha512",
            "filename|md5",
            "filename|sha1",
            "filename|sha256",
            "filename|sha512",
            "malware-sample",
        ],
    ),
    (
        "domain",
        &["domain", "hostname", "domain|ip", "hostname|port"],
    ),
    ("url", &["url", "link", "uri"]),
    (
        "email",
        &[
            "email",
            "email-src",
            "email-dst",
            "email-reply-to",
            "target-email",
            "whois-registrant-email",
            "dns-soa-email",
        ],
    ),
];

/// A validated `type=` filter: the MISP types to search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeFilter {
    types: Vec<&'static str>,
}

/// A `type=` value that names neither a MISP type nor a kind group.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown type {0:?}: use MISP attribute types (e.g. ip-src,ip-dst) or one of the groups \
     ip, hash, domain, url, email"
)]
pub struct UnknownType(pub String);

impl TypeFilter {
    /// Parses a comma-separated list of MISP types and kind groups. Groups expand to their
    /// types; duplicates are dropped and the result is sorted, so that equal filters make
    /// equal cache keys.
    pub fn parse(text: &str) -> Result<Self, UnknownType> {
        let mut types: Vec<&'static str> = Vec::new();
        for item in text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            if let Some((_, group)) = KIND_GROUPS.iter().find(|(name, _)| *name == item) {
                types.extend_from_slice(group);
            } else if let Some(known) = MISP_TYPES.iter().find(|known| **known == item) {
                types.push(known);
            } else {
                return Err(UnknownType(item.to_owned()));
            }
        }
        if types.is_empty() {
            return Err(UnknownType(text.to_owned()));
        }
        types.sort_unstable();
        types.dedup();
        Ok(Self { types })
    }

    /// The MISP types to send as restSearch's `type`.
    pub fn types(&self) -> &[&'static str] {
        &self.types
    }

    /// Tells whether any type of the filter can hold an indicator of this kind. A key whose
    /// kind no type can hold is a miss without asking MISP.
    pub fn accepts(&self, kind: Kind) -> bool {
        self.types
            .iter()
            .any(|misp_type| type_can_hold(misp_type, kind))
    }

    /// A stable text form for cache keys.
    pub fn cache_tag(&self) -> String {
        self.types.join(",")
    }
}

/// Tells whether an attribute of `misp_type` can hold a value of `kind` in its value or in
/// one half of a composite value. Types not listed here (text, comment, other...) can hold
/// anything.
pub fn type_can_hold(misp_type: &str, kind: Kind) -> bool {
    use Kind::*;
    match misp_type {
        "ip-src" | "ip-dst" => matches!(kind, Ipv4 | Ipv6),
        // The port half classifies as "other".
        "ip-src|port" | "ip-dst|port" => matches!(kind, Ipv4 | Ipv6 | Other),
        "domain|ip" => matches!(kind, Domain | Ipv4 | Ipv6),
        "domain" | "hostname" => kind == Domain,
        "hostname|port" => matches!(kind, Domain | Other),
        "md5" => kind == Md5,
        "sha1" => kind == Sha1,
        "sha256" => kind == Sha256,
        "sha512" => kind == Sha512,
        // A URL attribute may hold a bare host or path as well as a full URL.
        "url" | "link" | "uri" => matches!(kind, Url | Domain | Ipv4 | Ipv6 | Other),
        "email"
        | "email-src"
        | "email-dst"
        | "email-reply-to"
        | "target-email"
        | "whois-registrant-email"
        | "dns-soa-email" => kind == Email,
        // Composite types with a file name half (filename|sha256, malware-sample...) and every
        // free-form type can hold a value of any kind, since a file name can look like a domain.
        _ => true,
    }
}

/// Tells whether MISP stores values of this type as two halves (`value1|value2`).
pub fn is_composite(misp_type: &str) -> bool {
    misp_type.contains('|') || misp_type == "malware-sample"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_expands_to_types() {
        let filter = TypeFilter::parse("ip").unwrap();
        assert!(filter.types().contains(&"ip-dst|port"));
        assert!(filter.types().contains(&"domain|ip"));
    }

    #[test]
    fn filter_is_sorted_and_deduplicated() {
        let a = TypeFilter::parse("ip-dst,ip-src,ip-dst").unwrap();
        let b = TypeFilter::parse("ip-src, ip-dst").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.cache_tag(), "ip-dst,ip-src");
    }

    #[test]
    fn unknown_type_is_rejected() {
        assert!(TypeFilter::parse("ipaddress").is_err());
        assert!(TypeFilter::parse(",").is_err());
    }

    #[test]
    fn filter_accepts_kinds() {
        let hashes = TypeFilter::parse("sha256").unwrap();
        assert!(hashes.accepts(Kind::Sha256));
        assert!(!hashes.accepts(Kind::Ipv4));
        let group = TypeFilter::parse("hash").unwrap();
        // filename|sha256 has a file name half, which may look like anything.
        assert!(group.accepts(Kind::Domain));
        let ips = TypeFilter::parse("ip-src,ip-dst").unwrap();
        assert!(!ips.accepts(Kind::Sha256));
    }
}
