//! Times as the HTTP API shows them: RFC 3339 in UTC.

/// Unix milliseconds as RFC 3339 in UTC, e.g. `2025-10-28T10:00:00.123Z`;
/// the epoch for a time `time` cannot represent.
pub fn rfc3339(unix_ms: i64) -> String {
    let nanos = i128::from(unix_ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_show_and_the_zone_is_utc() {
        assert_eq!(rfc3339(1_761_645_600_123), "2025-10-28T10:00:00.123Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(i64::MAX), "1970-01-01T00:00:00Z");
    }
}
