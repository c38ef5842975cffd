//! One test suite that every [`Store`] implementation must pass.
//!
//! Each test takes a fresh, empty store. `store_conformance_tests!` instantiates the suite for
//! an implementation.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;

use super::{
    DeploymentRecord, DeploymentStatus, NewTick, QueuePolicies, TickFilter, TickOutcome, TickRecorded,
    AttemptOutcome, AttemptRecord, ExecutionFilter, ExecutionStatus, InsertOutcome, Lease, NewExecution, StateScope,
    StateWrite, Store, StoreError,
};

pub(super) fn at(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0).single().expect("valid instant") + Duration::minutes(minute)
}

pub(super) fn new_execution(id: &str) -> NewExecution {
    NewExecution {
        id: id.to_owned(),
        flow: "orders".to_owned(),
        instance: "acme".to_owned(),
        payload: json!({ "body": { "data": { "id": id } } }).to_string(),
        created_at: at(0),
        dedupe_key: None,
        unique_request_id: None,
        parent_id: None,
        source: "webhook".to_owned(),
        claimed_by: None,
    }
}

fn finish(id: &str, attempt: u32, worker: &str, outcome: AttemptOutcome) -> AttemptRecord {
    AttemptRecord {
        execution_id: id.to_owned(),
        attempt,
        worker: worker.to_owned(),
        started_at: at(1),
        finished_at: at(2),
        outcome,
        logs: Vec::new(),
        state_writes: Vec::new(),
    }
}

async fn status(store: &Arc<dyn Store>, id: &str) -> ExecutionStatus {
    store.get(id).await.expect("reads").expect("exists").summary.status
}

pub(super) async fn insert_then_get_returns_a_queued_execution(store: Arc<dyn Store>) {
    let outcome = store.insert(new_execution("e1")).await.expect("inserts");
    assert_eq!(outcome, InsertOutcome::Inserted);
    let record = store.get("e1").await.expect("reads").expect("exists");
    assert_eq!(record.summary.status, ExecutionStatus::Queued);
    assert_eq!(record.payload["body"]["data"]["id"], json!("e1"));
}

pub(super) async fn summary_matches_the_listed_execution(store: Arc<dyn Store>) {
    store.insert(new_execution("e1")).await.expect("inserts");
    store.claim("w1", 1, at(0), at(5), Arc::default()).await.expect("claims");

    let summary = store.summary("e1").await.expect("reads").expect("exists");

    let listed = store.list(ExecutionFilter::default()).await.expect("lists");
    assert_eq!(Some(&summary), listed.first());
}

pub(super) async fn summary_of_unknown_id_is_none(store: Arc<dyn Store>) {
    store.insert(new_execution("e1")).await.expect("inserts");

    let summary = store.summary("e2").await.expect("reads");

    assert_eq!(summary, None);
}

pub(super) async fn claim_marks_running_and_counts_the_attempt(store: Arc<dyn Store>) {
    store.insert(new_execution("e1")).await.expect("inserts");
    let claimed = store.claim("w1", 10, at(0), at(5), Arc::default()).await.expect("claims");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempt, 1);
    assert_eq!(status(&store, "e1").await, ExecutionStatus::Running);
}

pub(super) async fn claim_takes_each_execution_once(store: Arc<dyn Store>) {
    store.insert(new_execution("e1")).await.expect("inserts");
    let first = store.claim("w1", 10, at(0), at(5), Arc::default()).await.expect("claims");
    let second = store.claim("w2", 10, at(0), at(5), Arc::default()).await.expect("claims");
    assert_eq!(first.len(), 1);
    assert!(second.is_empty());
}

pub(super) async fn claim_returns_executions_in_arrival_order(store: Arc<dyn Store>) {
    for id in ["e1", "e2", "e3"] {
        store.insert(new_execution(id)).await.expect("inserts");
    }
    let claimed = store.claim("w1", 2, at(0), at(5), Arc::default()).await.expect("claims");
    let ids: Vec<&str> = claimed.iter().map(|execution| execution.id.as_str()).collect();
    assert_eq!(ids, vec!["e1", "e2"]);
}

pub(super) async fn success_stores_result_attempt_and_state(store: Arc<dyn Store>) {
    store.insert(new_execution("e1")).await.expect("inserts");
    store.claim("w1", 1, at(0), at(5), Arc::default()).await.expect("claims");
    let scope = StateScope::Flow {
        instance: "acme".into(),
        flow: "orders".into(),
    };
    let mut record = finish("e1", 1, "w1", AttemptOutcome::Succeeded { result: json!({ "ok": true }) });
    record.state_writes.push(StateWrite {
        scope: scope.clone(),
        changes: [("cursor".to_owned(), Some(json!(7)))].into_iter().collect(),
    });
    store.finish_attempt(&record).await.expect("finishes");

    let stored = store.get("e1").await.expect("reads").expect("exists");
    assert_eq!(stored.summary.status, ExecutionStatus::Succeeded);
    assert_eq!(stored.result, Some(json!({ "ok": true })));
    assert_eq!(stored.attempt_history.len(), 1);
    assert_eq!(store.load_state(scope).await.expect("loads")["cursor"], json!(7));
}

pub(super) async fn failure_keeps_state_unchanged(store: Arc<dyn Store>) {
    store.insert(new_execution("e1")).await.expect("inserts");
    store.claim("w1", 1, at(0), at(5), Arc::default()).await.expect("claims");
    let mut record = finish("e1", 1, "w1", AttemptOutcome::Failed { error: "boom".into() });
    record.state_writes.push(StateWrite {
        scope: StateScope::Integration,
        changes: [("x".to_owned(), Some(json!(1)))].into_iter().collect(),
    });
    store.finish_attempt(&record).await.expect("finishes");
    assert!(store.load_state(StateScope::Integration).await.expect("loads").is_empty());
    assert_eq!(status(&store, "e1").await, ExecutionStatus::Failed);
}

