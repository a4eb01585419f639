//! A real Prometheus Pushgateway (Debian's `prometheus-pushgateway`) for
//! one test, on its own port. Killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Pushgateway {
    port: u16,
    child: Child,
}

impl Pushgateway {
    pub fn start() -> Self {
        let port = crate::free_port();
        let child = Command::new("prometheus-pushgateway")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Memory only: Debian's build defaults to one persistence file
            // shared by every instance, which would leak one test's (or
            // anyone's) pushes into the next.
            .arg("--persistence.file=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot run prometheus-pushgateway ({error}); \
                     apt-get install prometheus-pushgateway, or run scripts/test"
                )
            });
        let mut pushgateway = Self { port, child };
        pushgateway.wait_until_ready();
        pushgateway
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus-pushgateway exited with {status}");
            }
            assert!(
                Instant::now() < deadline,
                "prometheus-pushgateway did not listen within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
