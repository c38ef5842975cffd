//! The executions API: list and show stored executions.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AppState, error_response, given, list_limit, parsed_query, path_value};
use crate::store::{ExecutionFilter, ExecutionStatus, StoreError, execution_with_lineage, list_page};

/// Most executions one list request returns.
const MAX_LIST_LIMIT: usize = 1000;

/// Executions a list request without a `limit` returns.
const DEFAULT_LIST_LIMIT: usize = 100;

/// The filters of `GET /executions`. An empty value, as in `?flow=&status=`, filters nothing,
/// and an unknown parameter is rejected, so that a misspelled filter does not list everything.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    flow: Option<String>,
    instance: Option<String>,
    status: Option<String>,
    parent: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

/// `GET /executions`: newest first, filtered by flow, instance, status and parent execution.
///
/// The response body is `{"executions": [...], "nextCursor": ID}`. `nextCursor` is the id of
/// the last listed execution when more executions match after it, else `null`, and passing
/// it as `cursor` lists the next page.
pub(super) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    if let Some(rejection) = reject_unauthorized(&state, &headers) {
        return rejection;
    }
    let usage = format!(
        "use ?flow=KEY&instance=ID&status=STATUS&parent=EXECUTION_ID&cursor=EXECUTION_ID&limit=N with N from 1 to {MAX_LIST_LIMIT}"
    );
    let query = match parsed_query(query, &usage) {
        Ok(query) => query,
        Err(rejection) => return rejection,
    };
    let status = match given(query.status).as_deref().map(str::parse::<ExecutionStatus>).transpose() {
        Ok(status) => status,
        Err(reason) => return error_response(StatusCode::BAD_REQUEST, reason),
    };
    let limit = match list_limit(query.limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, &usage) {
        Ok(limit) => limit,
        Err(rejection) => return rejection,
    };
    let filter = ExecutionFilter {
        flow: given(query.flow),
        instance: given(query.instance),
        status,
        parent: given(query.parent),
        before: given(query.cursor),
        limit,
    };
    let (executions, next_cursor) = match list_page(state.runtime.store().as_ref(), filter).await {
        Ok(page) => page,
        Err(error @ StoreError::UnknownCursor(_)) => {
            return error_response(StatusCode::BAD_REQUEST, format!("{error}; pass the nextCursor of the previous page"));
        }
        Err(error) => return error_response(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
    };
    axum::Json(json!({ "executions": executions, "nextCursor": next_cursor })).into_response()
}

/// `GET /executions/{id}`: status, result, error, logs, attempts and the `lineage` of
/// executions that started it.
pub(super) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    if let Some(rejection) = reject_unauthorized(&state, &headers) {
        return rejection;
    }
    let id = match path_value(id) {
        Ok(id) => id,
        Err(rejection) => return rejection,
    };
    match execution_with_lineage(state.runtime.store().as_ref(), &id).await {
        Ok(Some(record)) => axum::Json(record).into_response(),
        Ok(None) => error_response(StatusCode::NOT_FOUND, format!("execution \"{id}\" not found")),
        Err(error) => error_response(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
    }
}

/// Returns a 401 answer unless the request carries `Authorization: Bearer TOKEN` with the
/// configured admin token; `None` lets the request through, as does having no token set.
pub(super) fn reject_unauthorized(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &state.settings.admin_token else {
        return None;
    };
    // A second header could carry a token that a proxy or log reads instead of the first.
    let mut authorizations = headers.get_all(axum::http::header::AUTHORIZATION).iter();
    let first = authorizations.next();
    if authorizations.next().is_some() {
        return Some(error_response(
            StatusCode::UNAUTHORIZED,
            "the request has more than one Authorization header; send one, `Authorization: Bearer <admin token>`",
        ));
    }
    let sent = first
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        // The authentication scheme is case-insensitive, and one or more spaces may follow it
        // (RFC 9110, sections 11.1 and 11.4).
        .and_then(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer").then_some(token.trim_start_matches(' ')))
        .unwrap_or_default();
    let matches: bool = Sha256::digest(sent.as_bytes()).ct_eq(&Sha256::digest(token.as_bytes())).into();
    if matches {
        None
    } else {
        Some(error_response(
            StatusCode::UNAUTHORIZED,
            "the executions and admin API need `Authorization: Bearer <admin token>`",
        ))
    }
}