pub(super) async fn retry_requeues_until_its_due_time(store: Arc<dyn Store>) {
    store.insert(new_execution("e1")).await.expect("inserts");
    store.claim("w1", 1, at(0), at(5), Arc::default()).await.expect("claims");
    let outcome = AttemptOutcome::Retrying {
        error: "erp down".into(),
        retry_at: at(10),
    };
    store.finish_attempt(&finish("e1", 1, "w1", outcome)).await.expect("finishes");

    assert!(store.claim("w1", 1, at(9), at(15), Arc::default()).await.expect("claims").is_empty());
    let claimed = store.claim("w1", 1, at(10), at(15), Arc::default()).await.expect("claims");
    assert_eq!(claimed[0].attempt, 2);
    assert_eq!(store.next_due().await.expect("reads"), None);
}

fn log_line(minute: i64, message: &str) -> crate::logger::LogEntry {
    crate::logger::LogEntry {
        at: at(minute),
        level: crate::logger::LogLevel::Info,
        message: message.to_owned(),
    }
}

pub(super) async fn history_keeps_each_attempt_and_its_logs(store: Arc<dyn Store>) {
    store.insert(new_execution("e1")).await.expect("inserts");
    store.claim("w1", 1, at(0), at(5), Arc::default()).await.expect("claims");
    let retrying = AttemptOutcome::Retrying {
        error: "erp down".into(),
        retry_at: at(10),
    };
    let mut first = finish("e1", 1, "w1", retrying);
    first.logs.push(log_line(1, "calling the ERP"));
    store.finish_attempt(&first).await.expect("finishes");
    store.claim("w1", 1, at(10), at(15), Arc::default()).await.expect("claims");
    let mut second = finish("e1", 2, "w1", AttemptOutcome::Succeeded { result: json!({ "ok": true }) });
    (second.started_at, second.finished_at) = (at(11), at(12));
    second.logs.push(log_line(11, "order pushed"));
    store.finish_attempt(&second).await.expect("finishes");

    let stored = store.get("e1").await.expect("reads").expect("exists");

    let history: Vec<_> = stored
        .attempt_history
        .iter()
        .map(|attempt| (attempt.number, attempt.status.as_str(), attempt.started_at, attempt.finished_at, attempt.error.as_deref()))
        .collect();
    assert_eq!(history, vec![(1, "failed", at(1), at(2), Some("erp down")), (2, "succeeded", at(11), at(12), None)]);
    let messages: Vec<&str> = stored.logs.iter().map(|entry| entry.message.as_str()).collect();
    assert_eq!(messages, vec!["calling the ERP", "order pushed"]);
}

pub(super) async fn outcome_from_a_worker_without_the_lease_is_ignored(store: Arc<dyn Store>) {
    store.insert(new_execution("e1")).await.expect("inserts");
    store.claim("w1", 1, at(0), at(5), Arc::default()).await.expect("claims");
    let outcome = AttemptOutcome::Succeeded { result: json!(1) };
    let recorded = store.finish_attempt(&finish("e1", 1, "w2", outcome)).await.expect("finishes");
    assert!(!recorded);
    assert_eq!(status(&store, "e1").await, ExecutionStatus::Running);
}

pub(super) async fn dedupe_key_matches_a_queued_execution(store: Arc<dyn Store>) {
    let mut first = new_execution("e1");
    first.dedupe_key = Some("req-42".into());
    let mut second = new_execution("e2");
    second.dedupe_key = Some("req-42".into());
    store.insert(first).await.expect("inserts");
    let outcome = store.insert(second).await.expect("inserts");
    assert_eq!(outcome, InsertOutcome::Deduplicated { existing_id: "e1".into() });

    let duplicate = store.get("e2").await.expect("reads").expect("recorded");
    assert_eq!(duplicate.summary.status, ExecutionStatus::Cancelled);
    assert_eq!(duplicate.related_id.as_deref(), Some("e1"));
}

pub(super) async fn dedupe_key_of_a_finished_execution_does_not_match(store: Arc<dyn Store>) {
    let mut first = new_execution("e1");
    first.dedupe_key = Some("req-42".into());
    store.insert(first).await.expect("inserts");
    store.claim("w1", 1, at(0), at(5), Arc::default()).await.expect("claims");
    let outcome = AttemptOutcome::Succeeded { result: json!(1) };
    store.finish_attempt(&finish("e1", 1, "w1", outcome)).await.expect("finishes");

    let mut second = new_execution("e2");
    second.dedupe_key = Some("req-42".into());
    assert_eq!(store.insert(second).await.expect("inserts"), InsertOutcome::Inserted);
}

pub(super) async fn unique_request_id_cancels_a_pending_retry(store: Arc<dyn Store>) {
    let mut first = new_execution("a");
    first.unique_request_id = Some("req-42".into());
    store.insert(first).await.expect("inserts");
    store.claim("w1", 1, at(0), at(5), Arc::default()).await.expect("claims");
    let outcome = AttemptOutcome::Retrying {
        error: "down".into(),
        retry_at: at(5),
    };
    store.finish_attempt(&finish("a", 1, "w1", outcome)).await.expect("finishes");

    let mut second = new_execution("b");
    second.unique_request_id = Some("req-42".into());
    store.insert(second).await.expect("inserts");

    let cancelled = store.get("a").await.expect("reads").expect("exists");
    assert_eq!(cancelled.summary.status, ExecutionStatus::Cancelled);
    assert_eq!(cancelled.related_id.as_deref(), Some("b"));
    assert!(cancelled.error.as_deref().unwrap_or_default().contains("b"));
}

