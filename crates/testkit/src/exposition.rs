//! Reading samples out of the Prometheus text exposition format, as a
//! scraper sees it.

/// The value of the sample `series` (a name, with its labels exactly as the
/// exposition writes them) in `exposition`, if present.
pub fn sample(exposition: &str, series: &str) -> Option<f64> {
    samples(exposition).find_map(|(name, labels, value)| {
        let written = series.strip_prefix(name)?;
        (written == labels).then_some(value)
    })
}

/// The value of the first sample of metric `name` whose labels contain
/// `label` (for example `job="cleanup"`; `""` matches any), if present.
pub fn sample_labelled(exposition: &str, name: &str, label: &str) -> Option<f64> {
    samples(exposition).find_map(|(sample_name, labels, value)| {
        (sample_name == name && labels.contains(label)).then_some(value)
    })
}

/// Every sample line as (name, `{labels}` or "", value); comments and lines
/// that do not parse are skipped.
fn samples(exposition: &str) -> impl Iterator<Item = (&str, &str, f64)> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = match line.rfind('}') {
                Some(end) => (&line[..=end], line[end + 1..].trim()),
                None => line.split_once(' ')?,
            };
            let value = value.split(' ').next()?.parse().ok()?;
            let (name, labels) = match series.find('{') {
                Some(start) => series.split_at(start),
                None => (series, ""),
            };
            Some((name, labels, value))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPOSITION: &str = "# HELP up Whether it is up.\n\
        # TYPE up gauge\n\
        up 1\n\
        http_requests_total{method=\"GET\",status=\"200\"} 7\n\
        push_time_seconds{instance=\"\",job=\"cleanup\"} 1.7e+09\n\
        labels_with_braces{path=\"/a}b\"} 3 1700000000000\n";

    #[test]
    fn finds_a_series_by_its_exact_labels() {
        assert_eq!(sample(EXPOSITION, "up"), Some(1.0));
        assert_eq!(
            sample(
                EXPOSITION,
                "http_requests_total{method=\"GET\",status=\"200\"}"
            ),
            Some(7.0)
        );
        assert_eq!(
            sample(EXPOSITION, "http_requests_total{method=\"GET\"}"),
            None
        );
        assert_eq!(sample(EXPOSITION, "http_requests"), None);
    }

    #[test]
    fn finds_a_series_by_one_of_its_labels() {
        assert_eq!(
            sample_labelled(EXPOSITION, "push_time_seconds", "job=\"cleanup\""),
            Some(1.7e9)
        );
        assert_eq!(
            sample_labelled(EXPOSITION, "push_time_seconds", "job=\"api\""),
            None
        );
        assert_eq!(
            sample_labelled(EXPOSITION, "labels_with_braces", ""),
            Some(3.0)
        );
        assert_eq!(sample_labelled(EXPOSITION, "up", ""), Some(1.0));
    }
}
