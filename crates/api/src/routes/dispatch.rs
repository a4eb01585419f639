//! The first turn a request takes: the API's own routes, answered here by
//! path and method, or axum's router for the write route, Swagger UI and
//! whatever matches no route.
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
//! The fixed `GET` routes (the probes, `/metrics`, `/api/v1/cache/test`,
//! `/api/v1/config`) are matched here too: for a path without parameters
//! the router still matched it in its tree, put the matched path and an
//! empty parameter list in the request's extensions (allocating their
//! map), and went through the route's method router and a boxed clone of
//! its service (record 53).
//!
//! An L1 hit is answered at once: a read that needs no I/O needs no
//! future either, and skipping the handler's (the extractors' state, the
//! service's, boxed) is most of what an L1 hit cost beyond `/health`
//! (record 54). A read L1 cannot answer goes on to the read handler with
//! the key already parsed, so that a miss parses it and looks L1 up once.
//!
//! What the router did for these routes is done here alike: `HEAD` is
//! answered as `GET` (hyper sends its headers without the body), and any
//! other method gets 405 `method_not_allowed` with an `Allow` header.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::ops::ControlFlow;
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

use super::{AppState, data, health, ops, paths};
use crate::error::ApiError;

/// The methods the record routes answer, as the `Allow` header lists them.
const RECORD_METHODS: HeaderValue = HeaderValue::from_static("GET,HEAD,DELETE");

/// The methods the fixed `GET` routes answer.
const GET_METHODS: HeaderValue = HeaderValue::from_static("GET,HEAD");

/// A handler's answer, as axum's `Handler::call` gives it.
type Answer = Pin<Box<dyn Future<Output = Response> + Send>>;

/// The answer to a request for one of the API's own routes.
enum Reply {
    /// Known at once.
    Now(Response),
    /// A handler's, to be awaited.
    Later(Answer),
}

/// The API's routes' handlers, and the router for every other path.
#[derive(Debug, Clone)]
pub struct Dispatch {
    state: Arc<AppState>,
    router: Router,
}

impl Dispatch {
    pub fn new(state: Arc<AppState>, router: Router) -> Self {
        Self { state, router }
    }
}

/// `handler`'s answer to a `GET` or `HEAD`; 405 to any other method.
fn get<H, T>(handler: H, request: Request, state: &Arc<AppState>) -> Reply
where
    H: Handler<T, Arc<AppState>, Future = Answer>,
{
    match *request.method() {
        Method::GET | Method::HEAD => Reply::Later(handler.call(request, state.clone())),
        _ => method_not_allowed(GET_METHODS),
    }
}

/// A record route's answer: read (from L1 at once if it can), or delete,
/// or 405.
fn record(request: Request, state: &Arc<AppState>) -> Reply {
    match *request.method() {
        Method::GET | Method::HEAD => match data::read_from_l1(request.uri().path(), state) {
            ControlFlow::Break(response) => Reply::Now(response),
            ControlFlow::Continue(key) => Reply::Later(Box::pin(
                data::read(state.clone(), key).map(IntoResponse::into_response),
            )),
        },
        Method::DELETE => Reply::Later(Handler::call(data::remove, request, state.clone())),
        _ => method_not_allowed(RECORD_METHODS),
    }
}

fn method_not_allowed(allow: HeaderValue) -> Reply {
    let mut response = ApiError::MethodNotAllowed.into_response();
    response.headers_mut().insert(header::ALLOW, allow);
    Reply::Now(response)
}

impl Service<Request> for Dispatch {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<
        <Router as Service<Request>>::Future,
        Either<
            Ready<Result<Response, Infallible>>,
            Map<Answer, fn(Response) -> Result<Response, Infallible>>,
        >,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The handlers are always ready; the router is too, but says so
        // itself.
        Service::<Request>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let state = &self.state;
        // The same rule from path to route the request metrics label by.
        let reply = match paths::template_of(request.uri().path()) {
            Some(paths::HEALTH) => get(health::health, request, state),
            Some(paths::READY) => get(health::ready, request, state),
            Some(paths::METRICS) => get(ops::metrics, request, state),
            Some(paths::CACHE_TEST) => get(ops::cache_test, request, state),
            Some(paths::CONFIG) => get(ops::config, request, state),
            Some(paths::DATA_KEY) => record(request, state),
            _ => return Either::Left(self.router.call(request)),
        };
        Either::Right(match reply {
            Reply::Now(response) => Either::Left(ready(Ok(response))),
            Reply::Later(answer) => Either::Right(answer.map(Ok)),
        })
    }
}
