//! Checks that `openapi.yaml` documents every route and every error code of the service.
//!
//! The crate has no YAML parser, so these checks read the document as text: the keys directly
//! under `paths:` and the items of the `ErrorCode` enum. The routes and codes are read from the
//! source files themselves, so that a route or code added to the code without the document
//! fails here.

use std::collections::BTreeSet;

use misp_lookup::config::BUILTIN_FIELDS;
use misp_lookup::lookup::CacheStatus;

/// Every error `code` the service sends: `ApiError::code`, `KeyError::code` and `MispError::code`.
const ERROR_CODES: &[&str] = &[
    // KeyError::code
    "key_empty",
    "key_too_long",
    "key_operator",
    "key_control_char",
    // ApiError::code
    "key_invalid_encoding",
    "invalid_type",
    "invalid_query",
    "invalid_json",
    "missing_value",
    "unsupported_parameter",
    "too_many_keys",
    "unauthorized",
    "not_found",
    "method_not_allowed",
    "payload_too_large",
    "redis_failed",
    "internal_error",
    // MispError::code
    "misp_auth_failed",
    "misp_rate_limited",
    "misp_error",
    "misp_unavailable",
    "misp_bad_response",
    "misp_timeout",
    "misp_circuit_open",
    "misp_unreachable",
];

/// The source files that define a `fn code(&self) -> &'static str` returning error codes.
const CODE_SOURCES: &[&str] = &["src/http/error.rs", "src/indicator.rs", "src/misp/error.rs"];

fn read(relative: &str) -> String {
    let path = format!("{}/{relative}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("cannot read {path}: {error}"))
}

fn spec() -> String {
    read("openapi.yaml")
}

/// Returns the body of the first function whose text starts with `signature`, from its opening
/// brace to the matching closing brace.
fn function_body<'a>(source: &'a str, signature: &str) -> Option<&'a str> {
    let start = source.find(signature)?;
    let open = start + source[start..].find('{')?;
    let mut depth = 0usize;
    for (offset, byte) in source[open..].bytes().enumerate() {
        match byte {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&source[open..=open + offset]);
                }
            }
            _ => {}
        }
    }
    None
}

/// Returns the contents of every double-quoted string literal in `text` (no escapes expected).
fn string_literals(text: &str) -> Vec<&str> {
    text.split('"').skip(1).step_by(2).collect()
}

/// Returns the lines of the YAML block that starts at the line `header` (indentation
/// included) and ends before the next non-empty line indented no deeper than the header.
fn yaml_block<'a>(yaml: &'a str, header: &str) -> Vec<&'a str> {
    let mut lines = yaml.lines();
    if !lines.by_ref().any(|line| line.trim_end() == header) {
        return Vec::new();
    }
    let indent = header.len() - header.trim_start().len();
    lines
        .take_while(|line| line.trim().is_empty() || line.len() - line.trim_start().len() > indent)
        .collect()
}

/// Returns the keys directly under the top-level `paths:` key.
fn spec_paths(yaml: &str) -> BTreeSet<String> {
    yaml_block(yaml, "paths:")
        .into_iter()
        .filter(|line| line.starts_with("  /") && !line.starts_with("   "))
        .filter_map(|line| line.trim().strip_suffix(':'))
        .map(|path| path.trim_matches('\'').to_owned())
        .collect()
}

/// Returns the items of the `enum:` list of the `ErrorCode` schema.
fn spec_error_codes(yaml: &str) -> BTreeSet<String> {
    yaml_block(yaml, "    ErrorCode:")
        .into_iter()
        .skip_while(|line| line.trim() != "enum:")
        .skip(1)
        .map_while(|line| line.trim().strip_prefix("- "))
        .map(str::to_owned)
        .collect()
}

/// Returns the route patterns registered in `routes` of `src/http/mod.rs`, written as OpenAPI
/// paths: actix-web's `{name:regex}` becomes `{name}`. A `web::scope("/p")` whose default
/// service is a handler (`.default_service(web::to(`) serves every path below `/p`, which the
/// document writes as `/p/{key}`.
fn registered_routes() -> BTreeSet<String> {
    let source = read("src/http/mod.rs");
    let body =
        function_body(&source, "pub fn routes(").expect("src/http/mod.rs defines `pub fn routes(`");
    let mut routes: BTreeSet<String> = string_literals(body)
        .into_iter()
        .filter(|literal| literal.starts_with('/'))
        .map(|pattern| match (pattern.find(':'), pattern.rfind('}')) {
            (Some(colon), Some(close)) if colon < close => {
                format!("{}{}", &pattern[..colon], &pattern[close..])
            }
            _ => pattern.to_owned(),
        })
        .collect();

    for (offset, _) in body.match_indices("web::scope(\"") {
        let scope = &body[offset..];
        let prefix = string_literals(scope)[0];
        // The scope's builder calls end at the parenthesis that closes the `.service(` call
        // around it.
        let calls = &scope[..closing_paren(scope).expect("the scope's .service( call closes")];
        if calls.contains(".default_service(web::to(") {
            routes.insert(format!("{prefix}/{{key}}"));
        }
    }
    routes
}

