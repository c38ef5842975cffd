//! The HTTP server: webhooks, the executions API and health.
//!
//! Routes:
//! - `ANY /webhooks/{instance}/{stable_key}` and `ANY /webhooks/{instance}/{stable_key}/{*path}`
//! - `GET /executions?flow=&instance=&status=&limit=` and `GET /executions/{id}`
//! - `GET /health`

mod executions;
pub(crate) mod request;
mod security;
mod webhook;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::json;
use tower_http::decompression::RequestDecompressionLayer;

use crate::engine::Runtime;

pub use webhook::SYNCHRONOUS_HEADER;

/// HTTP settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest accepted request body in bytes, after content decoding.
    pub body_limit: usize,
    /// Longest wait for a synchronous answer.
    pub sync_timeout: Duration,
    /// Bearer token that guards the executions API, when set.
    pub admin_token: Option<String>,
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) runtime: Runtime,
    pub(crate) settings: Arc<HttpSettings>,
    /// Organization keys of each flow, by stable key, resolved at startup.
    pub(crate) organization_keys: Arc<HashMap<String, Vec<String>>>,
}

/// Builds the router.
///
/// `organization_keys` holds each organization-secured flow's keys, by stable key.
pub fn router(runtime: Runtime, settings: HttpSettings, organization_keys: HashMap<String, Vec<String>>) -> Router {
    let state = AppState {
        runtime,
        settings: Arc::new(settings),
        organization_keys: Arc::new(organization_keys),
    };
    Router::new()
        .route("/webhooks/{instance}/{stable_key}", any(webhook::handle))
        .route("/webhooks/{instance}/{stable_key}/{*path}", any(webhook::handle))
        .route("/executions", get(executions::list))
        .route("/executions/{id}", get(executions::show))
        .route("/health", get(|| async { axum::Json(json!({ "status": "ok" })) }))
        .layer(RequestDecompressionLayer::new())
        .with_state(state)
}

/// A JSON error answer: `{"error": message}` plus any extra fields.
pub(crate) fn error_response(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}
