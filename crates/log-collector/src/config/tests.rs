//! The configuration's parsing: a wrong value names its variable, and
//! never shows a secret.

use clap::Parser;

use super::*;

fn parse(args: &[&str]) -> Config {
    Config::parse_from(std::iter::once("log-collector").chain(args.iter().copied()))
}

#[test]
fn a_bad_loki_url_is_named_without_its_credentials() {
    for raw in ["http://user:s3cret@[loki", "ftp://user:s3cret@loki"] {
        let config = parse(&["--collector-sink", "loki", "--collector-loki-url", raw]);
        let error = config.settings().unwrap_err().to_string();
        assert!(error.starts_with("COLLECTOR_LOKI_URL"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }
}

#[test]
fn sinks_name_the_variable_they_miss() {
    for (sink, variable) in [
        ("file", "COLLECTOR_FILE_PATH"),
        ("loki", "COLLECTOR_LOKI_URL"),
        ("redis", "REDIS_HOST"),
    ] {
        let error = parse(&["--node-name", "n1", "--collector-sink", sink])
            .settings()
            .unwrap_err();
        assert!(error.to_string().starts_with(variable), "{error}");
    }
}

#[test]
fn paths_must_be_absolute_globs() {
    let config = parse(&[
        "--node-name",
        "n1",
        "--collector-paths",
        "/a/*.log, /b/c.log",
    ]);
    assert_eq!(config.settings().unwrap().paths.len(), 2);
    for bad in ["relative/*.log", "/a/[", " , "] {
        let error = parse(&["--node-name", "n1", "--collector-paths", bad])
            .settings()
            .unwrap_err();
        assert!(error.to_string().starts_with("COLLECTOR_PATHS"), "{error}");
    }
}
