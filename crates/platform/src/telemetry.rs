//! Logging: one JSON object per line on stdout (or stderr), filtered by
//! `RUST_LOG`.
//!
//! JSON because the log collector (and any cluster log pipeline) parses it;
//! `LOG_FORMAT=text` gives a human-friendly format for a terminal.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `default_filter` applies when `RUST_LOG`
/// is unset (e.g. `"info"`).
pub fn init(default_filter: &str) {
    init_with(default_filter, std::io::stdout);
}

/// Like [`init`], on stderr: for programs whose stdout carries data (the log
/// collector's `stdout` sink).
pub fn init_to_stderr(default_filter: &str) {
    init_with(default_filter, std::io::stderr);
}

fn init_with<W>(default_filter: &str, writer: W)
where
    W: for<'writer> tracing_subscriber::fmt::MakeWriter<'writer> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let human = std::env::var("LOG_FORMAT").is_ok_and(|format| format == "text");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    // A second call (e.g. from tests that start several apps) keeps the first
    // subscriber; that is fine and not worth an error.
    let _ = if human {
        builder.try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    };
}
