//! The admin API: instance deployments and schedules.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::executions::reject_unauthorized;
use super::{AppState, error_response, given, list_limit, parsed_query, path_value};
use crate::engine::{HookRun, LifecycleError};
use crate::store::TickFilter;

/// Most ticks one list request returns.
const MAX_TICK_LIMIT: usize = 1000;

/// `GET /instances`: every configured instance with its deployment.
pub(super) async fn list_instances(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(rejection) = reject_unauthorized(&state, &headers) {
        return rejection;
    }
    let deployments = match state.runtime.deployments().await {
        Ok(deployments) => deployments,
        Err(error) => return error_response(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
    };

    let instances: Vec<_> = state
        .runtime
        .instances()
        .map(|instance| {
            let deployment = deployments.iter().find(|record| record.instance == instance.id);
            json!({
                "id": instance.id,
                "name": instance.name,
                "customer": instance.customer,
                "webhookUrls": instance.webhook_urls,
                "deployment": deployment,
            })
        })
        .collect();
    axum::Json(json!({ "instances": instances })).into_response()
}

/// The query of `POST /instances/{instance}/deploy`, which takes no parameter. Any parameter
/// is rejected, as on delete, so that a deploy never runs with an option it ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeployQuery {}

/// `POST /instances/{instance}/deploy`: runs the deploy hooks; 200 with the hooks that ran, or
/// 422 naming the failed flow and hook.
pub(super) async fn deploy(
    State(state): State<AppState>,
    headers: HeaderMap,
    instance: Result<Path<String>, PathRejection>,
    query: Result<Query<DeployQuery>, QueryRejection>,
) -> Response {
    if let Some(rejection) = reject_unauthorized(&state, &headers) {
        return rejection;
    }
    let instance = match path_value(instance) {
        Ok(instance) => instance,
        Err(rejection) => return rejection,
    };
    if let Err(rejection) = parsed_query(query, "deploy takes no query parameters") {
        return rejection;
    }
    let (runtime, id) = (state.runtime.clone(), instance.clone());
    let outcome = detached(async move { runtime.deploy(&id).await }).await;
    lifecycle_response(&instance, "deployed", outcome)
}

/// The query of `POST /instances/{instance}/delete`. An unknown parameter is rejected, so that
/// a misspelled `force` does not run a delete without it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeleteQuery {
    #[serde(default)]
    force: bool,
}

/// `POST /instances/{instance}/delete[?force=true]`: runs the delete hooks; 200 with the hooks
/// that ran, or 422 naming each failed flow and hook. With `force=true` the instance is deleted
/// even when hooks fail.
pub(super) async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    instance: Result<Path<String>, PathRejection>,
    query: Result<Query<DeleteQuery>, QueryRejection>,
) -> Response {
    if let Some(rejection) = reject_unauthorized(&state, &headers) {
        return rejection;
    }
    let instance = match path_value(instance) {
        Ok(instance) => instance,
        Err(rejection) => return rejection,
    };
    let query = match parsed_query(query, "use ?force=true or ?force=false") {
        Ok(query) => query,
        Err(rejection) => return rejection,
    };
    let (runtime, id) = (state.runtime.clone(), instance.clone());
    let outcome = detached(async move { runtime.delete(&id, query.force).await }).await;
    lifecycle_response(&instance, "deleted", outcome)
}

/// Runs a deploy or delete on a task of its own, so a client that hangs up does not stop its
/// hooks halfway, and returns its outcome.
async fn detached(
    operation: impl Future<Output = Result<Vec<HookRun>, LifecycleError>> + Send + 'static,
) -> Result<Vec<HookRun>, LifecycleError> {
    tokio::spawn(operation).await.unwrap_or_else(|error| {
        Err(LifecycleError::Store(crate::store::StoreError::Database(format!("the deploy or delete stopped: {error}"))))
    })
}

fn lifecycle_response(instance: &str, status: &str, result: Result<Vec<HookRun>, LifecycleError>) -> Response {
    match result {
        Ok(hooks) => axum::Json(json!({ "instance": instance, "status": status, "hooks": hooks })).into_response(),
        Err(LifecycleError::UnknownInstance(_)) => {
            error_response(StatusCode::NOT_FOUND, format!("instance \"{instance}\" not found"))
        }
        Err(error @ LifecycleError::HookFailed { .. }) => {
            let message = error.to_string();
            let LifecycleError::HookFailed { runs, .. } = error else {
                unreachable!("matched HookFailed above")
            };
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(json!({ "error": message, "instance": instance, "hooks": runs })),
            )
                .into_response()
        }
        Err(
            error @ (LifecycleError::AlreadyDeployed(_)
            | LifecycleError::AlreadyDeleted(_)
            | LifecycleError::NeverDeployed(_)
            | LifecycleError::InProgress(_)),
        ) => error_response(StatusCode::CONFLICT, error.to_string()),
        Err(LifecycleError::Store(error)) => error_response(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
    }
}

/// `GET /schedules`: every schedule's position and tick counts by outcome.
pub(super) async fn list_schedules(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(rejection) = reject_unauthorized(&state, &headers) {
        return rejection;
    }
    let summaries = match state.runtime.store().schedule_summaries().await {
        Ok(summaries) => summaries,
        Err(error) => return error_response(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
    };
    let now = state.runtime.clock().now();
    let schedules: Vec<_> = summaries
        .into_iter()
        .map(|summary| {
            let next = state.runtime.schedule_of(&summary.flow, &summary.instance).and_then(|cron| cron.next_after(now));
            json!({
                "flow": summary.flow,
                "instance": summary.instance,
                "handledUntil": summary.handled_until,
                "nextTick": next,
                "counts": summary.counts,
            })
        })
        .collect();
    axum::Json(json!({ "schedules": schedules })).into_response()
}

/// The filters of `GET /ticks`. An unknown parameter is rejected, so that a misspelled filter
/// does not list everything.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TickQuery {
    flow: Option<String>,
    instance: Option<String>,
    limit: Option<String>,
}

/// `GET /ticks?flow=&instance=&limit=`: recorded ticks, newest first.
pub(super) async fn list_ticks(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<TickQuery>, QueryRejection>,
) -> Response {
    if let Some(rejection) = reject_unauthorized(&state, &headers) {
        return rejection;
    }
    let usage = format!("use ?flow=KEY&instance=ID&limit=N with N from 1 to {MAX_TICK_LIMIT}");
    let query = match parsed_query(query, &usage) {
        Ok(query) => query,
        Err(rejection) => return rejection,
    };
    let limit = match list_limit(query.limit, 100, MAX_TICK_LIMIT, &usage) {
        Ok(limit) => limit,
        Err(rejection) => return rejection,
    };
    let filter = TickFilter {
        flow: given(query.flow),
        instance: given(query.instance),
        limit,
    };
    match state.runtime.store().list_ticks(filter).await {
        Ok(ticks) => axum::Json(json!({ "ticks": ticks })).into_response(),
        Err(error) => error_response(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
    }
}
