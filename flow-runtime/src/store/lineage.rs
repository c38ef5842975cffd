//! An execution's ancestors: the executions that started it, nearest first.

use std::collections::HashSet;

use serde::Serialize;

use super::{ExecutionRecord, ExecutionStatus, Store, StoreResult};

/// Maximum number of ancestors [`execution_with_lineage`] follows, so a corrupt chain cannot loop forever.
pub const MAX_LINEAGE_DEPTH: usize = 64;

/// One ancestor of an execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ancestor {
    /// Id.
    pub id: String,
    /// Stable key of the flow.
    pub flow: String,
    /// Instance id.
    pub instance: String,
    /// The ancestor's source: `webhook`, `invoke`, `preprocess`, `mcp`, `cli` or `schedule`.
    pub source: String,
    /// Status.
    pub status: ExecutionStatus,
}

/// An execution as `GET /executions/{id}` and `executions show` print it: the stored record
/// and its ancestors.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionWithLineage {
    /// The stored execution.
    #[serde(flatten)]
    pub record: ExecutionRecord,
    /// The execution's parent, then the parent's parent, up to the execution that no other
    /// started; empty when nothing else started it.
    pub lineage: Vec<Ancestor>,
}

/// Reads an execution and follows its `parent_id` links, at most [`MAX_LINEAGE_DEPTH`] deep.
///
/// The chain stops at an ancestor the store no longer has, or at an id seen before.
///
/// # Errors
///
/// Returns the store's error.
pub async fn execution_with_lineage(store: &dyn Store, id: &str) -> StoreResult<Option<ExecutionWithLineage>> {
    let Some(record) = store.get(id).await? else {
        return Ok(None);
    };

    let mut lineage = Vec::new();
    let mut seen = HashSet::from([record.summary.id.clone()]);
    let mut next = record.parent_id.clone();
    while let Some(parent_id) = next.take() {
        if lineage.len() == MAX_LINEAGE_DEPTH || !seen.insert(parent_id.clone()) {
            tracing::warn!(execution_id = %id, ancestor = %parent_id, "stopped following the lineage: too deep or a cycle");
            break;
        }
        let Some(parent) = store.get(&parent_id).await? else {
            break;
        };
        next = parent.parent_id.clone();
        lineage.push(Ancestor {
            id: parent.summary.id,
            flow: parent.summary.flow,
            instance: parent.summary.instance,
            source: parent.summary.source,
            status: parent.summary.status,
        });
    }

    Ok(Some(ExecutionWithLineage { record, lineage }))
}
