//! GitHub webhooks: checks each delivery's `X-Hub-Signature-256`, summarizes pushes and pull
//! requests, and keeps per-repository push totals and open pull request counts in instance
//! state.
//!
//! Run with:
//!
//! ```text
//! GITHUB_WEBHOOK_SECRET=dev-only-secret cargo run -p github -- serve --config examples/github/flows.toml
//! ```
//!
//! Then send the push fixture, signed with the same secret:
//!
//! ```text
//! body=examples/github/tests/fixtures/push.json
//! signature="sha256=$(openssl dgst -sha256 -hmac dev-only-secret < "$body" | sed 's/^.* //')"
//! curl -s -H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \
//!   -H "X-Hub-Signature-256: $signature" --data-binary @"$body" \
//!   http://127.0.0.1:8081/webhooks/octo/github-push
//! ```
//!
//! On GitHub, add one webhook per flow under the repository's Settings > Webhooks: payload URL
//! `<public URL>/webhooks/octo/github-push` with only the "Pushes" event, and
//! `<public URL>/webhooks/octo/github-pull-request` with only "Pull requests". Both use the
//! secret from `GITHUB_WEBHOOK_SECRET`, and either content type, `application/json` or
//! `application/x-www-form-urlencoded`. A URL rejects other events with 400, and returns
//! `{"pong": true, ...}` for the `ping` that GitHub sends when a webhook is created.

mod delivery;
#[cfg(test)]
mod flow_tests;
mod ping;
mod pull_request;
mod push;

use flow_runtime::prelude::*;
use ping::{PingEvent, PingResult};
use pull_request::{
    PULL_REQUEST_EVENT, PullRequestEvent, PullRequestResult, open_count_after, open_count_key,
};
use push::{PUSH_EVENT, PushEvent, PushResult, PushTotals};

/// Verifies a delivery to the "Push Events" URL.
async fn accept_push(
    ctx: &TriggerContext,
    payload: TriggerPayload,
) -> Result<TriggerResult, TriggerError> {
    delivery::accept(ctx, payload, PUSH_EVENT)
}

/// Verifies a delivery to the "Pull Request Events" URL.
async fn accept_pull_request(
    ctx: &TriggerContext,
    payload: TriggerPayload,
) -> Result<TriggerResult, TriggerError> {
    delivery::accept(ctx, payload, PULL_REQUEST_EVENT)
}

// Both flows run one execution at a time. Each run reads a count from instance state and writes
// it back, so parallel runs would overwrite each other's counts.
#[flow(
    name = "Push Events",
    stable_key = "github-push",
    description = "Summarizes pushes to GitHub repositories and counts them per repository",
    on_trigger = accept_push,
    endpoint_security = "unsecured",
    queue(sequential),
    retry(max_attempts = 3, delay_minutes = 1),
)]
async fn push_events(ctx: &Context, params: ExecutionParams) -> FlowResult {
    let trigger = &params.trigger;
    if delivery::event_name(trigger) == Some(delivery::PING_EVENT) {
        return record_ping(ctx, trigger, PUSH_EVENT);
    }
    let push = delivery::parse_event::<PushEvent>(&trigger.body)?.summary();

    let key = PushTotals::state_key(&push.repository);
    let mut totals: PushTotals = ctx.instance_state().get(&key).unwrap_or_default();
    totals.record(&push);
    ctx.instance_state().set(&key, &totals)?;
    ctx.logger().info(push.describe());

    let result = PushResult {
        event: PUSH_EVENT,
        delivery_id: delivery::delivery_id(trigger),
        push,
        repository_totals: totals,
    };
    Ok(serde_json::to_value(result)?.into())
}

#[flow(
    name = "Pull Request Events",
    stable_key = "github-pull-request",
    description = "Summarizes pull request activity and counts open pull requests per repository",
    on_trigger = accept_pull_request,
    endpoint_security = "unsecured",
    queue(sequential),
    retry(max_attempts = 3, delay_minutes = 1),
)]
async fn pull_request_events(ctx: &Context, params: ExecutionParams) -> FlowResult {
    let trigger = &params.trigger;
    if delivery::event_name(trigger) == Some(delivery::PING_EVENT) {
        return record_ping(ctx, trigger, PULL_REQUEST_EVENT);
    }
    let pull_request = delivery::parse_event::<PullRequestEvent>(&trigger.body)?.summary();

    let key = open_count_key(&pull_request.repository);
    let open_before: u64 = ctx.instance_state().get(&key).unwrap_or(0);
    let open_pull_requests = open_count_after(open_before, &pull_request.action);
    ctx.instance_state().set(&key, &open_pull_requests)?;
    ctx.logger().info(pull_request.describe(open_pull_requests));

    let result = PullRequestResult {
        event: PULL_REQUEST_EVENT,
        delivery_id: delivery::delivery_id(trigger),
        pull_request,
        open_pull_requests,
    };
    Ok(serde_json::to_value(result)?.into())
}

/// Records the ping GitHub sends when a webhook is created, warning when the webhook does not
/// send `handled_event`, the one event the receiving flow handles.
fn record_ping(ctx: &Context, trigger: &TriggerPayload, handled_event: &str) -> FlowResult {
    let ping = delivery::parse_event::<PingEvent>(&trigger.body)?;
    let repository = ping.repository.map(|repository| repository.full_name);
    ctx.logger().info(format!(
        "ping from webhook {} of {}",
        ping.hook_id,
        repository.as_deref().unwrap_or("an organization or app")
    ));
    if !ping.hook.sends(handled_event) {
        ctx.logger().warn(format!(
            "webhook {} sends {:?} but not `{handled_event}`, the only event this URL handles; \
             select `{handled_event}` in the GitHub webhook settings",
            ping.hook_id, ping.hook.events
        ));
    }

    let result = PingResult {
        event: delivery::PING_EVENT,
        delivery_id: delivery::delivery_id(trigger),
        hook_id: ping.hook_id,
        events: ping.hook.events,
        repository,
        zen: ping.zen,
    };
    Ok(serde_json::to_value(result)?.into())
}

flow_runtime::main!(
    Integration::new("github", "GitHub", env!("CARGO_PKG_VERSION"))
        .description("Receives signed GitHub webhooks for pushes and pull requests")
        .config_var(
            ConfigVar::new(delivery::SECRET_VAR)
                .description("Secret entered in the GitHub webhook settings; signs every delivery")
                .required()
                .secret()
        )
);