pub(super) async fn other_unique_request_id_cancels_nothing(store: Arc<dyn Store>) {
    let mut first = new_execution("a");
    first.unique_request_id = Some("req-42".into());
    store.insert(first).await.expect("inserts");
    store.claim("w1", 1, at(0), at(5), Arc::default()).await.expect("claims");
    let outcome = AttemptOutcome::Retrying {
        error: "down".into(),
        retry_at: at(5),
    };
    store.finish_attempt(&finish("a", 1, "w1", outcome)).await.expect("finishes");

    let mut second = new_execution("b");
    second.unique_request_id = Some("req-43".into());
    store.insert(second).await.expect("inserts");
    assert_eq!(status(&store, "a").await, ExecutionStatus::Queued);
}

pub(super) async fn insert_claimed_starts_running(store: Arc<dyn Store>) {
    let mut execution = new_execution("e1");
    execution.claimed_by = Some(Lease {
        worker: "w1".into(),
        until: at(5),
    });
    store.insert(execution).await.expect("inserts");
    assert_eq!(status(&store, "e1").await, ExecutionStatus::Running);
    assert!(store.claim("w2", 1, at(0), at(5), Arc::default()).await.expect("claims").is_empty());
    let outcome = AttemptOutcome::Succeeded { result: json!(1) };
    store.finish_attempt(&finish("e1", 1, "w1", outcome)).await.expect("finishes");
    assert_eq!(status(&store, "e1").await, ExecutionStatus::Succeeded);
}

pub(super) async fn reclaim_requeues_only_expired_leases(store: Arc<dyn Store>) {
    store.insert(new_execution("short")).await.expect("inserts");
    store.claim("w1", 1, at(0), at(5), Arc::default()).await.expect("claims");
    store.insert(new_execution("long")).await.expect("inserts");
    store.claim("w1", 1, at(0), at(50), Arc::default()).await.expect("claims");

    assert_eq!(store.reclaim_expired(at(10)).await.expect("reclaims"), 1);
    assert_eq!(status(&store, "short").await, ExecutionStatus::Queued);
    assert_eq!(status(&store, "long").await, ExecutionStatus::Running);
}

pub(super) async fn renewed_lease_is_not_reclaimed(store: Arc<dyn Store>) {
    store.insert(new_execution("e1")).await.expect("inserts");
    store.claim("w1", 1, at(0), at(5), Arc::default()).await.expect("claims");
    assert_eq!(store.renew_leases("w1", vec!["e1".to_owned()], at(20)).await.expect("renews"), 1);
    assert_eq!(store.reclaim_expired(at(10)).await.expect("reclaims"), 0);
    assert_eq!(status(&store, "e1").await, ExecutionStatus::Running);
}

pub(super) async fn unlisted_lease_is_not_renewed(store: Arc<dyn Store>) {
    store.insert(new_execution("listed")).await.expect("inserts");
    store.insert(new_execution("unlisted")).await.expect("inserts");
    store.claim("w1", 2, at(0), at(5), Arc::default()).await.expect("claims");

    let renewed = store.renew_leases("w1", vec!["listed".to_owned()], at(20)).await.expect("renews");

    assert_eq!(renewed, 1);
    assert_eq!(store.reclaim_expired(at(10)).await.expect("reclaims"), 1);
    assert_eq!(status(&store, "listed").await, ExecutionStatus::Running);
    assert_eq!(status(&store, "unlisted").await, ExecutionStatus::Queued);
}

pub(super) async fn release_requeues_the_workers_executions(store: Arc<dyn Store>) {
    store.insert(new_execution("e1")).await.expect("inserts");
    store.claim("w1", 1, at(0), at(5), Arc::default()).await.expect("claims");
    assert_eq!(store.release_worker("w2").await.expect("releases"), 0);
    assert_eq!(store.release_worker("w1").await.expect("releases"), 1);
    assert_eq!(status(&store, "e1").await, ExecutionStatus::Queued);
}

pub(super) async fn list_filters_by_status_and_flow(store: Arc<dyn Store>) {
    store.insert(new_execution("e1")).await.expect("inserts");
    let mut other = new_execution("e2");
    other.flow = "invoices".into();
    store.insert(other).await.expect("inserts");
    store.claim("w1", 1, at(0), at(5), Arc::default()).await.expect("claims");

    let queued = store
        .list(ExecutionFilter {
            status: Some(ExecutionStatus::Queued),
            ..ExecutionFilter::default()
        })
        .await
        .expect("lists");
    assert_eq!(queued.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), vec!["e2"]);
    let orders = store
        .list(ExecutionFilter {
            flow: Some("orders".into()),
            ..ExecutionFilter::default()
        })
        .await
        .expect("lists");
    assert_eq!(orders.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), vec!["e1"]);
}

pub(super) async fn list_filters_by_parent(store: Arc<dyn Store>) {
    let child = |id: &str, parent: &str| {
        let mut execution = new_execution(id);
        execution.parent_id = Some(parent.to_owned());
        execution
    };
    for execution in [new_execution("p1"), child("c1", "p1"), child("c2", "p2"), child("c3", "p1")] {
        store.insert(execution).await.expect("inserts");
    }
    let children = |parent: &str| {
        let filter = ExecutionFilter {
            parent: Some(parent.to_owned()),
            limit: 10,
            ..ExecutionFilter::default()
        };
        let store = Arc::clone(&store);
        async move { store.list(filter).await.expect("lists").into_iter().map(|summary| summary.id).collect::<Vec<_>>() }
    };

    assert_eq!(children("p1").await, ["c3", "c1"]);
    assert_eq!(children("p2").await, ["c2"]);
    assert!(children("c1").await.is_empty());
}

