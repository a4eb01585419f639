//! The `api` binary as a process: started with a cleared environment on a
//! free loopback port, its log lines collected, spoken to over raw TCP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `api` with a clean environment (nothing leaks in from the machine).
pub fn api() -> Command {
    testkit::program(env!("CARGO_BIN_EXE_api"))
}

pub fn output_of(command: &mut Command) -> (Option<i32>, String) {
    let output = command.output().unwrap();
    (output.status.code(), testkit::output_text(&output))
}

/// `api` on a free loopback port with an SQLite store in `dir`.
pub fn serving(dir: &std::path::Path) -> Command {
    let mut command = api();
    command
        .env("PORT", "0")
        .env("BIND_ADDRESS", "127.0.0.1")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.join("api.db").display()),
        );
    command
}

/// A running `api` process and the lines it has logged.
pub struct Running {
    child: Child,
    pub port: u16,
    logs: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    pub fn start(command: &mut Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, logs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut running = Self {
            child,
            port: 0,
            logs,
            seen: Vec::new(),
        };
        let serving = running.wait_for_log("\"serving\"");
        let log: serde_json::Value = serde_json::from_str(&serving).unwrap();
        let address: std::net::SocketAddr = log["address"].as_str().unwrap().parse().unwrap();
        running.port = address.port();
        running
    }

    /// The first log line containing `needle`, waiting for it if need be.
    pub fn wait_for_log(&mut self, needle: &str) -> String {
        if let Some(line) = self.seen.iter().find(|line| line.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.logs.recv_timeout(left).unwrap_or_else(|_| {
                panic!("no log line with {needle}; saw:\n{}", self.seen.join("\n"))
            });
            self.seen.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// A new connection, which gives up reading after 10 s.
    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    }

    /// One HTTP/1.1 request on a new connection: (status, body).
    pub fn request(&self, method: &str, path: &str) -> (u16, String) {
        let mut stream = self.connect();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        read_response(&mut stream)
    }

    /// Starts a POST that announces a body and sends only its start: the
    /// request holds its slot until the time limit.
    pub fn stalled_post(&self) -> TcpStream {
        let mut stalled = self.connect();
        write!(
            stalled,
            "POST /api/v1/data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\nConnection: close\r\n\r\n{{\"key\":"
        )
        .unwrap();
        stalled.flush().unwrap();
        stalled
    }

    pub fn wait(&mut self) -> (Option<i32>, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "api did not exit");
            std::thread::sleep(Duration::from_millis(20));
        };
        self.seen.extend(self.logs.try_iter());
        (status.code(), self.seen.clone())
    }

    /// The process id, to read its memory from /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn sigterm(&self) {
        testkit::sigterm(self.child.id());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed test must not leave the process behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}
