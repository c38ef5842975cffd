//! The "Post Ledger Entry" flow: applies the accounting system's ledger entries in the order
//! they arrive.
//!
//! The flow's queue is sequential, so one entry runs at a time and each run is meant to read the
//! state the previous run saved. The runtime saves the state in the same store transaction that
//! marks the run succeeded, so a run that the process dies in saves nothing and runs again. A
//! resent copy of the last applied entry is skipped.
//!
//! Each result carries `previousSequence`, the last sequence the run read from state, so a
//! test can check that every run saw what its predecessor saved.

use std::collections::BTreeMap;

use flow_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// Instance state key of the highest applied `sequence`.
const LAST_SEQUENCE: &str = "lastSequence";
/// Instance state key of the `entryId` of the highest applied sequence.
const LAST_ENTRY_ID: &str = "lastEntryId";
/// Instance state key of how many entries were applied.
const ENTRY_COUNT: &str = "entryCount";
/// Instance state key of the balance in cents of every account.
const BALANCES: &str = "balancesCents";
/// Instance state key of the entries that broke the sequence order.
const VIOLATIONS: &str = "violations";

/// A ledger entry as the accounting system sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LedgerEntry {
    /// The sender's entry id.
    pub(crate) entry_id: String,
    /// Position in the sender's stream, starting at 1; every entry must have a higher one than
    /// the entry before it.
    pub(crate) sequence: u64,
    /// Account the amount is booked to.
    pub(crate) account: String,
    /// Amount in cents; negative for a credit.
    pub(crate) amount_cents: i64,
}

/// Outcome of one ledger entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Posting {
    /// The entry changed its account's balance.
    Applied,
    /// The entry is a resent copy of the last applied entry and changed nothing.
    Duplicate,
    /// The entry's sequence is not above the last applied one; it changed nothing and is
    /// listed under `violations` in the instance state.
    OutOfOrder,
}

/// An entry that broke the sequence order, kept in the instance state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Violation {
    /// The execution that received the entry.
    pub(crate) execution_id: String,
    /// The entry's id.
    pub(crate) entry_id: String,
    /// The entry's sequence.
    pub(crate) sequence: u64,
    /// The last applied sequence when the entry arrived.
    pub(crate) last_sequence: u64,
}

/// The result of the "Post Ledger Entry" flow.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PostedEntry {
    /// The entry's id.
    pub(crate) entry_id: String,
    /// The entry's sequence.
    pub(crate) sequence: u64,
    /// The last applied sequence this run read from the instance state, 0 before the first.
    pub(crate) previous_sequence: u64,
    /// Outcome of the entry.
    pub(crate) posting: Posting,
    /// The account's balance in cents after this run.
    pub(crate) balance_cents: i64,
}

impl LedgerEntry {
    /// Checks that the entry has an id, an account and a sequence of at least 1.
    ///
    /// # Errors
    ///
    /// Returns a message naming the invalid field.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.entry_id.trim().is_empty() {
            return Err("ledger entry has an empty `entryId`".to_owned());
        }
        if self.account.trim().is_empty() {
            return Err(format!("ledger entry {} has an empty `account`", self.entry_id));
        }
        if self.sequence == 0 {
            return Err(format!("ledger entry {} has `sequence` 0; sequences start at 1", self.entry_id));
        }
        Ok(())
    }
}

#[flow(
    name = "Post Ledger Entry",
    stable_key = "post-ledger-entry",
    description = "Applies ledger entries to the account balances in the order they arrive",
    endpoint_security = "customer_required",
    retry(max_attempts = 3, delay_minutes = 1, exponential_backoff),
    queue(sequential),
)]
async fn post_ledger_entry(ctx: &Context, params: ExecutionParams) -> FlowResult {
    let entry: LedgerEntry = params
        .trigger
        .body
        .json()
        .map_err(|error| FlowError::terminal(error.to_string()))?;
    entry.validate().map_err(FlowError::terminal)?;

    let state = ctx.instance_state();
    let last_sequence: u64 = state.get(LAST_SEQUENCE).unwrap_or(0);
    let last_entry_id: String = state.get(LAST_ENTRY_ID).unwrap_or_default();
    let mut balances: BTreeMap<String, i64> = state.get(BALANCES).unwrap_or_default();

    let posting = if entry.sequence > last_sequence {
        let balance = balances.entry(entry.account.clone()).or_insert(0);
        *balance = balance.saturating_add(entry.amount_cents);
        let entry_count: u64 = state.get(ENTRY_COUNT).unwrap_or(0);
        state.set(LAST_SEQUENCE, &entry.sequence)?;
        state.set(LAST_ENTRY_ID, &entry.entry_id)?;
        state.set(ENTRY_COUNT, &(entry_count + 1))?;
        state.set(BALANCES, &balances)?;
        Posting::Applied
    } else if entry.sequence == last_sequence && entry.entry_id == last_entry_id {
        ctx.logger().info(format!("ledger entry {} was applied before; skipped", entry.entry_id));
        Posting::Duplicate
    } else {
        ctx.logger().warn(format!(
            "ledger entry {} has sequence {}, not above the last applied {last_sequence}; recorded as a violation",
            entry.entry_id, entry.sequence
        ));
        let mut violations: Vec<Violation> = state.get(VIOLATIONS).unwrap_or_default();
        violations.push(Violation {
            execution_id: ctx.execution_id().to_owned(),
            entry_id: entry.entry_id.clone(),
            sequence: entry.sequence,
            last_sequence,
        });
        state.set(VIOLATIONS, &violations)?;
        Posting::OutOfOrder
    };

    let posted = PostedEntry {
        balance_cents: balances.get(&entry.account).copied().unwrap_or(0),
        entry_id: entry.entry_id,
        sequence: entry.sequence,
        previous_sequence: last_sequence,
        posting,
    };
    Ok(serde_json::to_value(posted)?.into())
}
