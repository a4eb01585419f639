//! The first turn a request takes: the record routes
//! (`/api/v1/data/{key}`), or axum's router for every other path.
//!
//! The record routes are the hot ones, and a record path is known by its
//! prefix alone. Through axum's router, a route with a path parameter
//! costs every request a percent-decoded copy of the parameter, a copy of
//! its name and a vector in the request's extensions, which the `Path`
//! extractor then deserializes into a third copy; with the route's own
//! dispatch, that was more than all an L1 hit cost beyond `/health`
//! (docs/decisions.md, record 44). Here the handlers read their key from
//! the path ([`RecordKey`](super::extract::RecordKey)).
//!
//! What the router did for these routes is done here alike: `HEAD` is
//! answered as `GET` (hyper sends its headers without the body), and any
//! other method gets 405 `method_not_allowed` with an `Allow` header.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Request;
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use futures::FutureExt as _;
use futures::future::{Either, Map};
use tower::Service;

use super::{AppState, data, paths};
use crate::error::ApiError;

/// The methods the record routes answer, as the `Allow` header lists them.
const RECORD_METHODS: HeaderValue = HeaderValue::from_static("GET,HEAD,DELETE");

/// A record handler's answer, as axum's `Handler::call` gives it.
type Answer = Pin<Box<dyn Future<Output = Response> + Send>>;

/// The record routes' handlers, and the router for every other route.
#[derive(Debug, Clone)]
pub struct Dispatch {
    state: Arc<AppState>,
    router: Router,
}

impl Dispatch {
    pub fn new(state: Arc<AppState>, router: Router) -> Self {
        Self { state, router }
    }

    fn record(&self, request: Request) -> Answer {
        let state = self.state.clone();
        match *request.method() {
            Method::GET | Method::HEAD => Handler::call(data::read, request, state),
            Method::DELETE => Handler::call(data::remove, request, state),
            _ => Box::pin(std::future::ready(record_method_not_allowed())),
        }
    }
}

fn record_method_not_allowed() -> Response {
    let mut response = ApiError::MethodNotAllowed.into_response();
    response.headers_mut().insert(header::ALLOW, RECORD_METHODS);
    response
}

impl Service<Request> for Dispatch {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<
        <Router as Service<Request>>::Future,
        Map<Answer, fn(Response) -> Result<Response, Infallible>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The handlers are always ready; the router is too, but says so
        // itself.
        Service::<Request>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if paths::encoded_key(request.uri().path()).is_some() {
            Either::Right(self.record(request).map(Ok))
        } else {
            Either::Left(self.router.call(request))
        }
    }
}
