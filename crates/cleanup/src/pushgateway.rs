//! Pushes the job's metrics to a Prometheus Pushgateway, grouped by
//! `job="cleanup"`.
//!
//! A push replaces the group, so counters would restart at each run. To make
//! `cleanup_job_runs_total` and `cleanup_keys_deleted_total` count across
//! runs (as the spec's figures do), the job reads the group's current values
//! first and pushes the sums. Runs never overlap (they hold the lock while
//! pushing), so the read-add-write cannot race with another run. A total the
//! job could not have pushed (not a number, negative, fractional, or beyond
//! 2^53, where an `f64` stops counting by ones) is refused with an error
//! naming it, rather than carried on as nonsense.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::report::{Status, Summary};

const JOB: &str = "cleanup";
const RUNS: &str = "cleanup_job_runs";
const KEYS_DELETED: &str = "cleanup_keys_deleted";
const ROWS_DELETED: &str = "cleanup_records_deleted";
const LAST_SUCCESS: &str = "cleanup_job_last_success_timestamp_seconds";

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Without its URL: reqwest's message would show the URL's credentials.
    #[error("PUSHGATEWAY_URL: {0}")]
    Http(reqwest::Error),
    #[error("PUSHGATEWAY_URL: the pushgateway answered {status}: {body}")]
    Rejected { status: u16, body: String },
    #[error("cannot encode metrics: {0}")]
    Encode(#[from] std::fmt::Error),
    #[error(
        "the pushgateway holds {series} = {value}, which this job cannot have pushed; \
         nothing was pushed. Delete the group (DELETE /metrics/job/{JOB}) to start the \
         counts again"
    )]
    UnreadablePrevious { series: String, value: String },
}

impl From<reqwest::Error> for PushError {
    fn from(error: reqwest::Error) -> Self {
        Self::Http(error.without_url())
    }
}

/// The largest count an `f64` sample holds exactly.
const MAX_COUNT: f64 = 9_007_199_254_740_992.0;

/// Totals so far, as the pushgateway holds them (zero when it has none).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Previous {
    runs: u64,
    keys_deleted: u64,
    rows_deleted: u64,
    last_success: f64,
}

pub async fn push(base_url: &str, summary: &Summary, now_seconds: f64) -> Result<(), PushError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let base = base_url.trim_end_matches('/');
    let previous = read_previous(&client, base).await?;
    let body = render(&previous, summary, now_seconds)?;
    let response = client
        .put(format!("{base}/metrics/job/{JOB}"))
        .header("content-type", platform::metrics::CONTENT_TYPE)
        .body(body)
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(PushError::Rejected {
            status: response.status().as_u16(),
            body: response.text().await.unwrap_or_default(),
        });
    }
    Ok(())
}

async fn read_previous(client: &reqwest::Client, base: &str) -> Result<Previous, PushError> {
    let response = client.get(format!("{base}/metrics")).send().await?;
    if !response.status().is_success() {
        return Err(PushError::Rejected {
            status: response.status().as_u16(),
            body: response.text().await.unwrap_or_default(),
        });
    }
    parse_previous(&response.text().await?)
}

/// Reads our group's samples from the pushgateway's own exposition, e.g.
/// `cleanup_job_runs_total{instance="",job="cleanup"} 24`.
fn parse_previous(exposition: &str) -> Result<Previous, PushError> {
    let mut previous = Previous::default();
    for line in exposition.lines().filter(|line| !line.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        if !series.contains(&format!("job=\"{JOB}\"")) {
            continue;
        }
        let name = series.split('{').next().unwrap_or_default();
        let unreadable = || PushError::UnreadablePrevious {
            series: series.to_owned(),
            value: value.to_owned(),
        };
        let count = || {
            value
                .parse::<f64>()
                .ok()
                .filter(|count| (0.0..=MAX_COUNT).contains(count) && count.fract() == 0.0)
                // Whole, non-negative and at most 2^53: the cast is exact.
                .map(|count| {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let whole = count as u64;
                    whole
                })
                .ok_or_else(unreadable)
        };
        match name.strip_suffix("_total") {
            Some(RUNS) => previous.runs = count()?,
            Some(KEYS_DELETED) => previous.keys_deleted = count()?,
            Some(ROWS_DELETED) => previous.rows_deleted = count()?,
            _ if name == LAST_SUCCESS => {
                previous.last_success = value
                    .parse::<f64>()
                    .ok()
                    .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
                    .ok_or_else(unreadable)?;
            }
            _ => {}
        }
    }
    Ok(previous)
}

fn render(previous: &Previous, summary: &Summary, now_seconds: f64) -> Result<String, PushError> {
    let mut registry = Registry::default();
    let runs = Counter::<u64>::default();
    runs.inc_by(previous.runs + 1);
    registry.register(RUNS, "Runs of the cleanup job that got the lock", runs);
    let keys = Counter::<u64>::default();
    keys.inc_by(previous.keys_deleted + summary.keys_deleted);
    registry.register(KEYS_DELETED, "Cache keys the cleanup job deleted", keys);
    let rows = Counter::<u64>::default();
    rows.inc_by(previous.rows_deleted + summary.tally.rows_deleted);
    registry.register(
        ROWS_DELETED,
        "Expired records the cleanup job deleted",
        rows,
    );
    let duration = Gauge::<f64, AtomicU64>::default();
    duration.set(summary.duration_seconds);
    registry.register(
        "cleanup_job_duration_seconds",
        "Duration of the last run",
        duration,
    );
    let last_success = Gauge::<f64, AtomicU64>::default();
    last_success.set(if summary.status == Status::Failed {
        previous.last_success
    } else {
        now_seconds
    });
    registry.register(
        LAST_SUCCESS,
        "When a run last ended without error (Unix seconds)",
        last_success,
    );
    Ok(platform::metrics::render(&registry)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_totals_are_read_from_our_group_only() {
        let exposition = "\
# TYPE cleanup_job_runs_total counter
cleanup_job_runs_total{instance=\"\",job=\"cleanup\"} 24
cleanup_job_runs_total{instance=\"\",job=\"other\"} 99
cleanup_keys_deleted_total{instance=\"\",job=\"cleanup\"} 150
cleanup_job_last_success_timestamp_seconds{instance=\"\",job=\"cleanup\"} 1.7e+09
push_time_seconds{instance=\"\",job=\"cleanup\"} 1.7e+09
";
        assert_eq!(
            parse_previous(exposition).ok(),
            Some(Previous {
                runs: 24,
                keys_deleted: 150,
                rows_deleted: 0,
                last_success: 1.7e9
            })
        );
        assert_eq!(parse_previous("").ok(), Some(Previous::default()));
    }

    #[test]
    fn totals_the_job_cannot_have_pushed_are_errors_that_name_them() {
        for (name, value) in [
            ("cleanup_job_runs_total", "1e30"),
            ("cleanup_job_runs_total", "-1"),
            ("cleanup_job_runs_total", "2.5"),
            ("cleanup_keys_deleted_total", "NaN"),
            ("cleanup_records_deleted_total", "+Inf"),
            ("cleanup_records_deleted_total", "9007199254740994"),
            ("cleanup_job_last_success_timestamp_seconds", "-Inf"),
        ] {
            let exposition = format!("{name}{{instance=\"\",job=\"cleanup\"}} {value}\n");
            match parse_previous(&exposition) {
                Err(error @ PushError::UnreadablePrevious { .. }) => {
                    let message = error.to_string();
                    assert!(
                        message.contains(name) && message.contains(value),
                        "{message}"
                    );
                }
                other => panic!("{name} {value}: {other:?}"),
            }
        }
    }
}
