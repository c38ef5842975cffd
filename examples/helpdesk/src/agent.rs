//! Agent flows: tools a support assistant calls over the instance's MCP server.

use flow_runtime::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ticket::{Priority, Status, TICKET_IDS_KEY, Ticket, state_key};

/// Arguments of the `find-ticket` tool.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FindTicket {
    /// The helpdesk's ticket id, such as `T-100`.
    pub(crate) ticket_id: String,
}

/// Arguments of the `list-open-tickets` tool.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListOpenTickets {
    /// Only tickets of this priority; every priority when absent.
    pub(crate) priority: Option<Priority>,
}

/// Result of the `list-open-tickets` tool.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OpenTickets {
    /// Open tickets, in the order they opened.
    pub(crate) tickets: Vec<Ticket>,
}

/// Returns one stored ticket.
#[flow(
    name = "Find Ticket",
    stable_key = "find-ticket",
    description = "Returns a helpdesk ticket by its id: subject, priority, status and agent",
    agent,
    endpoint_security = "customer_required",
    schemas(invoke(input = FindTicket, output = Ticket)),
)]
pub(crate) async fn find_ticket(ctx: &Context, params: ExecutionParams) -> FlowResult {
    let request: FindTicket = params
        .trigger
        .body
        .json()
        .map_err(|error| FlowError::terminal(error.to_string()))?;
    let Some(ticket) = ctx.cross_flow_state().get::<Ticket>(&state_key(&request.ticket_id)) else {
        return Err(FlowError::terminal(format!("ticket {} not found", request.ticket_id)));
    };
    Ok(serde_json::to_value(ticket)?.into())
}

/// Lists the open tickets, optionally of one priority.
#[flow(
    name = "List Open Tickets",
    stable_key = "list-open-tickets",
    description = "Lists the open helpdesk tickets, optionally only those of one priority",
    agent,
    endpoint_security = "customer_required",
    schemas(invoke(input = ListOpenTickets, output = OpenTickets)),
)]
pub(crate) async fn list_open_tickets(ctx: &Context, params: ExecutionParams) -> FlowResult {
    let request: ListOpenTickets = params
        .trigger
        .body
        .json()
        .map_err(|error| FlowError::terminal(error.to_string()))?;
    let ids: Vec<String> = ctx.cross_flow_state().get(TICKET_IDS_KEY).unwrap_or_default();

    let tickets = ids
        .iter()
        .filter_map(|id| ctx.cross_flow_state().get::<Ticket>(&state_key(id)))
        .filter(|ticket| ticket.status == Status::Open)
        .filter(|ticket| request.priority.is_none_or(|priority| ticket.priority == priority))
        .collect();
    Ok(serde_json::to_value(OpenTickets { tickets })?.into())
}
