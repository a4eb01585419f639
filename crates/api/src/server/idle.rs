//! The header-read timeout, kept per connection rather than per request: a
//! connection is closed once it has gone the timeout without a request in
//! flight, that is, without sending a whole request head (a slow-header
//! client, or an idle keep-alive connection).
//!
//! hyper can do this itself, but its timer is started and stopped for every
//! request: a boxed sleep registered with tokio's timer and removed again,
//! and one more turn of hyper's loop to arm it for the next request
//! (docs/decisions.md, record 51). Here a request costs two counter updates
//! and one clock read, and the timer is a separate task's, woken once per
//! timeout.
//!
//! A request is in flight from its head to the end of its response's body:
//! the [`Busy`] guard travels inside the body, which hyper drops once it has
//! taken the last of it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use tokio::task::{JoinError, JoinHandle};
use tower::util::Oneshot;
use tower::{Service, ServiceExt};

/// What one connection has in flight, and since when it has had nothing.
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// When the last request in flight ended, in microseconds after
    /// `opened`.
    idle_since_micros: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_micros: AtomicU64::new(0),
        })
    }

    /// When the connection will have been idle for `timeout`; `None` while
    /// a request is in flight.
    fn idle_deadline(&self, timeout: Duration) -> Option<Instant> {
        // Acquire: pairs with the release in `Busy::drop`, so the time read
        // next is at least as new as the count.
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let idle_since = Duration::from_micros(self.idle_since_micros.load(Ordering::Relaxed));
        Some(self.opened + idle_since + timeout)
    }
}

/// One request in flight on a connection, until dropped.
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Busy {
    fn begin(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let activity = &self.0;
        let ended = u64::try_from(activity.opened.elapsed().as_micros()).unwrap_or(u64::MAX);
        activity.idle_since_micros.store(ended, Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::Release);
    }
}

/// The application as hyper calls it on one connection: every request is
/// counted [`Busy`] until its response's body is dropped.
#[derive(Debug, Clone)]
pub struct ConnectionService<S> {
    app: S,
    activity: Arc<Activity>,
}

impl<S> ConnectionService<S> {
    pub fn new(app: S, activity: Arc<Activity>) -> Self {
        Self { app, activity }
    }
}

impl<S> hyper::service::Service<hyper::Request<Incoming>> for ConnectionService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Unpin,
    S::Future: Unpin,
{
    type Response = hyper::Response<BusyBody>;
    type Error = Infallible;
    type Future = Answering<S>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        Answering {
            busy: Some(Busy::begin(&self.activity)),
            response: self.app.clone().oneshot(request.map(Body::new)),
        }
    }
}

/// A request being answered: the application's response, its body then
/// carrying the request's [`Busy`].
#[derive(Debug)]
pub struct Answering<S: Service<Request>> {
    busy: Option<Busy>,
    response: Oneshot<S, Request>,
}

impl<S> Future for Answering<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Unpin,
    S::Future: Unpin,
{
    type Output = Result<hyper::Response<BusyBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Ok(response) = ready!(Pin::new(&mut this.response).poll(cx));
        let busy = this.busy.take();
        Poll::Ready(Ok(response.map(|body| BusyBody { body, _busy: busy })))
    }
}

/// A response body that keeps its request in flight until hyper drops it.
#[derive(Debug)]
pub struct BusyBody {
    body: Body,
    _busy: Option<Busy>,
}

impl hyper::body::Body for BusyBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// How a watched connection's task ended.
#[derive(Debug)]
pub enum Ended<T> {
    /// The connection ended by itself, with this.
    Served(T),
    /// It went the timeout without a request in flight and was closed.
    Idle,
    /// Its task panicked.
    Failed(JoinError),
}

/// Waits for the connection served by `connection` to end, closing it
/// once it has gone `timeout` without a request in flight.
///
/// Woken only when the connection ends or a deadline passes: a deadline
/// that passes with a request in flight, or after one ended, is moved to
/// the moment the connection will have been idle for `timeout`.
pub async fn close_when_idle<T>(
    mut connection: JoinHandle<T>,
    activity: &Activity,
    timeout: Duration,
) -> Ended<T> {
    let deadline = tokio::time::sleep_until((activity.opened + timeout).into());
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            ended = &mut connection => return match ended {
                Ok(ended) => Ended::Served(ended),
                Err(error) => Ended::Failed(error),
            },
            () = &mut deadline => {}
        }
        let now = Instant::now();
        let idle_until = activity.idle_deadline(timeout).unwrap_or(now + timeout);
        if idle_until <= now {
            // A request head arriving just now is lost with the
            // connection, as with any keep-alive timeout; clients retry it
            // on a new one.
            connection.abort();
            return match connection.await {
                Ok(ended) => Ended::Served(ended),
                Err(error) if error.is_cancelled() => Ended::Idle,
                Err(error) => Ended::Failed(error),
            };
        }
        deadline.as_mut().reset(idle_until.into());
    }
}
