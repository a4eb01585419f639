//! The HTTP server loop: accepts connections up to a bound, serves each
//! with hyper (HTTP/1.1 and HTTP/2), and stops gracefully.
//!
//! `axum::serve` would do the same in a line, but gives hyper no timer, so
//! hyper's header-read timeout never runs: a client sending one header byte
//! every few seconds kept a connection open for as long as it liked. Here
//! every connection must deliver a request's headers within
//! `HEADER_READ_TIMEOUT_SECONDS`, and at most `MAX_CONNECTIONS` are open at
//! once: past that, new connections wait in the kernel's accept queue
//! instead of each taking memory and a task here.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::{Service, ServiceExt};

/// The most a connection buffers of what a client sends before the
/// request reads it: also the longest request head.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Bounds on what clients can hold open.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A connection that has not sent a whole request head within this is
    /// closed (an idle keep-alive connection waiting for its next request
    /// included).
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
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
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
        let service = TowerToHyperService::new(
            app.clone()
                .map_request(|request: hyper::Request<Incoming>| request.map(Body::new)),
        );
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
            drop(slot);
        });
    }

    drop(listener);
    graceful.shutdown().await;
}