/// Returns the offset of the first `)` in `text` that closes a parenthesis opened before it.
fn closing_paren(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (offset, byte) in text.bytes().enumerate() {
        match byte {
            b'(' => depth += 1,
            b')' if depth == 0 => return Some(offset),
            b')' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// Returns the string literals of every `fn code(&self)` in the files of [`CODE_SOURCES`].
fn source_error_codes() -> BTreeSet<String> {
    let mut codes = BTreeSet::new();
    for file in CODE_SOURCES {
        let source = read(file);
        let body = function_body(&source, "fn code(&self)")
            .unwrap_or_else(|| panic!("{file} defines no `fn code(&self)`"));
        codes.extend(string_literals(body).into_iter().map(str::to_owned));
    }
    codes
}

#[test]
fn text_helpers_find_known_entries() {
    let yaml = "paths:\n  /a/{x}:\n    get: {}\n  /b:\n    get: {}\ncomponents:\n  schemas:\n    \
                ErrorCode:\n      type: string\n      enum:\n        - one\n        - two\n    \
                Other:\n      enum:\n        - three\n";
    let paths = spec_paths(yaml);
    assert_eq!(
        paths,
        BTreeSet::from(["/a/{x}".to_owned(), "/b".to_owned()])
    );
    let codes = spec_error_codes(yaml);
    assert_eq!(codes, BTreeSet::from(["one".to_owned(), "two".to_owned()]));
}

#[test]
fn every_route_is_documented() {
    let routes = registered_routes();
    assert!(
        routes.contains("/lookup/{key}"),
        "route extraction from src/http/mod.rs failed; found {routes:?}"
    );
    let paths = spec_paths(&spec());
    for route in &routes {
        assert!(
            paths.contains(route),
            "route {route} is registered in src/http/mod.rs but missing under paths: in \
             openapi.yaml"
        );
    }
}

#[test]
fn every_documented_path_is_routed() {
    let routes = registered_routes();
    for path in spec_paths(&spec()) {
        assert!(
            routes.contains(&path),
            "openapi.yaml documents {path}, which src/http/mod.rs does not register"
        );
    }
}

#[test]
fn error_code_list_matches_source() {
    let listed: BTreeSet<String> = ERROR_CODES.iter().map(|code| (*code).to_owned()).collect();
    assert_eq!(
        listed.len(),
        ERROR_CODES.len(),
        "ERROR_CODES has duplicates"
    );
    let in_source = source_error_codes();
    for code in &in_source {
        assert!(
            listed.contains(code),
            "code {code} is returned by a `fn code` in {CODE_SOURCES:?}; add it to ERROR_CODES \
             and to the ErrorCode enum of openapi.yaml"
        );
    }
    for code in &listed {
        assert!(
            in_source.contains(code),
            "ERROR_CODES lists {code}, which no `fn code` in {CODE_SOURCES:?} returns"
        );
    }
}

#[test]
fn every_error_code_is_in_spec_enum() {
    let documented = spec_error_codes(&spec());
    for code in ERROR_CODES {
        assert!(
            documented.contains(*code),
            "error code {code} is missing from the ErrorCode enum of openapi.yaml"
        );
    }
}

#[test]
fn spec_enum_has_no_unknown_code() {
    for code in spec_error_codes(&spec()) {
        assert!(
            ERROR_CODES.contains(&code.as_str()),
            "the ErrorCode enum of openapi.yaml lists {code}, which the service never sends"
        );
    }
}

#[test]
fn builtin_fields_are_documented() {
    let yaml = spec();
    let block = yaml_block(&yaml, "    GraylogFields:");
    for field in BUILTIN_FIELDS {
        let property = format!("{field}:");
        assert!(
            block.iter().any(|line| line.trim() == property),
            "built-in field {field} is missing from the GraylogFields schema of openapi.yaml"
        );
    }
}

#[test]
fn cache_statuses_are_documented() {
    let yaml = spec();
    let block = yaml_block(&yaml, "    X-Cache:");
    let enum_line = block
        .iter()
        .find(|line| line.trim_start().starts_with("enum:"))
        .expect("the X-Cache header of openapi.yaml has an enum");
    for status in [
        CacheStatus::Hit,
        CacheStatus::Miss,
        CacheStatus::Coalesced,
        CacheStatus::Redis,
        CacheStatus::Stale,
    ] {
        assert!(
            enum_line.contains(status.as_str()),
            "X-Cache value {} is missing from the X-Cache enum of openapi.yaml",
            status.as_str()
        );
    }
}
