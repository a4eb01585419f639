//! Container and plain lines through the parser: CRI and docker json-file
//! formats, partial lines joined, and malformed, invalid or over-long input
//! kept and counted.

use std::path::Path;

use super::*;

const TS: &str = "2026-11-26T07:00:00.123456789Z";

fn parser(format: Format, max_line_bytes: usize) -> LineParser {
    let path = match format {
        Format::Container => "/var/log/pods/ns_pod_uid/c/0.log",
        Format::Plain => "/var/log/app.log",
    };
    LineParser::new(Arc::new(Origin::new("n", Path::new(path))), max_line_bytes)
}

fn feed(parser: &mut LineParser, metrics: &Metrics, lines: &[&[u8]]) -> Vec<Event> {
    let mut offset = 0;
    let mut events = Vec::new();
    for bytes in lines {
        let line = RawLine {
            bytes,
            start: offset,
            truncated: false,
        };
        offset += bytes.len() as u64 + 1;
        events.extend(parser.parse(line, "read-time", metrics));
    }
    events
}

fn messages(events: &[Event]) -> Vec<(&str, Option<Stream>)> {
    events.iter().map(|e| (e.message(), e.stream)).collect()
}

#[test]
fn cri_lines_and_partials_joined_per_stream() {
    let metrics = Metrics::default();
    let mut parser = parser(Format::Container, 1024);
    let lines: Vec<String> = vec![
        format!("{TS} stdout F hello world"),
        format!("{TS} stdout P first "),
        format!("{TS} stderr P err-a "),
        format!("{TS} stdout P second "),
        format!("{TS} stderr F err-b"),
        format!("{TS} stdout F third"),
        format!("{TS} stdout F"),
    ];
    let lines: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    let events = feed(&mut parser, &metrics, &lines);
    assert_eq!(
        messages(&events),
        [
            ("hello world", Some(Stream::Stdout)),
            ("err-a err-b", Some(Stream::Stderr)),
            ("first second third", Some(Stream::Stdout)),
            ("", Some(Stream::Stdout)),
        ]
    );
    assert_eq!(events[0].timestamp(), TS);
    assert_eq!(metrics.malformed_lines.get(), 0);
}

#[test]
fn resume_offset_waits_for_the_first_part_of_a_partial_line() {
    let metrics = Metrics::default();
    let mut parser = parser(Format::Container, 1024);
    let first = format!("{TS} stdout F done");
    let partial = format!("{TS} stderr P half");
    feed(
        &mut parser,
        &metrics,
        &[first.as_bytes(), partial.as_bytes()],
    );
    let partial_start = first.len() as u64 + 1;
    assert_eq!(parser.resume_offset(10_000), partial_start);
    // The file ends without the last part: what there is gets shipped.
    let rest = parser.finish(&metrics);
    assert_eq!(messages(&rest), [("half", Some(Stream::Stderr))]);
    assert_eq!(parser.resume_offset(10_000), 10_000);
}

#[test]
fn docker_json_lines_including_split_ones() {
    let metrics = Metrics::default();
    let mut parser = parser(Format::Container, 1024);
    let lines: [&[u8]; 3] = [
        br#"{"log":"one \"quoted\"\n","stream":"stdout","time":"2026-11-26T07:00:00.1Z"}"#,
        br#"{"log":"split ","stream":"stderr","time":"2026-11-26T07:00:00.2Z"}"#,
        br#"{"log":"end\n","stream":"stderr","time":"2026-11-26T07:00:00.3Z"}"#,
    ];
    let events = feed(&mut parser, &metrics, &lines);
    assert_eq!(
        messages(&events),
        [
            ("one \"quoted\"", Some(Stream::Stdout)),
            ("split end", Some(Stream::Stderr))
        ]
    );
    assert_eq!(events[1].timestamp(), "2026-11-26T07:00:00.2Z");
}

#[test]
fn malformed_container_lines_are_kept_as_text_and_counted() {
    let metrics = Metrics::default();
    let mut parser = parser(Format::Container, 1024);
    let lines: [&[u8]; 5] = [
        b"just text",
        b"2026-11-26T07:00:00Z stdout X wrong tag",
        b"2026-11-26T07:00:00Z stdlog F wrong stream",
        br#"{"log":"no time"}"#,
        b"",
    ];
    let events = feed(&mut parser, &metrics, &lines);
    assert_eq!(events.len(), 5);
    assert_eq!(events[0].message(), "just text");
    assert!(
        events
            .iter()
            .all(|e| e.stream.is_none() && e.timestamp() == "read-time")
    );
    assert_eq!(metrics.malformed_lines.get(), 5);
}

#[test]
fn invalid_utf8_is_replaced_and_counted() {
    let metrics = Metrics::default();
    let mut parser = parser(Format::Container, 1024);
    let line = [
        format!("{TS} stdout F bad ").as_bytes(),
        &[0xff, 0xfe],
        b" end",
    ]
    .concat();
    let events = feed(&mut parser, &metrics, &[&line]);
    assert_eq!(events[0].message(), "bad \u{fffd}\u{fffd} end");
    assert_eq!(metrics.invalid_utf8_lines.get(), 1);

    let mut plain = self::parser(Format::Plain, 1024);
    let events = feed(&mut plain, &metrics, &[&[b'a', 0xc3]]);
    assert_eq!(events[0].message(), "a\u{fffd}");
    assert_eq!(events[0].stream, None);
}

#[test]
fn a_character_split_between_partial_parts_is_joined_whole() {
    let metrics = Metrics::default();
    let mut parser = parser(Format::Container, 1024);
    // Containerd cuts at a byte count: "é" (c3 a9) straddles the parts.
    let first = [format!("{TS} stdout P caf").as_bytes(), &[0xc3]].concat();
    let last = [format!("{TS} stdout F ").as_bytes(), &[0xa9], b" au lait"].concat();
    let events = feed(&mut parser, &metrics, &[&first, &last]);
    assert_eq!(messages(&events), [("café au lait", Some(Stream::Stdout))]);
    assert_eq!(metrics.invalid_utf8_lines.get(), 0);
}

#[test]
fn long_lines_are_cut_at_the_limit_and_counted_once() {
    let metrics = Metrics::default();
    let mut parser = parser(Format::Container, 64);
    // A joined line growing past the limit, parts of multi-byte text.
    let part = format!("{TS} stdout P {}", "é".repeat(20));
    let last = format!("{TS} stdout F {}", "é".repeat(20));
    let events = feed(
        &mut parser,
        &metrics,
        &[part.as_bytes(), part.as_bytes(), last.as_bytes()],
    );
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].message(), "é".repeat(32));
    assert_eq!(metrics.truncated_lines.get(), 1);

    // A line the reader already cut.
    let cut = RawLine {
        bytes: b"2026-11-26T07:00:00.1Z stdout F abc",
        start: 0,
        truncated: true,
    };
    let event = parser.parse(cut, "read-time", &metrics).unwrap();
    assert_eq!(event.message(), "abc");
    assert_eq!(metrics.truncated_lines.get(), 2);
}