/// Lists with every combination of filters and limits, and compares each result with the same
/// filter applied to the inserted executions. Names containing quotes and SQL match only themselves.
pub(super) async fn list_matches_every_filter_combination(store: Arc<dyn Store>) {
    let flows = ["orders", "x' OR '1'='1", "100%_"];
    let instances = ["acme", "a\"; DROP TABLE executions; --"];
    let mut inserted: Vec<(String, String, String, ExecutionStatus)> = Vec::new();
    for (index, (flow, instance)) in flows.iter().flat_map(|flow| instances.iter().map(move |instance| (*flow, *instance))).enumerate() {
        let anchor = format!("a{index}");
        let mut execution = new_execution(&anchor);
        execution.flow = flow.to_owned();
        execution.instance = instance.to_owned();
        execution.dedupe_key = Some(format!("key{index}"));
        store.insert(execution).await.expect("inserts");
        inserted.push((anchor, flow.to_owned(), instance.to_owned(), ExecutionStatus::Queued));

        for (number, status) in [
            ExecutionStatus::Succeeded,
            ExecutionStatus::Failed,
            ExecutionStatus::Running,
            ExecutionStatus::Cancelled,
            ExecutionStatus::Failed,
            ExecutionStatus::Succeeded,
        ]
        .into_iter()
        .enumerate()
        {
            let id = format!("e{index}-{number}");
            let mut execution = new_execution(&id);
            execution.flow = flow.to_owned();
            execution.instance = instance.to_owned();
            match status {
                ExecutionStatus::Cancelled => execution.dedupe_key = Some(format!("key{index}")),
                ExecutionStatus::Queued => {}
                _ => {
                    execution.claimed_by = Some(Lease {
                        worker: "w1".to_owned(),
                        until: at(5),
                    });
                }
            }
            store.insert(execution).await.expect("inserts");
            let outcome = match status {
                ExecutionStatus::Succeeded => Some(AttemptOutcome::Succeeded { result: json!(1) }),
                ExecutionStatus::Failed => Some(AttemptOutcome::Failed { error: "boom".into() }),
                _ => None,
            };
            if let Some(outcome) = outcome {
                store.finish_attempt(&finish(&id, 1, "w1", outcome)).await.expect("finishes");
            }
            inserted.push((id, flow.to_owned(), instance.to_owned(), status));
        }
    }

    let statuses = [
        None,
        Some(ExecutionStatus::Queued),
        Some(ExecutionStatus::Running),
        Some(ExecutionStatus::Succeeded),
        Some(ExecutionStatus::Failed),
        Some(ExecutionStatus::Cancelled),
    ];
    let flow_filters = [None, Some("orders"), Some("x' OR '1'='1"), Some("100%_"), Some("100%"), Some("x")];
    let instance_filters = [None, Some("acme"), Some("a\"; DROP TABLE executions; --"), Some("a")];
    for flow in flow_filters {
        for instance in instance_filters {
            for status in statuses {
                for limit in [0, 1, 3, 100, usize::MAX] {
                    let filter = ExecutionFilter {
                        flow: flow.map(str::to_owned),
                        instance: instance.map(str::to_owned),
                        status,
                        parent: None,
                        before: None,
                        limit,
                    };
                    let listed: Vec<String> =
                        store.list(filter).await.expect("lists").into_iter().map(|summary| summary.id).collect();
                    let expected: Vec<String> = inserted
                        .iter()
                        .rev()
                        .filter(|(_, inserted_flow, inserted_instance, inserted_status)| {
                            flow.is_none_or(|flow| flow == inserted_flow)
                                && instance.is_none_or(|instance| instance == inserted_instance)
                                && status.is_none_or(|status| status == *inserted_status)
                        })
                        .take(if limit == 0 { 100 } else { limit })
                        .map(|(id, ..)| id.clone())
                        .collect();
                    assert_eq!(listed, expected, "flow {flow:?}, instance {instance:?}, status {status:?}, limit {limit}");
                }
            }
        }
    }
}

/// Lists the ids of `flow`'s executions stored before `cursor`, newest first.
async fn ids_before(store: &Arc<dyn Store>, cursor: Option<&str>, flow: Option<&str>, limit: usize) -> Vec<String> {
    let filter = ExecutionFilter {
        flow: flow.map(str::to_owned),
        before: cursor.map(str::to_owned),
        limit,
        ..ExecutionFilter::default()
    };
    store.list(filter).await.expect("lists").into_iter().map(|summary| summary.id).collect()
}

pub(super) async fn cursor_pages_list_each_execution_once(store: Arc<dyn Store>) {
    for id in ["e1", "e2", "e3", "e4", "e5"] {
        store.insert(new_execution(id)).await.expect("inserts");
    }

    let mut listed = Vec::new();
    let mut cursor = None;
    loop {
        let page = ids_before(&store, cursor.as_deref(), None, 2).await;
        listed.extend(page.iter().cloned());
        if page.len() < 2 {
            break;
        }
        cursor = page.last().cloned();
    }

    assert_eq!(listed, ["e5", "e4", "e3", "e2", "e1"]);
}

pub(super) async fn cursor_keeps_the_listing_filter(store: Arc<dyn Store>) {
    for (id, flow) in [("o1", "orders"), ("i1", "invoices"), ("o2", "orders"), ("i2", "invoices"), ("o3", "orders")] {
        let mut execution = new_execution(id);
        execution.flow = flow.to_owned();
        store.insert(execution).await.expect("inserts");
    }

    let orders = ids_before(&store, Some("i2"), Some("orders"), 10).await;

    assert_eq!(orders, ["o2", "o1"]);
}

pub(super) async fn cursor_at_oldest_execution_lists_nothing(store: Arc<dyn Store>) {
    for id in ["e1", "e2"] {
        store.insert(new_execution(id)).await.expect("inserts");
    }

    assert!(ids_before(&store, Some("e1"), None, 10).await.is_empty());
}

