//! The OpenAPI document and the Swagger UI, served offline.

use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use super::{data, health, ops};
use crate::error::{ErrorBody, ErrorDetail};

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "app-v02 api", version = crate::config::VERSION,
         description = "Cache-aside over a SQL store with Redis as the cache."),
    paths(
        health::health, health::ready, ops::metrics, ops::cache_test, ops::config,
        data::create, data::read, data::remove,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    tags(
        (name = "data", description = "Records"),
        (name = "probes", description = "Kubernetes probes"),
        (name = "operations", description = "Metrics and diagnostics"),
    )
)]
pub struct ApiDoc;

/// `/docs` (Swagger UI, assets built into the binary) and `/openapi.json`.
pub fn swagger_ui() -> SwaggerUi {
    SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi())
}
