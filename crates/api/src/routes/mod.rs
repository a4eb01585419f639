//! The HTTP surface: routes, shared state, and the layers around them.

mod admission;
mod data;
mod dispatch;
mod docs;
mod envelope;
mod extract;
mod health;
mod ops;
mod record_json;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::Uri;
use axum::response::Response;
use tower::Service;

use admission::Admission;
use dispatch::Dispatch;
use envelope::Envelope;

use crate::config::{RequestLimits, body_limit};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::service::DataService;

/// The route templates, which are also the `route` label of the request
/// metrics (see [`envelope`]).
pub(crate) mod paths {
    pub const HEALTH: &str = "/health";
    pub const READY: &str = "/ready";
    pub const METRICS: &str = "/metrics";
    pub const CACHE_TEST: &str = "/api/v1/cache/test";
    pub const CONFIG: &str = "/api/v1/config";
    pub const DATA: &str = "/api/v1/data";
    pub const DATA_KEY: &str = "/api/v1/data/{key}";
    /// Swagger UI and the OpenAPI document, counted under one label.
    pub const DOCS: &str = "/docs";

    /// Every template, numbered by position (the request metrics number
    /// their series by it).
    pub const ALL: [&str; 8] = [
        HEALTH, READY, METRICS, CACHE_TEST, CONFIG, DATA, DATA_KEY, DOCS,
    ];

    /// The template of the route `path` is served by; `None` for the
    /// fallback. [`dispatch`](super::dispatch) routes by it, and the
    /// request metrics label by it.
    /// Known from the path alone, so that requests answered before they
    /// reach a route (time-outs, shed load) are counted under it too.
    pub fn template_of(path: &str) -> Option<&'static str> {
        match path {
            HEALTH => Some(HEALTH),
            READY => Some(READY),
            METRICS => Some(METRICS),
            CACHE_TEST => Some(CACHE_TEST),
            CONFIG => Some(CONFIG),
            DATA => Some(DATA),
            "/openapi.json" => Some(DOCS),
            _ if path.starts_with("/docs") => Some(DOCS),
            _ => encoded_key(path).map(|_| DATA_KEY),
        }
    }

    /// The key segment of a record path (`/api/v1/data/{key}`), still
    /// percent-encoded; `None` unless the path is one. A key is one
    /// non-empty segment, as axum's router matched `{key}`.
    pub fn encoded_key(path: &str) -> Option<&str> {
        path.strip_prefix("/api/v1/data/")
            .filter(|key| !key.is_empty() && !key.contains('/'))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_record_path_is_the_prefix_and_one_non_empty_segment() {
            for (path, key) in [
                ("/api/v1/data/k", Some("k")),
                ("/api/v1/data/a%2Fb", Some("a%2Fb")),
                ("/api/v1/data/", None),
                ("/api/v1/data", None),
                ("/api/v1/data/a/b", None),
                ("/api/v1/data/k/", None),
                ("/api/v1/datak", None),
                ("/api/v2/data/k", None),
            ] {
                assert_eq!(encoded_key(path), key, "{path}");
                let template = key.map(|_| DATA_KEY);
                assert_eq!(
                    template_of(path).filter(|t| *t == DATA_KEY),
                    template,
                    "{path}"
                );
            }
        }
    }
}

/// What `/api/v1/config` may show: nothing secret is ever put in here.
#[derive(Debug, Clone)]
pub struct PublicConfig {
    pub app_env: String,
    pub redis_host: Option<String>,
    pub redis_port: u16,
    pub redis_sentinels: Option<Vec<String>>,
    pub redis_sentinel_master: Option<String>,
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

/// The whole application: the routes, inside what every request goes
/// through ([`envelope`]). The API's reads and probes are answered before
/// axum's router ([`dispatch`]); the router serves the write route, Swagger
/// UI and the fallbacks.
///
/// The envelope wraps the routes as one service rather than each route
/// (`Router::layer`): axum boxes a route once per layer, and cloning a
/// route for a request clones every box inside it (docs/decisions.md,
/// record 14).
pub fn app(
    state: AppState,
    limits: RequestLimits,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send + Unpin>
+ Clone
+ Send
+ Sync
+ 'static {
    let body_limit = body_limit(state.config.max_value_bytes);
    let metrics = state.metrics.clone();
    let state = Arc::new(state);
    let api = Router::new()
        // The body limit on the one route that reads a body: as a layer
        // around the whole router it gave every request an extension map.
        .route(
            paths::DATA,
            axum::routing::post(data::create).layer(DefaultBodyLimit::max(body_limit)),
        )
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // One reference count per request instead of one per field.
        .with_state(state.clone());
    let routes = Router::new().merge(docs::swagger_ui()).merge(api);
    let shared = envelope::Shared {
        metrics,
        admission: Admission::new(limits, body_limit),
    };
    Envelope::new(Dispatch::new(state, routes), shared)
}

async fn route_not_found(uri: Uri) -> ApiError {
    ApiError::RouteNotFound(uri.path().to_owned())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
