//! The HTTP surface: routes, shared state, and the layers around them.

mod data;
mod docs;
mod extract;
mod health;
mod middleware;
mod ops;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::{Service, ServiceBuilder};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use docs::ApiDoc;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::service::DataService;

/// The route templates, which are also the `route` label of the request
/// metrics (see [`middleware::record_metrics`]).
mod paths {
    pub const HEALTH: &str = "/health";
    pub const READY: &str = "/ready";
    pub const METRICS: &str = "/metrics";
    pub const CACHE_TEST: &str = "/api/v1/cache/test";
    pub const CONFIG: &str = "/api/v1/config";
    pub const DATA: &str = "/api/v1/data";
    pub const DATA_KEY: &str = "/api/v1/data/{key}";
    /// Every route above: a route missing here is counted as `other`.
    pub const ALL: [&str; 7] = [HEALTH, READY, METRICS, CACHE_TEST, CONFIG, DATA, DATA_KEY];
}

/// What `/api/v1/config` may show: nothing secret is ever put in here.
#[derive(Debug, Clone)]
pub struct PublicConfig {
    pub app_env: String,
    pub redis_host: Option<String>,
    pub redis_port: u16,
    pub pod: String,
    pub cache_ttl_seconds: u64,
    pub max_value_bytes: usize,
}

/// Everything a handler can reach.
#[derive(Debug)]
pub struct AppState {
    pub service: DataService,
    pub metrics: Arc<Metrics>,
    pub config: Arc<PublicConfig>,
    /// Set on SIGTERM: `/ready` answers 503 from then on.
    pub draining: Arc<AtomicBool>,
}

/// The whole application: the routes, inside the layers every request goes
/// through.
///
/// The layers wrap the router as one service rather than each route
/// (`Router::layer`): axum boxes a route once per layer, and cloning a
/// route for a request clones every box inside it: 23 boxed clones per
/// request, a tenth of the CPU of a cached read. Only the metrics
/// layer needs the matched route, so only it stays inside.
pub fn app(
    state: AppState,
    request_timeout: Duration,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    // JSON escapes can make a body larger than the value it carries; the
    // value's own limit is checked after parsing, with a clearer message.
    let body_limit = state
        .config
        .max_value_bytes
        .saturating_mul(2)
        .saturating_add(64 * 1024);
    let x_request_id = axum::http::HeaderName::from_static("x-request-id");

    let api = Router::new()
        .route(paths::HEALTH, get(health::health))
        .route(paths::READY, get(health::ready))
        .route(paths::METRICS, get(ops::metrics))
        .route(paths::CACHE_TEST, get(ops::cache_test))
        .route(paths::CONFIG, get(ops::config))
        .route(paths::DATA, axum::routing::post(data::create))
        .route(paths::DATA_KEY, get(data::read).delete(data::remove))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            middleware::record_metrics,
        ))
        // One reference count per request instead of one per field.
        .with_state(Arc::new(state));
    let routes = Router::new().merge(docs::swagger_ui()).merge(api);

    ServiceBuilder::new()
        // Back to axum's body type, which the tracing layer wraps.
        .map_response(IntoResponse::into_response)
        .layer(SetRequestIdLayer::new(
            x_request_id.clone(),
            MakeRequestUuid,
        ))
        .layer(PropagateRequestIdLayer::new(x_request_id))
        .layer(TraceLayer::new_for_http().make_span_with(middleware::request_span))
        .layer(axum::middleware::from_fn_with_state(
            request_timeout,
            middleware::time_limit,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .service(routes)
}

async fn route_not_found(uri: Uri) -> ApiError {
    ApiError::RouteNotFound(uri.path().to_owned())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
