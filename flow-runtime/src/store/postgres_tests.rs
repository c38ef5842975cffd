//! PostgreSQL test schemas, and tests of several nodes sharing one PostgreSQL store.
//!
//! Each test runs in its own schema of the database named by `FLOW_TEST_POSTGRES_URL`, created
//! for it and dropped at its end, so tests run in parallel. Without the variable, each test
//! prints that it is skipped and passes.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection};

use super::conformance::{at, new_execution};
use super::postgres::ADVISORY_QUEUE;
use super::{
    AttemptOutcome, AttemptRecord, ExecutionStatus, InsertOutcome, Lease, NewTick, PostgresStore, QueuePolicies,
    Store, StoreResult, TickOutcome, TickRecorded,
};

/// The environment variable with the URL of the test database.
pub(crate) const URL_VARIABLE: &str = "FLOW_TEST_POSTGRES_URL";

/// A schema created for one test and dropped when the value is dropped.
pub(crate) struct TestSchema {
    url: String,
    name: String,
}

impl TestSchema {
    /// Creates a fresh schema, or prints a notice and returns `None` when
    /// `FLOW_TEST_POSTGRES_URL` is unset.
    pub(crate) async fn create(test: &str) -> Option<Self> {
        let Ok(url) = std::env::var(URL_VARIABLE) else {
            eprintln!(
                "skipped {test}: {URL_VARIABLE} is unset; set it to a PostgreSQL URL such as \
                 postgres://postgres@127.0.0.1:5432/test to run it"
            );
            return None;
        };
        let name = format!("test_{}", uuid::Uuid::now_v7().simple());
        let mut connection = PgConnection::connect(&url)
            .await
            .unwrap_or_else(|error| panic!("cannot connect to {URL_VARIABLE}: {error}"));
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut connection)
            .await
            .expect("creates the test schema");
        Some(Self { url, name })
    }

    /// Returns the database URL with the schema as the connections' search path.
    pub(crate) fn store_url(&self) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{separator}options[search_path]={name}&application_name={name}", self.url, name = self.name)
    }

    pub(crate) async fn try_open_store(&self) -> StoreResult<PostgresStore> {
        PostgresStore::connect(&self.store_url()).await
    }

    pub(crate) async fn open_store(&self) -> PostgresStore {
        self.try_open_store().await.expect("opens the PostgreSQL store")
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot block on a future, so a thread
        // with its own runtime drops the schema. The test's stores may still hold pooled
        // connections, so they are ended first: they carry the schema's name as their
        // application name.
        let (url, name) = (self.url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut connection = PgConnection::connect(&url).await?;
                let statements = format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{name}'; \
                     SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {name} CASCADE"
                );
                sqlx::raw_sql(AssertSqlSafe(statements))
                    .execute(&mut connection)
                    .await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("could not drop test schema {}: {error}", self.name),
            Err(_) => eprintln!("could not drop test schema {}: the cleanup thread panicked", self.name),
        }
    }
}

/// Two stores on one schema, as two runtime processes would have.
async fn two_nodes(test: &str) -> Option<(Arc<PostgresStore>, Arc<PostgresStore>, TestSchema)> {
    let schema = TestSchema::create(test).await?;
    let first = Arc::new(schema.open_store().await);
    let second = Arc::new(schema.open_store().await);
    Some((first, second, schema))
}

fn succeeded(id: &str, attempt: u32, worker: &str) -> AttemptRecord {
    AttemptRecord {
        execution_id: id.to_owned(),
        attempt,
        worker: worker.to_owned(),
        started_at: at(1),
        finished_at: at(2),
        outcome: AttemptOutcome::Succeeded { result: json!(1) },
        logs: Vec::new(),
        state_writes: Vec::new(),
    }
}

fn sequential() -> Arc<QueuePolicies> {
    Arc::new(QueuePolicies {
        modes: [("orders".to_owned(), flow_core::QueueMode::Sequential)].into_iter().collect(),
        served: None,
    })
}