pub(super) async fn unknown_cursor_fails_the_listing(store: Arc<dyn Store>) {
    store.insert(new_execution("e1")).await.expect("inserts");

    // PostgreSQL text cannot hold a NUL, so that cursor must not reach the query either.
    for cursor in ["nope", "e1\0"] {
        let filter = ExecutionFilter {
            before: Some(cursor.to_owned()),
            ..ExecutionFilter::default()
        };
        let error = store.list(filter).await.expect_err("rejects the cursor");

        assert!(matches!(error, StoreError::UnknownCursor(ref id) if id == cursor), "{error:?}");
    }
}

pub(super) async fn nul_byte_values_match_no_execution(store: Arc<dyn Store>) {
    store.insert(new_execution("e1")).await.expect("inserts");

    let filter = ExecutionFilter {
        flow: Some("orders\0".to_owned()),
        ..ExecutionFilter::default()
    };

    assert!(store.get("e1\0").await.expect("reads").is_none());
    assert!(store.list(filter).await.expect("lists").is_empty());
}

/// Reads back a payload nested too deep to drop safely: as a value it would overflow the stack
/// when dropped and abort the process.
pub(super) async fn too_deeply_nested_payload_is_corrupt(store: Arc<dyn Store>) {
    let depth = 100_000;
    let mut execution = new_execution("e1");
    execution.payload = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    store.insert(execution).await.expect("inserts");

    let read = store.get("e1").await;

    assert!(matches!(read, Err(super::StoreError::Corrupt(_))), "the payload was read back as a value");
}

pub(super) async fn state_writes_merge_by_key(store: Arc<dyn Store>) {
    let scope = StateScope::Integration;
    let write = |key: &str, value: Option<serde_json::Value>| StateWrite {
        scope: StateScope::Integration,
        changes: [(key.to_owned(), value)].into_iter().collect(),
    };
    store.save_state(write("a", Some(json!(1))), at(0)).await.expect("saves");
    store.save_state(write("b", Some(json!(2))), at(0)).await.expect("saves");
    store.save_state(write("a", None), at(0)).await.expect("saves");
    let values = store.load_state(scope).await.expect("loads");
    assert_eq!(values.into_iter().collect::<Vec<_>>(), vec![("b".to_owned(), json!(2))]);
}

fn policies(flow: &str, mode: flow_core::QueueMode) -> Arc<QueuePolicies> {
    Arc::new(QueuePolicies {
        modes: [(flow.to_owned(), mode)].into_iter().collect(),
        served: None,
    })
}

/// Returns `queues` with a claim limited to the flows `orders` and `invoices` of the instance
/// `acme`.
fn serving_acme(queues: Arc<QueuePolicies>) -> Arc<QueuePolicies> {
    let mut queues = Arc::unwrap_or_clone(queues);
    queues.served = Some(super::Served {
        flows: ["orders".to_owned(), "invoices".to_owned()].into_iter().collect(),
        instances: ["acme".to_owned()].into_iter().collect(),
    });
    Arc::new(queues)
}

/// Inserts `e1` of `orders` in `globex`, `e2` of `refunds` in `acme` and `e3` of `orders` in
/// `acme`, in this order.
async fn insert_work_of_three_kinds(store: &Arc<dyn Store>) {
    for (id, flow, instance) in [("e1", "orders", "globex"), ("e2", "refunds", "acme"), ("e3", "orders", "acme")] {
        let mut execution = new_execution(id);
        (execution.flow, execution.instance) = (flow.into(), instance.into());
        store.insert(execution).await.expect("inserts");
    }
}

pub(super) async fn claim_takes_only_served_work(store: Arc<dyn Store>) {
    insert_work_of_three_kinds(&store).await;

    let claimed = store.claim("w1", 10, at(0), at(5), serving_acme(Arc::default())).await.expect("claims");

    assert_eq!(claimed_ids(&claimed), vec!["e3"]);
}

pub(super) async fn keyed_claim_takes_only_served_instances(store: Arc<dyn Store>) {
    insert_work_of_three_kinds(&store).await;
    let throttled = serving_acme(policies("orders", flow_core::QueueMode::Throttled { concurrency_limit: 5 }));

    let claimed = store.claim("w1", 10, at(0), at(5), throttled).await.expect("claims");

    assert_eq!(claimed_ids(&claimed), vec!["e3"]);
}

pub(super) async fn sequential_claim_takes_only_served_instances(store: Arc<dyn Store>) {
    insert_work_of_three_kinds(&store).await;
    let sequential = serving_acme(policies("orders", flow_core::QueueMode::Sequential));

    let claimed = store.claim("w1", 10, at(0), at(5), sequential).await.expect("claims");

    assert_eq!(claimed_ids(&claimed), vec!["e3"]);
}

fn claimed_ids(claimed: &[super::ClaimedExecution]) -> Vec<&str> {
    claimed.iter().map(|execution| execution.id.as_str()).collect()
}

pub(super) async fn sequential_queue_runs_one_at_a_time_in_order(store: Arc<dyn Store>) {
    for id in ["e1", "e2", "e3"] {
        store.insert(new_execution(id)).await.expect("inserts");
    }
    let sequential = policies("orders", flow_core::QueueMode::Sequential);

    let first = store.claim("w1", 10, at(0), at(5), Arc::clone(&sequential)).await.expect("claims");
    assert_eq!(claimed_ids(&first), vec!["e1"]);
    assert!(store.claim("w1", 10, at(0), at(5), Arc::clone(&sequential)).await.expect("claims").is_empty());

    let outcome = AttemptOutcome::Succeeded { result: json!(1) };
    store.finish_attempt(&finish("e1", 1, "w1", outcome)).await.expect("finishes");
    let second = store.claim("w1", 10, at(0), at(5), sequential).await.expect("claims");
    assert_eq!(claimed_ids(&second), vec!["e2"]);
}

