//! One of the workspace's binaries run as a process by a test: started with
//! a cleared environment (nothing leaks in from the machine running the
//! tests), stopped with the signal Kubernetes sends.

use std::process::{Command, Output, Stdio};

/// `binary` (pass `env!("CARGO_BIN_EXE_<name>")`) with an empty environment
/// but `PATH`, and stdin closed.
pub fn program(binary: &str) -> Command {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    command
}

/// Everything a finished process wrote, stdout then stderr.
pub fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Sends SIGTERM to process `pid`, as the kubelet does to stop a container.
pub fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap_or_else(|error| panic!("cannot run kill: {error}"));
    assert!(status.success(), "kill -TERM {pid} failed");
}