/// Claims until the queue is empty, from `tasks` concurrent claimers per store; returns every
/// claimed id in claim order per claimer.
async fn drain(stores: [Arc<PostgresStore>; 2], tasks: usize) -> Vec<String> {
    let mut handles = Vec::new();
    for (node, store) in stores.into_iter().enumerate() {
        for task in 0..tasks {
            let store = Arc::clone(&store);
            handles.push(tokio::spawn(async move {
                let worker = format!("node{node}-task{task}");
                let mut claimed = Vec::new();
                loop {
                    let batch = store.claim(&worker, 3, at(0), at(5), Arc::default()).await.expect("claims");
                    if batch.is_empty() {
                        return claimed;
                    }
                    claimed.extend(batch.into_iter().map(|execution| execution.id));
                }
            }));
        }
    }
    let mut all = Vec::new();
    for handle in handles {
        all.extend(handle.await.expect("claimer joins"));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_never_claim_one_execution_twice() {
    let Some((first, second, _schema)) = two_nodes("two_nodes_never_claim_one_execution_twice").await else {
        return;
    };
    for n in 0..120 {
        first.insert(new_execution(&format!("e{n:03}"))).await.expect("inserts");
    }

    let claimed = drain([first, second], 4).await;

    let distinct: HashSet<&String> = claimed.iter().collect();
    assert_eq!(distinct.len(), claimed.len(), "an execution was claimed twice");
    assert_eq!(claimed.len(), 120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_queue_never_runs_two_at_once_across_nodes() {
    let Some((first, second, _schema)) = two_nodes("sequential_queue_never_runs_two_at_once_across_nodes").await else {
        return;
    };
    let total = 24;
    for n in 0..total {
        first.insert(new_execution(&format!("e{n:03}"))).await.expect("inserts");
    }
    let running = Arc::new(AtomicUsize::new(0));
    let most_running = Arc::new(AtomicUsize::new(0));
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));

    let mut handles = Vec::new();
    for (node, store) in [first, second].into_iter().enumerate() {
        for task in 0..3 {
            let (store, running, most_running, order) =
                (Arc::clone(&store), Arc::clone(&running), Arc::clone(&most_running), Arc::clone(&order));
            handles.push(tokio::spawn(async move {
                let worker = format!("node{node}-task{task}");
                loop {
                    if order.lock().expect("order lock").len() == total {
                        return;
                    }
                    let claimed = store.claim(&worker, 10, at(0), at(5), sequential()).await.expect("claims");
                    let Some(execution) = claimed.first() else {
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                        continue;
                    };
                    assert_eq!(claimed.len(), 1, "a sequential queue handed out two executions at once");

                    let now_running = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most_running.fetch_max(now_running, Ordering::SeqCst);
                    order.lock().expect("order lock").push(execution.id.clone());
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    // Counted as finished before the store commits it, so an overlap seen here
                    // is a real one.
                    running.fetch_sub(1, Ordering::SeqCst);
                    let finished = store.finish_attempt(&succeeded(&execution.id, execution.attempt, &worker)).await.expect("finishes");
                    assert!(finished);
                }
            }));
        }
    }
    for handle in handles {
        handle.await.expect("claimer joins");
    }

    let expected: Vec<String> = (0..total).map(|n| format!("e{n:03}")).collect();
    assert_eq!(most_running.load(Ordering::SeqCst), 1);
    assert_eq!(*order.lock().expect("order lock"), expected);
}

#[tokio::test]
async fn tick_recorded_by_one_node_is_already_handled_for_another() {
    let Some((first, second, _schema)) = two_nodes("tick_recorded_by_one_node_is_already_handled_for_another").await
    else {
        return;
    };
    first.schedule_cursor("orders", "acme", at(0)).await.expect("starts");

    let recorded = first.record_tick(tick(5, "from-first")).await.expect("records");
    let again = second.record_tick(tick(5, "from-second")).await.expect("records");

    assert_eq!(recorded, TickRecorded::Recorded(TickOutcome::Started));
    assert_eq!(again, TickRecorded::AlreadyHandled);
    assert!(second.get("from-second").await.expect("reads").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ticks_of_two_nodes_fire_once() {
    let Some((first, second, _schema)) = two_nodes("concurrent_ticks_of_two_nodes_fire_once").await else {
        return;
    };
    first.schedule_cursor("orders", "acme", at(0)).await.expect("starts");

    let mut fired = 0;
    for minute in 1..=20 {
        let (a, b) = tokio::join!(
            first.record_tick(tick(minute, &format!("first-{minute}"))),
            second.record_tick(tick(minute, &format!("second-{minute}")))
        );
        let outcomes = [a.expect("records"), b.expect("records")];
        fired += outcomes.iter().filter(|outcome| **outcome != TickRecorded::AlreadyHandled).count();
        assert!(outcomes.contains(&TickRecorded::AlreadyHandled), "tick {minute} fired on both nodes");
    }
    assert_eq!(fired, 20);
}

fn tick(minute: i64, execution_id: &str) -> NewTick {
    NewTick {
        flow: "orders".to_owned(),
        instance: "acme".to_owned(),
        scheduled_at: at(minute),
        missed: Vec::new(),
        missed_total: 0,
        outcome: TickOutcome::Started,
        detail: None,
        execution: Some(new_execution(execution_id)),
        singleton: false,
        state: None,
        recorded_at: at(minute),
    }
}

#[tokio::test]
async fn recover_keeps_live_leases_of_other_nodes() {
    let Some((first, second, _schema)) = two_nodes("recover_keeps_live_leases_of_other_nodes").await else {
        return;
    };
    first.insert(new_execution("e1")).await.expect("inserts");
    first.claim("w1", 1, at(0), at(5), Arc::default()).await.expect("claims");

    let recovered = second.recover(at(1)).await.expect("recovers");

    assert_eq!(recovered, 0);
    let record = second.get("e1").await.expect("reads").expect("exists");
    assert_eq!(record.summary.status, ExecutionStatus::Running);
}

#[tokio::test]
async fn recover_requeues_leases_that_ended() {
    let Some((first, second, _schema)) = two_nodes("recover_requeues_leases_that_ended").await else {
        return;
    };
    first.insert(new_execution("e1")).await.expect("inserts");
    first.claim("w1", 1, at(0), at(5), Arc::default()).await.expect("claims");

    let recovered = second.recover(at(10)).await.expect("recovers");

    assert_eq!(recovered, 1);
    let record = second.get("e1").await.expect("reads").expect("exists");
    assert_eq!(record.summary.status, ExecutionStatus::Queued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inserts_with_one_dedupe_key_keep_one_execution() {
    let Some((first, second, _schema)) =
        two_nodes("concurrent_inserts_with_one_dedupe_key_keep_one_execution").await
    else {
        return;
    };

    let inserts = (0..16).map(|n| {
        let store = if n % 2 == 0 { Arc::clone(&first) } else { Arc::clone(&second) };
        tokio::spawn(async move {
            let mut execution = new_execution(&format!("e{n}"));
            execution.dedupe_key = Some("order-42".to_owned());
            store.insert(execution).await
        })
    });
    let outcomes: Vec<InsertOutcome> = futures::future::join_all(inserts)
        .await
        .into_iter()
        .map(|joined| joined.expect("joins").expect("inserts"))
        .collect();

    let inserted = outcomes.iter().filter(|outcome| **outcome == InsertOutcome::Inserted).count();
    assert_eq!(inserted, 1);
}

#[tokio::test]
async fn lease_taken_over_by_another_node_drops_the_late_outcome() {
    let Some((first, second, _schema)) = two_nodes("lease_taken_over_by_another_node_drops_the_late_outcome").await
    else {
        return;
    };
    let mut execution = new_execution("e1");
    execution.claimed_by = Some(Lease {
        worker: "w1".to_owned(),
        until: at(5),
    });
    first.insert(execution).await.expect("inserts");
    second.reclaim_expired(at(10)).await.expect("reclaims");
    second.claim("w2", 1, at(10), at(15), Arc::default()).await.expect("claims");

    let late = first.finish_attempt(&succeeded("e1", 1, "w1")).await.expect("finishes");

    assert!(!late);
    let record = first.get("e1").await.expect("reads").expect("exists");
    assert_eq!(record.summary.status, ExecutionStatus::Running);
}

#[tokio::test]
async fn unreachable_server_error_names_the_url_without_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("binds").local_addr().expect("address").port();
    let url = format!("postgres://flows:s3cret@127.0.0.1:{port}/flows");

    let error = PostgresStore::connect(&url).await.expect_err("nothing listens on the port");

    let message = error.to_string();
    assert!(message.contains(&format!("postgres://flows:***@127.0.0.1:{port}/flows")), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
    assert!(message.contains("check that the server runs"), "{message}");
}

#[tokio::test]
async fn invalid_url_error_names_the_expected_form() {
    let error = PostgresStore::connect("postgres://flows:s3cret@127.0.0.1:notaport/flows")
        .await
        .expect_err("invalid port");

    let message = error.to_string();
    assert!(message.contains("postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
}

#[tokio::test]
async fn insert_behind_table_lock_fails() {
    let Some(schema) = TestSchema::create("insert_behind_table_lock_fails").await else {
        return;
    };
    let store = schema.open_store().await;
    let mut locker = PgConnection::connect(&schema.store_url()).await.expect("connects");
    sqlx::raw_sql("BEGIN; LOCK TABLE executions IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .expect("locks the table");

    let inserted = tokio::time::timeout(std::time::Duration::from_secs(30), store.insert(new_execution("e1")))
        .await
        .expect("the insert ends within 30 s instead of waiting for the lock");
    sqlx::raw_sql("ROLLBACK").execute(&mut locker).await.expect("releases the lock");

    let error = inserted.expect_err("an insert behind the lock fails").to_string();
    assert!(error.contains("lock timeout"), "{error}");
    assert!(store.get("e1").await.expect("reads").is_none());
}

#[tokio::test]
async fn claim_skips_a_locked_queue() {
    let Some(schema) = TestSchema::create("claim_skips_a_locked_queue").await else {
        return;
    };
    let store = schema.open_store().await;
    store.insert(new_execution("sequential")).await.expect("inserts");
    let mut parallel = new_execution("parallel");
    parallel.flow = "other".to_owned();
    store.insert(parallel).await.expect("inserts");

    // Another node's claim holds the queue lock of ("orders", "acme") until the end of the test.
    let mut holder = PgConnection::connect(&schema.store_url()).await.expect("connects");
    sqlx::raw_sql("BEGIN").execute(&mut holder).await.expect("begins");
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(current_schema() || '/' || $2 || '/' || $3))")
        .bind(ADVISORY_QUEUE)
        .bind("orders")
        .bind("acme")
        .execute(&mut holder)
        .await
        .expect("holds the queue lock");
    let claimed = tokio::time::timeout(Duration::from_secs(30), store.claim("node2", 8, at(10), at(100), sequential()))
        .await
        .expect("the claim does not wait for the queue lock");

    let ids: Vec<String> = claimed.expect("claims").into_iter().map(|execution| execution.id).collect();
    assert_eq!(ids, ["parallel"]);
}

/// SQL that adds 30,000 queues of the flow `orders`, each with one execution running and one
/// waiting behind it.
const BUSY_QUEUES: &str = "INSERT INTO executions (id, flow, instance, status, attempt, created_at, updated_at, \
     due_at, lease_owner, lease_until, source, payload) SELECT 'running-' || n, 'orders', 'busy-' || n, 'running', \
     1, 0, 0, 0, 'node1', 9000000000000, 'webhook', '{}' FROM generate_series(1, 30000) AS n; \
     INSERT INTO executions (id, flow, instance, status, created_at, updated_at, due_at, source, payload) \
     SELECT 'waiting-' || n, 'orders', 'busy-' || n, 'queued', 0, 0, 0, 'webhook', '{}' \
     FROM generate_series(1, 30000) AS n";

/// SQL that adds one running execution and analyzes the table, so the planner's statistics
/// describe a small table when [`BUSY_QUEUES`] runs after it.
const SMALL_TABLE_STATISTICS: &str = "INSERT INTO executions (id, flow, instance, status, attempt, created_at, \
     updated_at, due_at, lease_owner, lease_until, source, payload) VALUES ('early', 'orders', 'early', 'running', \
     1, 0, 0, 0, 'node1', 9000000000000, 'webhook', '{}'); ANALYZE executions";

/// Runs `setup`, adds a free queue with one due execution, and claims with `queues`, failing
/// after 20 s. Returns the claimed ids.
async fn claim_beside_busy_queues(test: &str, setup: &[&'static str], queues: Arc<QueuePolicies>) -> Option<Vec<String>> {
    let schema = TestSchema::create(test).await?;
    let store = schema.open_store().await;
    for sql in setup {
        sqlx::raw_sql(*sql).execute(store.pool()).await.expect("sets up the queues");
    }
    let mut free = new_execution("free");
    free.instance = "free".to_owned();
    store.insert(free).await.expect("inserts");

    let claimed = tokio::time::timeout(Duration::from_secs(20), store.claim("node2", 8, at(10), at(100), queues))
        .await
        .expect("the claim returns within 20 s");
    Some(claimed.expect("claims").into_iter().map(|execution| execution.id).collect())
}

fn throttled_to_one() -> Arc<QueuePolicies> {
    Arc::new(QueuePolicies {
        modes: [("orders".to_owned(), flow_core::QueueMode::Throttled { concurrency_limit: 1 })].into_iter().collect(),
        served: None,
    })
}

#[tokio::test]
async fn claim_passes_thousands_of_busy_queues() {
    let Some(ids) = claim_beside_busy_queues("claim_passes_thousands_of_busy_queues", &[BUSY_QUEUES], sequential()).await
    else {
        return;
    };

    assert_eq!(ids, ["free"]);
}

#[tokio::test]
async fn claim_with_stale_statistics_stays_fast() {
    let setup = [SMALL_TABLE_STATISTICS, BUSY_QUEUES];
    let Some(ids) = claim_beside_busy_queues("claim_with_stale_statistics_stays_fast", &setup, sequential()).await else {
        return;
    };

    assert_eq!(ids, ["free"]);
}

#[tokio::test]
async fn throttled_claim_with_stale_statistics_stays_fast() {
    let setup = [SMALL_TABLE_STATISTICS, BUSY_QUEUES];
    let test = "throttled_claim_with_stale_statistics_stays_fast";
    let Some(ids) = claim_beside_busy_queues(test, &setup, throttled_to_one()).await else {
        return;
    };

    assert_eq!(ids, ["free"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_limit_holds_across_nodes() {
    let Some((first, second, _schema)) = two_nodes("throttled_limit_holds_across_nodes").await else {
        return;
    };
    let instances = ["acme", "globex", "initech"];
    let per_instance = 12;
    for n in 0..per_instance {
        for instance in instances {
            let mut execution = new_execution(&format!("{instance}-{n:03}"));
            execution.instance = instance.to_owned();
            first.insert(execution).await.expect("inserts");
        }
    }
    let throttled = Arc::new(QueuePolicies {
        modes: [("orders".to_owned(), flow_core::QueueMode::Throttled { concurrency_limit: 2 })].into_iter().collect(),
        served: None,
    });
    let running: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>> = Arc::default();
    let max_running = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let total = instances.len() * per_instance;

    let mut handles = Vec::new();
    for (node, store) in [first, second].into_iter().enumerate() {
        for task in 0..3 {
            let (store, running, max_running, done, throttled) = (
                Arc::clone(&store),
                Arc::clone(&running),
                Arc::clone(&max_running),
                Arc::clone(&done),
                Arc::clone(&throttled),
            );
            handles.push(tokio::spawn(async move {
                let worker = format!("node{node}-task{task}");
                while done.load(Ordering::SeqCst) < total {
                    let claimed = store.claim(&worker, 4, at(0), at(5), Arc::clone(&throttled)).await.expect("claims");
                    if claimed.is_empty() {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        continue;
                    }
                    for execution in &claimed {
                        let mut counts = running.lock().expect("running lock");
                        let count = counts.entry(execution.instance.clone()).or_default();
                        *count += 1;
                        max_running.fetch_max(*count, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    for execution in &claimed {
                        *running.lock().expect("running lock").get_mut(&execution.instance).expect("counted") -= 1;
                        let finished =
                            store.finish_attempt(&succeeded(&execution.id, execution.attempt, &worker)).await.expect("finishes");
                        assert!(finished);
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }));
        }
    }
    for handle in handles {
        tokio::time::timeout(Duration::from_secs(60), handle).await.expect("drains within 60 s").expect("claimer joins");
    }

    assert!(max_running.load(Ordering::SeqCst) <= 2, "a throttled queue ran more than its limit");
}