pub(super) async fn sequential_retry_holds_back_later_executions(store: Arc<dyn Store>) {
    for id in ["e1", "e2"] {
        store.insert(new_execution(id)).await.expect("inserts");
    }
    let sequential = policies("orders", flow_core::QueueMode::Sequential);
    store.claim("w1", 10, at(0), at(5), Arc::clone(&sequential)).await.expect("claims");
    let outcome = AttemptOutcome::Retrying {
        error: "down".into(),
        retry_at: at(10),
    };
    store.finish_attempt(&finish("e1", 1, "w1", outcome)).await.expect("finishes");

    assert!(store.claim("w1", 10, at(5), at(9), Arc::clone(&sequential)).await.expect("claims").is_empty());
    let retried = store.claim("w1", 10, at(10), at(15), sequential).await.expect("claims");
    assert_eq!(claimed_ids(&retried), vec!["e1"]);
}

pub(super) async fn sequential_queues_of_two_instances_run_side_by_side(store: Arc<dyn Store>) {
    store.insert(new_execution("a1")).await.expect("inserts");
    let mut other = new_execution("b1");
    other.instance = "globex".into();
    store.insert(other).await.expect("inserts");
    let claimed = store
        .claim("w1", 10, at(0), at(5), policies("orders", flow_core::QueueMode::Sequential))
        .await
        .expect("claims");
    assert_eq!(claimed.len(), 2);
}

pub(super) async fn keyed_queue_waiting_longest_starts_first(store: Arc<dyn Store>) {
    for instance in ["zeta", "alpha"] {
        let mut execution = new_execution(instance);
        execution.instance = instance.into();
        store.insert(execution).await.expect("inserts");
    }

    let claimed = store
        .claim("w1", 1, at(0), at(5), policies("orders", flow_core::QueueMode::Sequential))
        .await
        .expect("claims");

    assert_eq!(claimed_ids(&claimed), vec!["zeta"]);
}

pub(super) async fn throttled_queue_stops_at_its_limit(store: Arc<dyn Store>) {
    for id in ["e1", "e2", "e3", "e4"] {
        store.insert(new_execution(id)).await.expect("inserts");
    }
    let throttled = policies("orders", flow_core::QueueMode::Throttled { concurrency_limit: 3 });
    let first = store.claim("w1", 10, at(0), at(5), Arc::clone(&throttled)).await.expect("claims");
    assert_eq!(claimed_ids(&first), vec!["e1", "e2", "e3"]);
    assert!(store.claim("w1", 10, at(0), at(5), throttled).await.expect("claims").is_empty());
}

pub(super) async fn parallel_flows_fill_room_beside_a_blocked_queue(store: Arc<dyn Store>) {
    store.insert(new_execution("e1")).await.expect("inserts");
    store.insert(new_execution("e2")).await.expect("inserts");
    let mut parallel = new_execution("p1");
    parallel.flow = "invoices".into();
    store.insert(parallel).await.expect("inserts");
    let claimed = store
        .claim("w1", 10, at(0), at(5), policies("orders", flow_core::QueueMode::Sequential))
        .await
        .expect("claims");
    assert_eq!(claimed_ids(&claimed), vec!["e1", "p1"]);
}

pub(super) async fn older_parallel_work_starts_first(store: Arc<dyn Store>) {
    let mut parallel = new_execution("p1");
    parallel.flow = "invoices".into();
    store.insert(parallel).await.expect("inserts");
    for instance in ["acme", "globex"] {
        let mut keyed = new_execution(instance);
        keyed.instance = instance.into();
        store.insert(keyed).await.expect("inserts");
    }

    let claimed = store
        .claim("w1", 1, at(0), at(5), policies("orders", flow_core::QueueMode::Sequential))
        .await
        .expect("claims");

    assert_eq!(claimed_ids(&claimed), vec!["p1"]);
}

pub(super) async fn keyed_flows_start_oldest_first(store: Arc<dyn Store>) {
    for (id, flow) in [("z1", "zulu"), ("a1", "alpha"), ("z2", "zulu"), ("a2", "alpha")] {
        let mut execution = new_execution(id);
        execution.flow = flow.into();
        execution.instance = id.into();
        store.insert(execution).await.expect("inserts");
    }
    let queues = Arc::new(QueuePolicies {
        modes: [
            ("alpha".to_owned(), flow_core::QueueMode::Sequential),
            ("zulu".to_owned(), flow_core::QueueMode::Throttled { concurrency_limit: 5 }),
        ]
        .into_iter()
        .collect(),
        served: None,
    });

    let claimed = store.claim("w1", 3, at(0), at(5), queues).await.expect("claims");

    assert_eq!(claimed_ids(&claimed), vec!["z1", "a1", "z2"]);
}

pub(super) async fn keyed_work_due_first_is_offered(store: Arc<dyn Store>) {
    for (id, flow, instance, due) in [("x1", "orders", "x", 3), ("y1", "orders", "y", 0), ("p1", "invoices", "acme", 1)] {
        let mut execution = new_execution(id);
        (execution.flow, execution.instance, execution.created_at) = (flow.into(), instance.into(), at(due));
        store.insert(execution).await.expect("inserts");
    }
    let throttled = policies("orders", flow_core::QueueMode::Throttled { concurrency_limit: 2 });

    let claimed = store.claim("w1", 1, at(5), at(10), throttled).await.expect("claims");

    assert_eq!(claimed_ids(&claimed), vec!["y1"]);
}

fn tick(minute: i64) -> NewTick {
    NewTick {
        flow: "orders".to_owned(),
        instance: "acme".to_owned(),
        scheduled_at: at(minute),
        missed: Vec::new(),
        missed_total: 0,
        outcome: TickOutcome::Started,
        detail: None,
        execution: Some(new_execution(&format!("tick-{minute}"))),
        singleton: false,
        state: None,
        recorded_at: at(minute),
    }
}

pub(super) async fn schedule_cursor_keeps_its_first_start(store: Arc<dyn Store>) {
    store.schedule_cursor("orders", "acme", at(0)).await.expect("starts");
    let cursor = store.schedule_cursor("orders", "acme", at(9)).await.expect("reads");
    assert_eq!(cursor, at(0));
}

