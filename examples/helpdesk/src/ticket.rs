//! Tickets as the helpdesk sends them and as the flows store them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The urgency of a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Priority {
    /// Needs a reply within a week.
    Low,
    /// Needs a reply within a day.
    Normal,
    /// Needs a reply within an hour.
    Urgent,
}

/// Whether a ticket still needs work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    /// Waiting for an answer.
    Open,
    /// Answered and closed.
    Closed,
}

/// The body of a `ticket.opened` event.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OpenedEvent {
    /// The helpdesk's ticket id.
    pub(crate) ticket_id: String,
    /// One-line summary.
    pub(crate) subject: String,
    /// The urgency.
    pub(crate) priority: Priority,
}

/// The body of a `ticket.closed` event.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClosedEvent {
    /// The helpdesk's ticket id.
    pub(crate) ticket_id: String,
}

/// A ticket as the instance's state keeps it under `ticket:{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Ticket {
    /// The helpdesk's ticket id.
    pub(crate) ticket_id: String,
    /// One-line summary.
    pub(crate) subject: String,
    /// The urgency.
    pub(crate) priority: Priority,
    /// Open or closed.
    pub(crate) status: Status,
    /// External id of the helpdesk agent who sent the last event, when the event named one.
    pub(crate) agent_id: Option<String>,
}

/// Returns the cross-flow state key of a ticket.
pub(crate) fn state_key(ticket_id: &str) -> String {
    format!("ticket:{ticket_id}")
}

/// Cross-flow state key of the list of every ticket id, in the order the tickets opened.
pub(crate) const TICKET_IDS_KEY: &str = "ticketIds";
