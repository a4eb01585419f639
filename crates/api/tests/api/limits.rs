//! What a slow, stalled or greedy client can take from the `api` process:
//! a connection for at most the header timeout, a request slot for at most
//! the request time limit, and, past the limits in flight, a 503 at once.
//! Every answer is counted in the metrics with its status, time-outs and
//! shed requests included. Memory stays bounded under many large writes.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::process::{Running, read_response, serving};

/// Waits for the server to close `stream` without an answer, sending
/// `trickle` after every 250 ms it stays open (nothing when empty); returns
/// how long that took (`None`: still open after `give_up`).
fn time_until_closed(
    stream: &mut TcpStream,
    trickle: &[u8],
    give_up: Duration,
) -> Option<Duration> {
    stream
        .set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let started = Instant::now();
    let mut buffer = [0; 1024];
    while started.elapsed() < give_up {
        match stream.read(&mut buffer) {
            Ok(0) => return Some(started.elapsed()),
            Ok(read) => panic!("an answer instead of a close: {:?}", &buffer[..read]),
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(started.elapsed()),
        }
        if stream.write_all(trickle).is_err() {
            return Some(started.elapsed());
        }
    }
    None
}

/// The `api` with a header timeout of one second.
fn one_second_header_timeout(dir: &Path) -> Command {
    let mut command = serving(dir);
    command
        .env("HEADER_READ_TIMEOUT_SECONDS", "1")
        .env("SHUTDOWN_DRAIN_SECONDS", "0");
    command
}

/// Checks that what [`time_until_closed`] measured is the one-second
/// header timeout.
fn assert_closed_after_one_second(open_for: Option<Duration>) {
    let open_for = open_for.expect("still open after 8 s with a 1 s header timeout");
    assert!(
        open_for >= Duration::from_millis(900) && open_for < Duration::from_secs(3),
        "closed after {open_for:?}; the header timeout is 1 s"
    );
}

#[test]
fn a_client_sending_headers_slowly_is_disconnected_within_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(&mut one_second_header_timeout(dir.path()));
    // Header bytes a few at a time, as a slowloris client sends them.
    let mut stream = running.connect();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    assert_closed_after_one_second(time_until_closed(&mut stream, b"a", Duration::from_secs(8)));
    // An ordinary client is served meanwhile and after.
    assert_eq!(running.request("GET", "/health").0, 200);
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(&mut one_second_header_timeout(dir.path()));
    let mut stream = running.connect();
    // Two requests 700 ms apart: the second comes after the timeout would
    // have run out, counted from the connection's opening.
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(700));
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut response = Vec::new();
        let mut buffer = [0; 1024];
        while !response.ends_with(br#"{"status":"ok"}"#) {
            let read = stream.read(&mut buffer).unwrap();
            assert!(read > 0, "closed mid-answer: {response:?}");
            response.extend_from_slice(&buffer[..read]);
        }
        assert!(response.starts_with(b"HTTP/1.1 200"), "{response:?}");
    }
    // Counted from the end of the last answer.
    assert_closed_after_one_second(time_until_closed(&mut stream, b"", Duration::from_secs(8)));
}

#[test]
fn a_request_in_flight_outlives_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let running =
        Running::start(one_second_header_timeout(dir.path()).env("REQUEST_TIMEOUT_SECONDS", "3"));
    // Its head is whole; its body never comes. The request's own time
    // limit answers it, not the header timeout.
    let started = Instant::now();
    let (status, body) = read_response(&mut running.stalled_post());
    assert_eq!(status, 408, "{body}");
    assert!(
        started.elapsed() >= Duration::from_millis(2900),
        "answered after {:?}; the time limit is 3 s",
        started.elapsed()
    );
}

/// The value of one `http_requests_total` series, 0 when absent.
fn requests_total(running: &Running, labels: &str) -> f64 {
    let (_, metrics) = running.request("GET", "/metrics");
    let series = format!("http_requests_total{{{labels}}}");
    testkit::sample(&metrics, &series).unwrap_or(0.0)
}

#[test]
fn a_timed_out_request_is_counted_with_its_408() {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(
        serving(dir.path())
            .env("REQUEST_TIMEOUT_SECONDS", "1")
            .env("SHUTDOWN_DRAIN_SECONDS", "0"),
    );
    let labels = r#"method="POST",route="/api/v1/data",status="408""#;
    assert_eq!(requests_total(&running, labels), 0.0);
    let (status, body) = read_response(&mut running.stalled_post());
    assert_eq!(status, 408, "{body}");
    assert_eq!(requests_total(&running, labels), 1.0);
}

#[test]
fn past_the_requests_in_flight_the_api_sheds_with_503_and_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(
        serving(dir.path())
            .env("MAX_REQUESTS_IN_FLIGHT", "2")
            .env("REQUEST_TIMEOUT_SECONDS", "5")
            .env("SHUTDOWN_DRAIN_SECONDS", "0"),
    );
    let held = [running.stalled_post(), running.stalled_post()];
    std::thread::sleep(Duration::from_millis(300));

    let mut third = running.connect();
    write!(
        third,
        "GET /api/v1/data/some-key HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    third.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("retry-after: 1\r\n"),
        "{response}"
    );
    assert!(response.contains(r#""code":"overloaded""#), "{response}");
    // The probes and metrics are never shed.
    assert_eq!(running.request("GET", "/health").0, 200);
    assert_eq!(running.request("GET", "/ready").0, 200);
    let shed = r#"method="GET",route="/api/v1/data/{key}",status="503""#;
    assert_eq!(requests_total(&running, shed), 1.0);

    // Once the held requests end, requests are admitted again.
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(running.request("GET", "/api/v1/data/some-key").0, 404);
}

#[test]
fn two_hundred_parallel_one_mib_writes_get_201_or_503_in_bounded_memory() {
    const WRITERS: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(serving(dir.path()).env("SHUTDOWN_DRAIN_SECONDS", "0"));
    let value = "v".repeat(1024 * 1024);
    let start = std::sync::Arc::new(std::sync::Barrier::new(WRITERS));
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            let body = format!(r#"{{"key":"big:{i}","value":"{value}"}}"#);
            let mut stream = running.connect();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                let request = format!(
                    "POST /api/v1/data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream
                    .set_read_timeout(Some(Duration::from_secs(60)))
                    .unwrap();
                stream.write_all(request.as_bytes())?;
                let mut response = Vec::new();
                stream.read_to_end(&mut response)?;
                let response = String::from_utf8_lossy(&response);
                Ok::<_, std::io::Error>(response.split(' ').nth(1).unwrap_or("none").to_owned())
            })
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    for writer in writers {
        let status = match writer.join().unwrap() {
            Ok(status) => status,
            Err(error) => format!("{:?}", error.kind()),
        };
        *statuses.entry(status).or_default() += 1;
    }
    let peak = testkit::peak_rss_bytes(running.pid());
    println!(
        "{WRITERS} parallel 1 MiB writes: {statuses:?}, peak RSS {} MiB",
        peak / (1024 * 1024)
    );
    let stored = statuses.get("201").copied().unwrap_or(0);
    let shed = statuses.get("503").copied().unwrap_or(0);
    assert_eq!(stored + shed, WRITERS, "only 201 or 503: {statuses:?}");
    assert!(stored > 0, "{statuses:?}");
    assert!(peak < 200 * 1024 * 1024, "peak RSS {peak} bytes");
}