pub(super) async fn tick_is_recorded_once(store: Arc<dyn Store>) {
    store.schedule_cursor("orders", "acme", at(0)).await.expect("starts");
    let first = store.record_tick(tick(5)).await.expect("records");
    let mut again = tick(5);
    again.execution = Some(new_execution("tick-5-again"));
    let second = store.record_tick(again).await.expect("records");

    assert_eq!(first, TickRecorded::Recorded(TickOutcome::Started));
    assert_eq!(second, TickRecorded::AlreadyHandled);
    assert!(store.get("tick-5-again").await.expect("reads").is_none());
}

pub(super) async fn recorded_tick_moves_the_cursor(store: Arc<dyn Store>) {
    store.schedule_cursor("orders", "acme", at(0)).await.expect("starts");
    store.record_tick(tick(5)).await.expect("records");
    assert_eq!(store.schedule_cursor("orders", "acme", at(9)).await.expect("reads"), at(5));
}

pub(super) async fn singleton_tick_is_skipped_beside_an_unfinished_execution(store: Arc<dyn Store>) {
    store.schedule_cursor("orders", "acme", at(0)).await.expect("starts");
    store.insert(new_execution("running")).await.expect("inserts");
    let mut singleton = tick(5);
    singleton.singleton = true;

    let recorded = store.record_tick(singleton).await.expect("records");

    assert_eq!(recorded, TickRecorded::Recorded(TickOutcome::Skipped));
    assert!(store.get("tick-5").await.expect("reads").is_none());
}

pub(super) async fn missed_ticks_are_listed_with_the_catch_up(store: Arc<dyn Store>) {
    store.schedule_cursor("orders", "acme", at(0)).await.expect("starts");
    let mut catch_up = tick(15);
    catch_up.missed = vec![at(5), at(10)];
    catch_up.missed_total = 2;
    store.record_tick(catch_up).await.expect("records");

    let ticks = store.list_ticks(TickFilter::default()).await.expect("lists");
    let listed: Vec<_> = ticks.iter().map(|tick| (tick.scheduled_at, tick.outcome, tick.missed)).collect();
    assert_eq!(
        listed,
        vec![(at(15), TickOutcome::Started, 2), (at(10), TickOutcome::Missed, 0), (at(5), TickOutcome::Missed, 0)]
    );
}

pub(super) async fn summaries_count_ticks_by_outcome(store: Arc<dyn Store>) {
    store.schedule_cursor("orders", "acme", at(0)).await.expect("starts");
    let mut catch_up = tick(15);
    catch_up.missed = vec![at(5), at(10)];
    catch_up.missed_total = 2;
    store.record_tick(catch_up).await.expect("records");

    let summaries = store.schedule_summaries().await.expect("reads");
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].handled_until, at(15));
    assert_eq!(summaries[0].counts.get(&TickOutcome::Missed), Some(&2));
    assert_eq!(summaries[0].counts.get(&TickOutcome::Started), Some(&1));
}

pub(super) async fn restarted_schedule_skips_earlier_instants(store: Arc<dyn Store>) {
    store.schedule_cursor("orders", "acme", at(0)).await.expect("starts");

    let moved = store.restart_schedules("acme", at(30)).await.expect("restarts");

    assert_eq!(moved, 1);
    assert_eq!(store.schedule_cursor("orders", "acme", at(0)).await.expect("reads"), at(30));
}

pub(super) async fn restart_never_moves_a_cursor_back(store: Arc<dyn Store>) {
    store.schedule_cursor("orders", "acme", at(30)).await.expect("starts");

    store.restart_schedules("acme", at(10)).await.expect("restarts");

    assert_eq!(store.schedule_cursor("orders", "acme", at(0)).await.expect("reads"), at(30));
}

/// Returns the deployment of `acme` with `status`, updated at `minute`.
fn deployment_record(status: DeploymentStatus, minute: i64) -> DeploymentRecord {
    DeploymentRecord {
        instance: "acme".to_owned(),
        status,
        error: None,
        updated_at: at(minute),
        deployed_at: Some(at(0)),
    }
}

pub(super) async fn deployment_is_replaced_by_the_latest(store: Arc<dyn Store>) {
    store.save_deployment(deployment_record(DeploymentStatus::Deployed, 0)).await.expect("saves");
    store.save_deployment(deployment_record(DeploymentStatus::Deleted, 5)).await.expect("saves");

    let deployments = store.deployments().await.expect("reads");
    assert_eq!(deployments, vec![deployment_record(DeploymentStatus::Deleted, 5)]);
}

pub(super) async fn deployment_reads_one_instance(store: Arc<dyn Store>) {
    let mut globex = deployment_record(DeploymentStatus::Failed, 2);
    globex.instance = "globex".to_owned();
    store.save_deployment(deployment_record(DeploymentStatus::Deployed, 1)).await.expect("saves");
    store.save_deployment(globex.clone()).await.expect("saves");

    let read = store.deployment("globex").await.expect("reads");

    assert_eq!(read, Some(globex));
}

pub(super) async fn deployment_of_unknown_instance_is_none(store: Arc<dyn Store>) {
    store.save_deployment(deployment_record(DeploymentStatus::Deployed, 1)).await.expect("saves");

    let read = store.deployment("globex").await.expect("reads");

    assert_eq!(read, None);
}

pub(super) async fn held_lifecycle_lock_is_not_taken(store: Arc<dyn Store>) {
    assert!(store.lock_lifecycle("acme", "deploy-1", at(0), at(5)).await.expect("locks"));

    let second = store.lock_lifecycle("acme", "deploy-2", at(1), at(6)).await.expect("locks");

    assert!(!second, "a second deploy took the held lock");
}

