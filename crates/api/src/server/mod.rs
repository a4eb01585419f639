//! The HTTP server loop: accepts connections up to a bound, serves each
//! with hyper (HTTP/1.1 and HTTP/2), and stops gracefully.
//!
//! `axum::serve` would do the same in a line, but leaves connections
//! unbounded in time: a client sending one header byte every few seconds
//! kept a connection open for as long as it liked. Here a connection that
//! goes `HEADER_READ_TIMEOUT_SECONDS` without a request in flight is closed
//! ([`idle`]), and at most `MAX_CONNECTIONS` are open at once: past that,
//! new connections wait in the kernel's accept queue instead of each taking
//! memory and a task here.

mod idle;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::Service;

use idle::{Activity, ConnectionService, Ended};

/// The most a connection buffers of what a client sends before the
/// request reads it: also the longest request head.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Bounds on what clients can hold open.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A connection that goes this long without a request in flight is
    /// closed: one that has not sent a whole request head within it, or an
    /// idle keep-alive connection.
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `app` on `listener` until `stop` completes, then stops accepting,
/// lets every connection finish the request it is serving, and returns.
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    limits: ConnectionLimits,
    stop: impl Future<Output = ()>,
) where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Unpin + 'static,
    S::Future: Send + Unpin + 'static,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        // hyper grows a connection's read buffer to several hundred KiB
        // while a body streams in fast, per connection; many uploading at
        // once then hold far more than their bodies (docs/defects.md).
        .max_buf_size(READ_BUFFER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.header_read_timeout));
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);

    loop {
        // Wait for room before accepting: the connection stays queued in
        // the kernel meanwhile, costing nothing here.
        let slot = tokio::select! {
            slot = open.clone().acquire_owned() => slot,
            () = &mut stop => break,
        };
        let Ok(slot) = slot else { break };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: neither ends the server.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, %peer, "cannot set TCP_NODELAY");
        }
        let activity = Activity::new();
        let service = ConnectionService::new(app.clone(), activity.clone());
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        let header_read_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            // The connection runs as a task of its own: this one wakes only
            // for the idle deadline or the connection's end, and the
            // connection's requests never poll the deadline.
            let serving = tokio::spawn(connection);
            match idle::close_when_idle(serving, &activity, header_read_timeout).await {
                Ended::Served(Ok(())) => {}
                Ended::Served(Err(error)) => {
                    tracing::debug!(%error, %peer, "connection ended with an error");
                }
                Ended::Idle => {
                    tracing::debug!(%peer, "connection closed: no request within the header timeout");
                }
                Ended::Failed(error) => {
                    tracing::error!(%error, %peer, "connection task failed");
                }
            }
            drop(slot);
        });
    }

    drop(listener);
    graceful.shutdown().await;
}
