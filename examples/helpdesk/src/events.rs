//! The flows that the preprocess flow routes helpdesk events to.

use flow_runtime::prelude::*;

use crate::ticket::{ClosedEvent, OpenedEvent, Status, TICKET_IDS_KEY, Ticket, state_key};

/// Stores a new ticket and returns it. The queue is sequential because every run appends
/// to the list of ticket ids.
#[flow(
    name = "Open Ticket",
    stable_key = "open-ticket",
    description = "Stores a ticket the helpdesk opened",
    synchronous,
    endpoint_security = "customer_required",
    queue(sequential),
)]
pub(crate) async fn open_ticket(ctx: &Context, params: ExecutionParams) -> FlowResult {
    let event: OpenedEvent = params
        .trigger
        .body
        .json()
        .map_err(|error| FlowError::terminal(error.to_string()))?;
    let key = state_key(&event.ticket_id);
    if ctx.cross_flow_state().get_value(&key).is_some() {
        return Err(FlowError::terminal(format!("ticket {} is already open", event.ticket_id)));
    }

    let ticket = Ticket {
        ticket_id: event.ticket_id,
        subject: event.subject,
        priority: event.priority,
        status: Status::Open,
        agent_id: params.trigger.user.external_id.clone(),
    };
    let mut ids: Vec<String> = ctx.cross_flow_state().get(TICKET_IDS_KEY).unwrap_or_default();
    ids.push(ticket.ticket_id.clone());
    ctx.cross_flow_state().set(TICKET_IDS_KEY, &ids)?;
    ctx.cross_flow_state().set(&key, &ticket)?;
    ctx.logger().info(format!("opened ticket {} for {}", ticket.ticket_id, ctx.config_var("Team")?));
    Ok(serde_json::to_value(ticket)?.into())
}

/// Marks a stored ticket closed and returns it.
#[flow(
    name = "Close Ticket",
    stable_key = "close-ticket",
    description = "Marks a ticket closed",
    synchronous,
    endpoint_security = "customer_required",
    queue(sequential),
)]
pub(crate) async fn close_ticket(ctx: &Context, params: ExecutionParams) -> FlowResult {
    let event: ClosedEvent = params
        .trigger
        .body
        .json()
        .map_err(|error| FlowError::terminal(error.to_string()))?;
    let key = state_key(&event.ticket_id);
    let Some(mut ticket) = ctx.cross_flow_state().get::<Ticket>(&key) else {
        return Err(FlowError::terminal(format!("ticket {} not found; open it first", event.ticket_id)));
    };

    ticket.status = Status::Closed;
    ticket.agent_id = params.trigger.user.external_id.clone();
    ctx.cross_flow_state().set(&key, &ticket)?;
    Ok(serde_json::to_value(ticket)?.into())
}