pub(super) async fn owner_renews_its_lifecycle_lock(store: Arc<dyn Store>) {
    assert!(store.lock_lifecycle("acme", "deploy-1", at(0), at(5)).await.expect("locks"));
    assert!(store.lock_lifecycle("acme", "deploy-1", at(4), at(9)).await.expect("renews"));

    let other = store.lock_lifecycle("acme", "deploy-2", at(6), at(11)).await.expect("locks");

    assert!(!other, "the lock ended at its first end, not at its renewed one");
}

pub(super) async fn expired_lifecycle_lock_is_taken(store: Arc<dyn Store>) {
    assert!(store.lock_lifecycle("acme", "deploy-1", at(0), at(5)).await.expect("locks"));

    let locked = store.lock_lifecycle("acme", "deploy-2", at(5), at(10)).await.expect("locks");

    assert!(locked, "the lock lasted past its end");
}

pub(super) async fn released_lifecycle_lock_is_taken(store: Arc<dyn Store>) {
    assert!(store.lock_lifecycle("acme", "deploy-1", at(0), at(5)).await.expect("locks"));
    store.unlock_lifecycle("acme", "deploy-1").await.expect("unlocks");

    let locked = store.lock_lifecycle("acme", "deploy-2", at(1), at(6)).await.expect("locks");

    assert!(locked, "the released lock was still taken");
}

pub(super) async fn only_owner_releases_lifecycle_lock(store: Arc<dyn Store>) {
    assert!(store.lock_lifecycle("acme", "deploy-1", at(0), at(5)).await.expect("locks"));
    store.unlock_lifecycle("acme", "deploy-2").await.expect("unlocks");

    let locked = store.lock_lifecycle("acme", "deploy-3", at(1), at(6)).await.expect("locks");

    assert!(!locked, "another owner released the lock");
}

pub(super) async fn lifecycle_locks_are_per_instance(store: Arc<dyn Store>) {
    assert!(store.lock_lifecycle("acme", "deploy-1", at(0), at(5)).await.expect("locks"));

    let other = store.lock_lifecycle("globex", "deploy-2", at(1), at(6)).await.expect("locks");

    assert!(other, "the lock of acme held back globex");
}

/// Instantiates every conformance test for a store. `$make` is an async block returning
/// `Some((store, guard))` with a fresh `Arc<dyn Store>` and a value that cleans up when
/// dropped, or `None` when the store is not available here, which skips the test (the block
/// prints why). `runtime(...)` passes arguments to `#[tokio::test]`, such as
/// `flavor = "multi_thread"`; without it each test runs on a current-thread runtime.
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::store::conformance::store_conformance_tests!(runtime(); $make);
    };
    (runtime($($runtime:tt)*); $make:expr) => {
        $crate::store::conformance::store_conformance_tests!(@tests ($($runtime)*) $make;
            insert_then_get_returns_a_queued_execution,
            summary_matches_the_listed_execution,
            summary_of_unknown_id_is_none,
            claim_marks_running_and_counts_the_attempt,
            claim_takes_each_execution_once,
            claim_returns_executions_in_arrival_order,
            success_stores_result_attempt_and_state,
            history_keeps_each_attempt_and_its_logs,
            failure_keeps_state_unchanged,
            retry_requeues_until_its_due_time,
            outcome_from_a_worker_without_the_lease_is_ignored,
            dedupe_key_matches_a_queued_execution,
            dedupe_key_of_a_finished_execution_does_not_match,
            unique_request_id_cancels_a_pending_retry,
            other_unique_request_id_cancels_nothing,
            insert_claimed_starts_running,
            reclaim_requeues_only_expired_leases,
            release_requeues_the_workers_executions,
            renewed_lease_is_not_reclaimed,
            unlisted_lease_is_not_renewed,
            list_filters_by_status_and_flow,
            list_filters_by_parent,
            list_matches_every_filter_combination,
            cursor_pages_list_each_execution_once,
            cursor_keeps_the_listing_filter,
            cursor_at_oldest_execution_lists_nothing,
            unknown_cursor_fails_the_listing,
            nul_byte_values_match_no_execution,
            too_deeply_nested_payload_is_corrupt,
            state_writes_merge_by_key,
            sequential_queue_runs_one_at_a_time_in_order,
            sequential_retry_holds_back_later_executions,
            sequential_queues_of_two_instances_run_side_by_side,
            keyed_queue_waiting_longest_starts_first,
            throttled_queue_stops_at_its_limit,
            parallel_flows_fill_room_beside_a_blocked_queue,
            older_parallel_work_starts_first,
            keyed_flows_start_oldest_first,
            keyed_work_due_first_is_offered,
            claim_takes_only_served_work,
            keyed_claim_takes_only_served_instances,
            sequential_claim_takes_only_served_instances,
            schedule_cursor_keeps_its_first_start,
            tick_is_recorded_once,
            recorded_tick_moves_the_cursor,
            singleton_tick_is_skipped_beside_an_unfinished_execution,
            missed_ticks_are_listed_with_the_catch_up,
            summaries_count_ticks_by_outcome,
            deployment_is_replaced_by_the_latest,
            restarted_schedule_skips_earlier_instants,
            restart_never_moves_a_cursor_back,
            deployment_reads_one_instance,
            deployment_of_unknown_instance_is_none,
            held_lifecycle_lock_is_not_taken,
            owner_renews_its_lifecycle_lock,
            expired_lifecycle_lock_is_taken,
            released_lifecycle_lock_is_taken,
            only_owner_releases_lifecycle_lock,
            lifecycle_locks_are_per_instance,
        );
    };
    (@tests $runtime:tt $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test $runtime]
            async fn $name() {
                let Some((store, _guard)) = $make.await else {
                    return;
                };
                $crate::store::conformance::$name(store).await;
            }
        )*
    };
}
pub(super) use store_conformance_tests;
