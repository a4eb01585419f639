//! `log-collector`: the node agent of the stack (a DaemonSet). It tails the
//! node's container logs (and any configured plain files) and ships every
//! line, at least once, to a sink: stdout, a file, Loki or a Redis Stream.
//!
//! Two halves joined by a channel of at most one waiting batch:
//! - [`harvester`] (a thread): discovery, rotation, reading, parsing,
//!   batching; while the channel is full it stops reading (discovery goes
//!   on), which is the backpressure that bounds memory;
//! - [`shipper`] (a task): delivery with retries, then the checkpoint, so a
//!   position is saved only after the sink acknowledged the lines before it.

mod batch;
mod checkpoint;
mod config;
mod discover;
mod event;
mod harvester;
mod http;
pub mod kubernetes;
mod metrics;
mod origin;
mod own_logs;
mod parse;
mod shipper;
mod sinks;
mod tailer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, watch};

pub use config::Config;

use crate::checkpoint::{CheckpointStore, Loaded, Positions};
use crate::config::{Settings, UnreadableCheckpoint};
use crate::harvester::{Harvester, Links, Start};
use crate::metrics::Metrics;
use crate::shipper::Shipper;
use crate::sinks::Sink;

/// Runs the agent until SIGTERM or Ctrl-C, then ships what it has read
/// (bounded by `COLLECTOR_SHUTDOWN_TIMEOUT_SECONDS`) and saves the checkpoint.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let settings = Arc::new(config.settings()?);
    let metrics = Arc::new(Metrics::default());
    let mut registry = Registry::default();
    metrics.register(&mut registry);

    let store = CheckpointStore::new(&settings.checkpoint_dir);
    let (saved, start) = load_checkpoint(&store, &settings, &metrics)?;
    // Fail now, not at the first batch, when positions cannot be saved.
    store
        .save(&saved)
        .context("COLLECTOR_CHECKPOINT_DIR must be a writable directory")?;
    let sink = Sink::new(&settings.sink)?;
    let listener = tokio::net::TcpListener::bind(settings.bind)
        .await
        .with_context(|| format!("COLLECTOR_PORT: cannot listen on {:?}", settings.bind))?;
    let address = listener.local_addr()?;
    tracing::info!(node = %settings.node, %address, files = saved.len(),
        "log collector started on node: {}", settings.node);

    let kubernetes = match &settings.kubernetes {
        Some(kubernetes) => {
            let client = kubernetes::client(kubernetes.api_url.as_deref()).context(
                "COLLECTOR_KUBERNETES_METADATA is on: set COLLECTOR_KUBERNETES_API_URL, or run in a pod",
            )?;
            Some(kubernetes::Metadata::start(
                client,
                kubernetes.metadata.clone(),
                &metrics.kubernetes_watch_errors,
            ))
        }
        None => None,
    };

    let (wake_tx, wake_rx) = discover::wake_channel();
    let _watches = discover::watch(&settings.paths, wake_tx.clone());
    let (batch_tx, batch_rx) = mpsc::channel(1);
    let (ack_tx, ack_rx) = std::sync::mpsc::channel();
    let (give_up_tx, give_up_rx) = watch::channel(None);
    let stop = Arc::new(AtomicBool::new(false));

    let shipper = Shipper {
        sink,
        store,
        positions: saved.clone(),
        metrics: Arc::clone(&metrics),
        acks: ack_tx,
        wake_harvester: wake_tx.clone(),
        retry_max: settings.retry_max,
        give_up_at: give_up_rx,
    };
    let harvester = Harvester::new(
        Arc::clone(&settings),
        Arc::clone(&metrics),
        saved,
        start,
        Links {
            out: batch_tx,
            acks: ack_rx,
            wake: wake_rx,
            stop: Arc::clone(&stop),
            kubernetes: kubernetes.clone(),
        },
    );
    let router = http::router(Arc::new(registry), kubernetes);
    let mut harvesting = tokio::task::spawn_blocking(move || harvester.run());
    let shipping = tokio::spawn(shipper.run(batch_rx));
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let summary = tokio::spawn(summarize(Arc::clone(&settings), Arc::clone(&metrics)));

    tokio::select! {
        () = platform::shutdown::signal() => {}
        finished = &mut harvesting => {
            finished.context("the reading thread failed")?;
            anyhow::bail!("the sink stopped taking batches");
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = wake_tx.try_send(());
    let _ = give_up_tx.send(Some(
        tokio::time::Instant::now() + settings.shutdown_timeout,
    ));
    harvesting.await.context("the reading thread failed")?;
    shipping.await.context("the shipping task failed")?;
    summary.abort();
    server.abort();
    tracing::info!(
        lines_read = metrics.lines_read.get(),
        lines_shipped = metrics.lines_shipped.get(),
        "[{}] stopped after collecting {} log lines",
        settings.node,
        metrics.lines_read.get()
    );
    Ok(())
}

/// The positions to resume from, and where files without one start.
fn load_checkpoint(
    store: &CheckpointStore,
    settings: &Settings,
    metrics: &Metrics,
) -> anyhow::Result<(Positions, Start)> {
    let error = match store.load() {
        Ok(Loaded {
            positions,
            fell_back: None,
        }) => return Ok((positions, Start::FromCheckpoint)),
        Ok(Loaded {
            positions,
            fell_back: Some(error),
        }) => {
            metrics.checkpoint_errors.inc();
            tracing::error!(%error, previous = %store.previous_path().display(),
                "the checkpoint is unreadable; resuming from its previous version \
                 (lines acknowledged since then are shipped again)");
            store
                .set_aside()
                .context("cannot move the unreadable checkpoint aside")?;
            return Ok((positions, Start::FromCheckpoint));
        }
        Err(error) => error,
    };
    metrics.checkpoint_errors.inc();
    match settings.unreadable_checkpoint {
        UnreadableCheckpoint::Refuse => Err(anyhow::Error::new(error).context(
            "refusing to start: without a checkpoint every file would be read from its \
             start and the node's logs shipped again. Repair or remove the files, or set \
             COLLECTOR_UNREADABLE_CHECKPOINT=start-at-end to skip what the files hold now",
        )),
        UnreadableCheckpoint::StartAtEnd => {
            tracing::error!(%error, "the checkpoint is unreadable; COLLECTOR_UNREADABLE_CHECKPOINT=\
                start-at-end: the files found now are read from their end");
            store
                .set_aside()
                .context("cannot move the unreadable checkpoint aside")?;
            Ok((Positions::new(), Start::AtEnd))
        }
    }
}

/// The spec's summary line, every `COLLECTOR_SUMMARY_SECONDS`: the lines
/// collected in that period.
async fn summarize(settings: Arc<Settings>, metrics: Arc<Metrics>) {
    let mut ticker = tokio::time::interval(settings.summary_period);
    ticker.tick().await;
    let mut reported = 0;
    loop {
        ticker.tick().await;
        let read = metrics.lines_read.get();
        tracing::info!(
            lines = read - reported,
            lines_total = read,
            lines_shipped_total = metrics.lines_shipped.get(),
            files = metrics.files_watched.get(),
            "[{}] collected {} log lines",
            settings.node,
            read - reported
        );
        reported = read;
    }
}
