//! Freshness by indicator kind: `--ttl-hit` and `--ttl-miss` tables.

use std::time::Duration;

use crate::indicator::Kind;

/// Freshness per kind, parsed from a bare duration (`4h`) or a list such as
/// `sha256=24h,ip=1h,default=4h`. List keys are kinds (`ipv4`, `sha256`...), the groups `ip`
/// (ipv4, ipv6) and `hash` (md5, sha1, sha256, sha512), or `default`. A kind's own entry wins
/// over its group's, whatever the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtlTable {
    default: Duration,
    by_kind: [Option<Duration>; Kind::ALL.len()],
}

impl TtlTable {
    /// Creates a table with the same duration for every kind.
    pub fn uniform(duration: Duration) -> Self {
        Self {
            default: duration,
            by_kind: [None; Kind::ALL.len()],
        }
    }

    /// Parses a bare duration or a `key=duration` list. The message names the wrong part.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if !text.contains('=') {
            return parse_positive(text).map(Self::uniform);
        }

        let mut default = None;
        let mut groups = [None; Kind::ALL.len()];
        let mut kinds = [None; Kind::ALL.len()];
        for item in text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            let Some((key, value)) = item.split_once('=') else {
                return Err(format!("{item:?} must have the form KEY=DURATION"));
            };
            let (key, duration) = (key.trim(), parse_positive(value.trim())?);
            match key {
                "default" => default = Some(duration),
                "ip" => set_all(&mut groups, &[Kind::Ipv4, Kind::Ipv6], duration),
                "hash" => set_all(
                    &mut groups,
                    &[Kind::Md5, Kind::Sha1, Kind::Sha256, Kind::Sha512],
                    duration,
                ),
                other => {
                    let kind = Kind::ALL
                        .into_iter()
                        .find(|kind| kind.as_str() == other)
                        .ok_or_else(|| {
                            format!(
                                "unknown key {other:?}; use a kind (ipv4, ipv6, domain, url, \
                                 md5, sha1, sha256, sha512, email, other), ip, hash or default"
                            )
                        })?;
                    kinds[kind as usize] = Some(duration);
                }
            }
        }
        let default = default.ok_or("the list needs a default=DURATION entry")?;
        let mut by_kind = groups;
        for (slot, kind) in by_kind.iter_mut().zip(kinds) {
            if kind.is_some() {
                *slot = kind;
            }
        }
        Ok(Self { default, by_kind })
    }

    /// Returns the freshness of an answer about an indicator of `kind`.
    pub fn for_kind(&self, kind: Kind) -> Duration {
        self.by_kind[kind as usize].unwrap_or(self.default)
    }

    /// Returns the maximum freshness in the table.
    pub fn max(&self) -> Duration {
        self.by_kind
            .iter()
            .flatten()
            .copied()
            .fold(self.default, Duration::max)
    }
}

fn set_all(slots: &mut [Option<Duration>], kinds: &[Kind], duration: Duration) {
    for kind in kinds {
        slots[*kind as usize] = Some(duration);
    }
}

fn parse_positive(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text)
        .map_err(|err| format!("{text:?} is not a duration such as 10m or 4h: {err}"))?;
    if duration.is_zero() {
        return Err(format!("{text:?} must be longer than zero"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn bare_duration_applies_to_all() {
        let table = TtlTable::parse("2h").unwrap();
        assert_eq!(table.for_kind(Kind::Ipv4), 2 * HOUR);
        assert_eq!(table.for_kind(Kind::Other), 2 * HOUR);
    }

    #[test]
    fn kind_beats_group_in_any_order() {
        let table = TtlTable::parse("sha256=24h,hash=12h,ip=1h,default=4h").unwrap();
        assert_eq!(table.for_kind(Kind::Sha256), 24 * HOUR);
        assert_eq!(table.for_kind(Kind::Md5), 12 * HOUR);
        assert_eq!(table.for_kind(Kind::Ipv6), HOUR);
        assert_eq!(table.for_kind(Kind::Domain), 4 * HOUR);
        assert_eq!(table.max(), 24 * HOUR);
    }

    #[test]
    fn list_without_default_is_rejected() {
        assert!(TtlTable::parse("ip=1h").is_err());
    }

    #[test]
    fn unknown_key_and_zero_are_rejected() {
        assert!(TtlTable::parse("ipaddr=1h,default=1h").is_err());
        assert!(TtlTable::parse("0s").is_err());
        assert!(TtlTable::parse("ip=0s,default=1h").is_err());
    }
}
