//! The `stdout` and `file` sinks: one JSON object per line. A batch is
//! acknowledged once it is written to the file (or pipe) in full; the agent
//! does not fsync it, so a crash of the process loses nothing, a crash of the
//! machine may lose what the kernel had not written yet.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::SendError;
use crate::event::Event;

type Output = Box<dyn Write + Send>;

pub struct JsonLines {
    output: Arc<Mutex<Output>>,
    /// Reused between batches (handed to the writing thread and back).
    buffer: Vec<u8>,
}

impl std::fmt::Debug for JsonLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLines").finish_non_exhaustive()
    }
}

impl JsonLines {
    pub fn stdout() -> Self {
        Self::new(Box::new(std::io::stdout()))
    }

    pub fn file(path: &Path) -> anyhow::Result<Self> {
        let open = || -> std::io::Result<std::fs::File> {
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(path)?;
            // A previous run killed in the middle of a write left a torn last
            // line: end it, so that the lines written now stay whole.
            if !ends_with_newline(&file)? {
                file.write_all(b"\n")?;
            }
            Ok(file)
        };
        let file = open().map_err(|error| {
            anyhow::anyhow!(
                "COLLECTOR_FILE_PATH: cannot open {}: {error}",
                path.display()
            )
        })?;
        Ok(Self::new(Box::new(file)))
    }

    fn new(output: Output) -> Self {
        Self {
            output: Arc::new(Mutex::new(output)),
            buffer: Vec::new(),
        }
    }

    /// Delivers the batch; written in full means acknowledged.
    pub async fn send(&mut self, events: &[Event]) -> Result<(), SendError> {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        for event in events {
            event.write_json_line(&mut buffer);
        }
        let output = Arc::clone(&self.output);
        let (buffer, written) = tokio::task::spawn_blocking(move || {
            let written = match output.lock() {
                Ok(mut output) => output.write_all(&buffer).and_then(|()| output.flush()),
                Err(_) => Err(std::io::Error::other("output lock poisoned")),
            };
            (buffer, written)
        })
        .await
        .map_err(|error| SendError::Retry(error.to_string()))?;
        self.buffer = buffer;
        written.map_err(|error| SendError::Retry(format!("write failed: {error}")))
    }
}

/// Whether the file is empty or its last byte is a newline.
fn ends_with_newline(file: &std::fs::File) -> std::io::Result<bool> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(true);
    }
    let mut last = [0_u8; 1];
    std::os::unix::fs::FileExt::read_exact_at(file, &mut last, len - 1)?;
    Ok(last[0] == b'\n')
}
