//! Helpdesk tickets: the helpdesk sends every event to one URL per instance,
//! `/webhooks/{instance}`, and names the event in the `X-Helpdesk-Event` header. The
//! preprocess flow "Route Helpdesk Event" maps the event to a flow: `ticket.opened` runs
//! "Open Ticket" and `ticket.closed` runs "Close Ticket". An unknown event gets a 404 response.
//!
//! Two agent flows, "Find Ticket" and "List Open Tickets", are the tools of the instance's MCP
//! server at `/mcp/{instance}`, for a support assistant.
//!
//! Run with `cargo run -p helpdesk -- serve --config examples/helpdesk/flows.toml`, then:
//!
//! ```text
//! curl -s -H 'Api-Key: k_test_hook' -H 'X-Helpdesk-Event: ticket.opened' -H 'Content-Type: application/json' \
//!   -d '{"ticketId":"T-100","subject":"Printer on fire","priority":"urgent","agentId":"agent-7"}' \
//!   http://127.0.0.1:8080/webhooks/acme
//! npx @modelcontextprotocol/inspector --cli http://127.0.0.1:8080/mcp/acme --transport http \
//!   --header 'Api-Key: k_test_agent' --method tools/call --tool-name list-open-tickets
//! ```

mod agent;
mod events;
#[cfg(test)]
mod flow_tests;
mod ticket;

use flow_runtime::prelude::*;

/// Maps the helpdesk's `X-Helpdesk-Event` header to the stable key of the flow that handles
/// it, and passes the agent id of the body on as the user. The routing fields read this
/// flow's result: `body.flow` and `body.agentId`.
#[flow(
    name = "Route Helpdesk Event",
    stable_key = "route-event",
    description = "Names the flow of a helpdesk event",
    endpoint_security = "customer_required",
    preprocess(flow_name_field = "body.flow", external_customer_user_id_field = "body.agentId"),
)]
async fn route_event(_ctx: &Context, params: ExecutionParams) -> FlowResult {
    let Some(event) = params.trigger.header("x-helpdesk-event") else {
        return Err(FlowError::terminal("the request has no X-Helpdesk-Event header; the helpdesk sends it with every event"));
    };
    let flow = match event {
        "ticket.opened" => "open-ticket",
        "ticket.closed" => "close-ticket",
        // The runtime responds with a 404 naming an event that no flow handles.
        other => other,
    };
    let agent_id = params.trigger.body.to_value().get("agentId").cloned().unwrap_or_default();
    Ok(json!({ "flow": flow, "agentId": agent_id }).into())
}

flow_runtime::main!(
    Integration::new("helpdesk", "Helpdesk Tickets", env!("CARGO_PKG_VERSION"))
        .description("Keeps the tickets of a helpdesk per customer and lets a support assistant look them up")
        .endpoint_type(EndpointType::InstanceSpecific)
        .config_var(ConfigVar::new("Team").description("Support team that answers the tickets").required())
);
