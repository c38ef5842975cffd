//! The dispatcher beside the fast path: an execution submitted while a worker is free runs at
//! once, and the dispatcher claims only when queued work may be waiting.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{PgSchema, config, echo, flow};
use flow_runtime::clock::SystemClock;
use flow_runtime::config::{
    FileConfig, InstanceSettings, Overrides, RuntimeSettings, build_instances,
};
use flow_runtime::core::{QueueConfig, QueueMode, TriggerPayload};
use flow_runtime::engine::{Completion, EngineSettings, Runtime, Source};
use flow_runtime::store::{
    AttemptRecord, ClaimedExecution, DeploymentRecord, Durability, ExecutionFilter,
    ExecutionRecord, ExecutionSummary, InsertOutcome, NewExecution, NewTick, QueuePolicies,
    ScheduleSummary, SqliteStore, StateScope, StateWrite, StepRecord, Store, StoreError, StoreResult,
    TickFilter, TickRecord, TickRecorded,
};
use flow_runtime::{Integration, Registry};
use futures::future::BoxFuture;
use serde_json::{Value, json};

/// A SQLite store that counts its claims and the executions they return, and can
/// make every claim, the reply to every insert, or every attempt record take longer.
struct CountingStore {
    inner: Arc<dyn Store>,
    claim_delay: Duration,
    /// Delay between an insert's commit and its reply.
    insert_reply_delay: Duration,
    /// Whether every insert panics instead of writing.
    insert_panics: bool,
    /// Whether every insert fails after its commit, as when the reply is lost.
    insert_replies_fail: bool,
    claims: AtomicUsize,
    claimed: Arc<AtomicUsize>,
    /// How many of the next attempt records fail as a full disk would.
    failing_records: AtomicUsize,
    /// Delay before an attempt's record is sent to SQLite.
    record_delay: Duration,
}

impl CountingStore {
    fn open(folder: &tempfile::TempDir, claim_delay: Duration) -> Arc<Self> {
        let sqlite = SqliteStore::open(folder.path().join("flows.db"), Durability::Normal).expect("store");
        Self::around(Arc::new(sqlite), claim_delay)
    }

    fn around(inner: Arc<dyn Store>, claim_delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            inner,
            claim_delay,
            insert_reply_delay: Duration::ZERO,
            insert_panics: false,
            insert_replies_fail: false,
            claims: AtomicUsize::new(0),
            claimed: Arc::new(AtomicUsize::new(0)),
            failing_records: AtomicUsize::new(0),
            record_delay: Duration::ZERO,
        })
    }

    /// Opens a store whose inserts behave as `configure` sets them on the new store.
    fn with_inserts(folder: &tempfile::TempDir, configure: impl FnOnce(&mut Self)) -> Arc<Self> {
        let mut store = Self::open(folder, Duration::ZERO);
        configure(Arc::get_mut(&mut store).expect("only owner"));
        store
    }

    /// Opens a store whose every insert panics.
    fn with_panicking_inserts(folder: &tempfile::TempDir) -> Arc<Self> {
        Self::with_inserts(folder, |store| store.insert_panics = true)
    }

    /// Opens a store whose inserts reply `delay` after they are sent to SQLite.
    fn with_slow_insert_replies(folder: &tempfile::TempDir, delay: Duration) -> Arc<Self> {
        Self::with_inserts(folder, |store| store.insert_reply_delay = delay)
    }
}

impl Store for CountingStore {
    fn insert(&self, execution: NewExecution) -> BoxFuture<'_, StoreResult<InsertOutcome>> {
        assert!(!self.insert_panics, "insert of {} panics as the test asked", execution.id);
        // The SQLite store queues the insert now, so it commits however long the reply waits.
        let insert = self.inner.insert(execution);
        let (delay, reply_fails) = (self.insert_reply_delay, self.insert_replies_fail);
        Box::pin(async move {
            let outcome = insert.await;
            tokio::time::sleep(delay).await;
            if reply_fails && outcome.is_ok() {
                return Err(StoreError::Database("the connection closed before the reply".to_owned()));
            }
            outcome
        })
    }

    fn claim(
        &self,
        worker: &str,
        limit: usize,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        queues: Arc<QueuePolicies>,
    ) -> BoxFuture<'_, StoreResult<Vec<ClaimedExecution>>> {
        self.claims.fetch_add(1, Ordering::SeqCst);
        let claim = self.inner.claim(worker, limit, now, lease_until, queues);
        let (delay, claimed) = (self.claim_delay, Arc::clone(&self.claimed));
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            let executions = claim.await?;
            claimed.fetch_add(executions.len(), Ordering::SeqCst);
            Ok(executions)
        })
    }

    fn finish_attempt(&self, record: &AttemptRecord) -> BoxFuture<'_, StoreResult<bool>> {
        let fail = self
            .failing_records
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1))
            .is_ok();
        if fail {
            return Box::pin(async { Err(StoreError::Database("database or disk is full".to_owned())) });
        }
        if self.record_delay.is_zero() {
            return self.inner.finish_attempt(record);
        }
        let (delay, record) = (self.record_delay, record.clone());
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            self.inner.finish_attempt(&record).await
        })
    }

    fn recover(&self, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<usize>> {
        self.inner.recover(now)
    }

    fn reclaim_expired(&self, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<usize>> {
        self.inner.reclaim_expired(now)
    }

    fn renew_leases(
        &self,
        worker: &str,
        execution_ids: Vec<String>,
        until: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<usize>> {
        self.inner.renew_leases(worker, execution_ids, until)
    }

    fn release_worker(&self, worker: &str) -> BoxFuture<'_, StoreResult<usize>> {
        self.inner.release_worker(worker)
    }

    fn get(&self, id: &str) -> BoxFuture<'_, StoreResult<Option<ExecutionRecord>>> {
        self.inner.get(id)
    }

    fn summary(&self, id: &str) -> BoxFuture<'_, StoreResult<Option<ExecutionSummary>>> {
        self.inner.summary(id)
    }

    fn list(&self, filter: ExecutionFilter) -> BoxFuture<'_, StoreResult<Vec<ExecutionSummary>>> {
        self.inner.list(filter)
    }

    fn next_due(&self) -> BoxFuture<'_, StoreResult<Option<DateTime<Utc>>>> {
        self.inner.next_due()
    }

    fn load_state(&self, scope: StateScope) -> BoxFuture<'_, StoreResult<BTreeMap<String, Value>>> {
        self.inner.load_state(scope)
    }

    fn record_step(&self, execution_id: &str, step: StepRecord) -> BoxFuture<'_, StoreResult<()>> {
        self.inner.record_step(execution_id, step)
    }

    fn load_steps(
        &self,
        execution_id: &str,
    ) -> BoxFuture<'_, StoreResult<BTreeMap<String, Value>>> {
        self.inner.load_steps(execution_id)
    }

    fn save_state(&self, write: StateWrite, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<()>> {
        self.inner.save_state(write, now)
    }

    fn schedule_cursor(
        &self,
        flow: &str,
        instance: &str,
        start: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<DateTime<Utc>>> {
        self.inner.schedule_cursor(flow, instance, start)
    }

    fn restart_schedules(
        &self,
        instance: &str,
        at: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<usize>> {
        self.inner.restart_schedules(instance, at)
    }

    fn record_tick(&self, tick: NewTick) -> BoxFuture<'_, StoreResult<TickRecorded>> {
        self.inner.record_tick(tick)
    }

    fn unfinished_execution(
        &self,
        flow: &str,
        instance: &str,
    ) -> BoxFuture<'_, StoreResult<Option<String>>> {
        self.inner.unfinished_execution(flow, instance)
    }

    fn list_ticks(&self, filter: TickFilter) -> BoxFuture<'_, StoreResult<Vec<TickRecord>>> {
        self.inner.list_ticks(filter)
    }

    fn schedule_summaries(&self) -> BoxFuture<'_, StoreResult<Vec<ScheduleSummary>>> {
        self.inner.schedule_summaries()
    }

    fn save_deployment(&self, record: DeploymentRecord) -> BoxFuture<'_, StoreResult<()>> {
        self.inner.save_deployment(record)
    }

    fn deployments(&self) -> BoxFuture<'_, StoreResult<Vec<DeploymentRecord>>> {
        self.inner.deployments()
    }

    fn deployment(&self, instance: &str) -> BoxFuture<'_, StoreResult<Option<DeploymentRecord>>> {
        self.inner.deployment(instance)
    }

    fn lock_lifecycle(
        &self,
        instance: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<bool>> {
        self.inner.lock_lifecycle(instance, owner, now, until)
    }

    fn unlock_lifecycle(&self, instance: &str, owner: &str) -> BoxFuture<'_, StoreResult<()>> {
        self.inner.unlock_lifecycle(instance, owner)
    }

    fn is_shared(&self) -> bool {
        self.inner.is_shared()
    }
}

/// Starts an engine over `store` with one parallel flow, `orders`, in the instance `acme`.
async fn start_engine(store: Arc<CountingStore>) -> Runtime {
    start_engine_with(store, vec![flow(config("orders"), echo)]).await
}

/// Starts an engine over `store` with `flows` in the instance `acme`.
async fn start_engine_with(store: Arc<CountingStore>, flows: Vec<flow_runtime::Flow>) -> Runtime {
    start_engine_on(store, flows, EngineSettings::default()).await
}

/// Starts an engine over `store` with `flows` in the instance `acme` and `settings`.
async fn start_engine_on(store: Arc<CountingStore>, flows: Vec<flow_runtime::Flow>, settings: EngineSettings) -> Runtime {
    let runtime = new_engine(store, flows, settings);
    runtime.start().await.expect("starts");
    runtime
}

/// Builds an engine over `store` with `flows` in the instance `acme` and `settings`, without
/// starting it, so it runs no execution.
fn new_engine(store: Arc<dyn Store>, flows: Vec<flow_runtime::Flow>, settings: EngineSettings) -> Runtime {
    new_engine_of(store, flows, settings, &["acme"])
}

/// Builds an engine like [`new_engine`] whose config has the instances `ids`.
fn new_engine_of(store: Arc<dyn Store>, flows: Vec<flow_runtime::Flow>, settings: EngineSettings, ids: &[&str]) -> Runtime {
    let registry = Registry::new(Integration::new("test", "Test", "0"), flows).expect("valid flows");
    let file = FileConfig {
        instances: ids
            .iter()
            .map(|id| InstanceSettings {
                id: (*id).into(),
                ..InstanceSettings::default()
            })
            .collect(),
        ..FileConfig::default()
    };
    let resolved = RuntimeSettings::resolve(file, &Overrides::default(), |_| None).expect("settings");
    let instances = build_instances(&resolved, &registry, |_| None).expect("instances");
    Runtime::new(registry, instances, store, Arc::new(SystemClock), settings)
}

/// Submits an execution of `orders` and waits for its first attempt.
async fn run_order(runtime: &Runtime, n: usize) -> Completion {
    let submitted = runtime
        .submit("orders", "acme", TriggerPayload::from_json(json!({ "n": n })), Source::Cli, true)
        .await
        .expect("stored");
    submitted.completion.expect("waits").await.expect("finishes")
}

#[tokio::test]
async fn parallel_attempts_start_no_claims() {
    let folder = tempfile::tempdir().expect("temp dir");
    let store = CountingStore::open(&folder, Duration::ZERO);
    let runtime = start_engine(Arc::clone(&store)).await;
    // The dispatcher's first claim finds nothing queued; the next one is its periodic check,
    // a second later.
    while store.claims.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let claims_before = store.claims.load(Ordering::SeqCst);

    for n in 0..40 {
        let completion = run_order(&runtime, n).await;
        assert!(matches!(completion, Completion::Succeeded(_)), "execution {n} failed: {completion:?}");
    }

    let claims = store.claims.load(Ordering::SeqCst) - claims_before;
    assert!(claims <= 1, "40 executions run at once started {claims} claims");
}

#[tokio::test]
async fn submissions_during_claim_run_at_once() {
    let folder = tempfile::tempdir().expect("temp dir");
    let store = CountingStore::open(&folder, Duration::from_millis(300));
    let runtime = start_engine(Arc::clone(&store)).await;
    // The dispatcher's first claim is under way, and takes 300 ms.
    while store.claims.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }

    let runs = (0..10).map(|n| run_order(&runtime, n));
    let completions = futures::future::join_all(runs).await;

    assert!(completions.iter().all(|completion| matches!(completion, Completion::Succeeded(_))), "{completions:?}");
    assert_eq!(store.claimed.load(Ordering::SeqCst), 0, "executions waited for a claim instead of running at once");
}

/// Returns the configuration of a flow `key` with a sequential queue.
fn sequential_config(key: &str) -> flow_runtime::core::FlowConfig {
    let mut config = config(key);
    config.queue = Some(QueueConfig {
        mode: QueueMode::Sequential,
        ..QueueConfig::default()
    });
    config
}

/// Builds a sequential flow whose run lasts half a second.
fn slow_sequential(key: &str) -> flow_runtime::Flow {
    flow(sequential_config(key), |_, _| {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(Value::Null.into())
        })
    })
}

#[tokio::test]
async fn dispatcher_idles_behind_queue_head() {
    let folder = tempfile::tempdir().expect("temp dir");
    let store = CountingStore::open(&folder, Duration::ZERO);
    let runtime = start_engine_with(Arc::clone(&store), vec![slow_sequential("ledger")]).await;
    for n in 0..2 {
        runtime
            .submit("ledger", "acme", TriggerPayload::from_json(json!({ "n": n })), Source::Cli, false)
            .await
            .expect("stored");
    }

    // The first execution runs for half a second; the second is due and waits behind it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let claims_before = store.claims.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let claims = store.claims.load(Ordering::SeqCst) - claims_before;
    assert!(claims <= 1, "the dispatcher claimed {claims} times in 300 ms while the queue's head ran");
}

/// Builds a parallel flow whose run with `n` 0 lasts two seconds; other runs end at once.
fn first_run_slow(key: &str) -> flow_runtime::Flow {
    flow(config(key), |_, params| {
        Box::pin(async move {
            if params.trigger.body.to_value()["n"] == json!(0) {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Ok(Value::Null.into())
        })
    })
}

#[tokio::test]
async fn idle_process_takes_queued_overflow() {
    let Some(schema) = PgSchema::create("idle_process_takes_queued_overflow").await else {
        return;
    };
    let open = || async { CountingStore::around(schema.open().await, Duration::ZERO) };

    // `small` has one worker; `large` has the default number.
    let one_worker = EngineSettings {
        workers: 1,
        ..EngineSettings::default()
    };
    let small = start_engine_on(open().await, vec![first_run_slow("orders")], one_worker).await;
    let large_store = open().await;
    let large = start_engine_on(Arc::clone(&large_store), vec![first_run_slow("orders")], EngineSettings::default()).await;

    // Right after a periodic check of `large`, its dispatcher sleeps for a second.
    let claims = large_store.claims.load(Ordering::SeqCst);
    while large_store.claims.load(Ordering::SeqCst) == claims {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The first execution takes the only worker of `small`, so the second is queued.
    for n in 0..2 {
        small
            .submit("orders", "acme", TriggerPayload::from_json(json!({ "n": n })), Source::Cli, false)
            .await
            .expect("stored");
    }
    let queued = large
        .store()
        .list(ExecutionFilter::default())
        .await
        .expect("lists")
        .into_iter()
        .find(|summary| summary.status == flow_runtime::store::ExecutionStatus::Queued)
        .expect("one execution is queued")
        .id;
    // An execution of `large` finishes, with its workers free.
    let completion = run_order(&large, 2).await;
    assert!(matches!(completion, Completion::Succeeded(_)), "{completion:?}");

    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = large.store().get(&queued).await.expect("reads").expect("exists").summary.status;

    small.shutdown(Duration::from_secs(5)).await;
    large.shutdown(Duration::from_secs(5)).await;
    schema.drop().await;
    assert_eq!(status, flow_runtime::store::ExecutionStatus::Succeeded, "the queued execution waited for a periodic check");
}

/// Builds a sequential flow that returns `{"ran": true}` at once.
fn quick_sequential(key: &str) -> flow_runtime::Flow {
    flow(sequential_config(key), |_, _| Box::pin(async move { Ok(json!({ "ran": true }).into()) }))
}

#[tokio::test]
async fn waiter_gets_remote_run_result() {
    let Some(schema) = PgSchema::create("waiter_gets_remote_run_result").await else {
        return;
    };
    // `caller` is never started, so it runs nothing, and `runner` claims what it queues.
    let caller = new_engine(schema.open().await, vec![quick_sequential("ledger")], EngineSettings::default());
    let runner_store = CountingStore::around(schema.open().await, Duration::ZERO);
    let runner = start_engine_with(runner_store, vec![quick_sequential("ledger")]).await;

    let submitted = caller
        .submit("ledger", "acme", TriggerPayload::from_json(json!({ "n": 1 })), Source::Cli, true)
        .await
        .expect("stored");
    let completion = tokio::time::timeout(Duration::from_secs(10), submitted.completion.expect("waits")).await;

    runner.shutdown(Duration::from_secs(5)).await;
    schema.drop().await;
    let completion = completion.expect("the caller learned the outcome").expect("finishes");
    assert!(
        matches!(&completion, Completion::Succeeded(output) if output.data() == Some(&json!({ "ran": true }))),
        "{completion:?}"
    );
}

#[tokio::test]
async fn shared_store_leaves_unknown_instance_queued() {
    let Some(schema) = PgSchema::create("shared_store_leaves_unknown_instance_queued").await else {
        return;
    };
    // Only the config of `newer` has the instance `gamma`, and only `older` is started.
    let newer = new_engine_of(schema.open().await, vec![quick_sequential("ledger")], EngineSettings::default(), &["acme", "gamma"]);
    let older_store = CountingStore::around(schema.open().await, Duration::ZERO);
    let older = start_engine_with(Arc::clone(&older_store), vec![quick_sequential("ledger")]).await;

    let submitted = newer
        .submit("ledger", "gamma", TriggerPayload::from_json(json!({ "n": 1 })), Source::Cli, false)
        .await
        .expect("stored");
    // The claim started after the next one is sure to have begun after the insert and ended.
    let claims = older_store.claims.load(Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while older_store.claims.load(Ordering::SeqCst) < claims + 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let claimed_since = older_store.claims.load(Ordering::SeqCst) - claims;
    let status = older.store().get(&submitted.execution_id).await.expect("reads").expect("exists").summary.status;

    older.shutdown(Duration::from_secs(5)).await;
    schema.drop().await;
    assert!(claimed_since >= 2, "the older process claimed {claimed_since} times");
    assert_eq!(status, flow_runtime::store::ExecutionStatus::Queued);
}

#[tokio::test]
async fn sqlite_execution_of_removed_instance_fails() {
    let folder = tempfile::tempdir().expect("temp dir");
    let store = CountingStore::open(&folder, Duration::ZERO);
    store
        .insert(NewExecution {
            id: "e-gamma".to_owned(),
            flow: "orders".to_owned(),
            instance: "gamma".to_owned(),
            payload: json!({ "body": { "data": null } }).to_string(),
            created_at: Utc::now(),
            dedupe_key: None,
            unique_request_id: None,
            parent_id: None,
            source: "webhook".to_owned(),
            claimed_by: None,
        })
        .await
        .expect("stored");

    let runtime = start_engine(Arc::clone(&store)).await;
    let statuses = statuses_when_all(store.as_ref(), "failed", Duration::from_secs(5)).await;
    let error = runtime.store().get("e-gamma").await.expect("reads").expect("exists").error;

    assert_eq!(statuses, ["failed"]);
    assert!(error.as_deref().is_some_and(|error| error.contains("instance \"gamma\" is not configured any more")), "{error:?}");
}

#[tokio::test]
async fn shutdown_waits_for_attempt_records() {
    let folder = tempfile::tempdir().expect("temp dir");
    let store = CountingStore::with_inserts(&folder, |store| store.record_delay = Duration::from_millis(300));
    let runtime = start_engine(Arc::clone(&store)).await;
    let submitted = runtime
        .submit("orders", "acme", TriggerPayload::from_json(json!({ "n": 1 })), Source::Cli, false)
        .await
        .expect("stored");
    // The flow has returned and given its worker back, and its record is not yet sent.
    tokio::time::sleep(Duration::from_millis(50)).await;

    runtime.shutdown(Duration::from_secs(5)).await;

    let status = store.get(&submitted.execution_id).await.expect("reads").expect("exists").summary.status;
    assert_eq!(status, flow_runtime::store::ExecutionStatus::Succeeded);
}

#[tokio::test]
async fn queue_resumes_after_failed_record() {
    let folder = tempfile::tempdir().expect("temp dir");
    let store = CountingStore::open(&folder, Duration::ZERO);
    store.failing_records.store(1, Ordering::SeqCst);
    let runtime = start_engine_with(Arc::clone(&store), vec![slow_sequential("ledger")]).await;
    let mut ids = Vec::new();
    for n in 0..2 {
        let submitted = runtime
            .submit("ledger", "acme", TriggerPayload::from_json(json!({ "n": n })), Source::Cli, false)
            .await
            .expect("stored");
        ids.push(submitted.execution_id);
    }

    // Each run lasts half a second, and the first record is written again 100 ms after it failed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut succeeded = 0;
    while succeeded < ids.len() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        succeeded = 0;
        for id in &ids {
            let record = runtime.store().get(id).await.expect("reads").expect("exists");
            if record.summary.status == flow_runtime::store::ExecutionStatus::Succeeded {
                succeeded += 1;
            }
        }
    }

    assert_eq!(succeeded, 2, "executions that succeeded within 5 s of a failed attempt record");
}

#[tokio::test]
async fn execution_runs_after_its_caller_stops_waiting() {
    let folder = tempfile::tempdir().expect("temp dir");
    let store = CountingStore::with_slow_insert_replies(&folder, Duration::from_millis(300));
    let runtime = start_engine(Arc::clone(&store)).await;

    // The caller gives up while the insert's reply is on its way, as a client that hangs up.
    let submission = runtime.submit("orders", "acme", TriggerPayload::from_json(json!({ "n": 1 })), Source::Cli, false);
    let waited = tokio::time::timeout(Duration::from_millis(50), submission).await;
    assert!(waited.is_err(), "the submission finished before its caller stopped waiting");

    let statuses = statuses_when_all(&*store, "succeeded", Duration::from_secs(5)).await;
    assert_eq!(statuses, ["succeeded"], "the stored execution did not run");
}

#[tokio::test]
async fn panicking_insert_returns_store_error() {
    let folder = tempfile::tempdir().expect("temp dir");
    let store = CountingStore::with_panicking_inserts(&folder);
    let runtime = start_engine(Arc::clone(&store)).await;

    let submitted = runtime
        .submit("orders", "acme", TriggerPayload::from_json(json!({ "n": 1 })), Source::Cli, false)
        .await;

    let error = submitted.expect_err("the insert panicked");
    assert!(error.to_string().contains("the submission panicked: insert of"), "{error}");
}

/// Returns the status of every stored execution once all of them are `want`, or after `limit`.
async fn statuses_when_all(store: &dyn Store, want: &str, limit: Duration) -> Vec<String> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let filter = ExecutionFilter { limit: 10, ..ExecutionFilter::default() };
        let executions = store.list(filter).await.expect("lists");
        let statuses: Vec<String> = executions.iter().map(|execution| execution.status.as_str().to_owned()).collect();
        if (!statuses.is_empty() && statuses.iter().all(|status| status == want)) || std::time::Instant::now() > deadline {
            return statuses;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Submits one execution to an engine on `store`, whose insert replies are lost after the
/// commit, with a 600 ms lease. Returns the submission's outcome and the statuses once every
/// execution succeeded or `limit` passed.
async fn submit_with_lost_insert_reply(mut store: Arc<CountingStore>, limit: Duration) -> (Result<String, String>, Vec<String>) {
    Arc::get_mut(&mut store).expect("only owner").insert_replies_fail = true;
    let settings = EngineSettings {
        lease: Duration::from_millis(600),
        ..EngineSettings::default()
    };
    let runtime = start_engine_on(Arc::clone(&store), vec![flow(config("orders"), echo)], settings).await;

    let submitted = runtime
        .submit("orders", "acme", TriggerPayload::from_json(json!({ "n": 1 })), Source::Cli, false)
        .await
        .map(|submitted| submitted.execution_id)
        .map_err(|error| error.to_string());
    // The execution is stored claimed by this worker, which never ran it.
    let statuses = statuses_when_all(&*store, "succeeded", limit).await;

    runtime.shutdown(Duration::from_secs(5)).await;
    (submitted, statuses)
}

#[tokio::test]
async fn lost_insert_reply_runs_after_lease() {
    let folder = tempfile::tempdir().expect("temp dir");
    let store = CountingStore::open(&folder, Duration::ZERO);

    let (submitted, statuses) = submit_with_lost_insert_reply(store, Duration::from_secs(5)).await;

    assert!(submitted.is_err(), "the insert's reply was lost, yet the submission returned {submitted:?}");
    assert_eq!(statuses, ["succeeded"], "the stored execution did not run");
}

#[tokio::test]
async fn lost_insert_reply_runs_after_lease_on_postgres() {
    let Some(schema) = PgSchema::create("lost_insert_reply_runs_after_lease_on_postgres").await else {
        return;
    };
    let store = CountingStore::around(schema.open().await, Duration::ZERO);

    let (submitted, statuses) = submit_with_lost_insert_reply(store, Duration::from_secs(10)).await;

    schema.drop().await;
    assert!(submitted.is_err(), "the insert's reply was lost, yet the submission returned {submitted:?}");
    assert_eq!(statuses, ["succeeded"], "the stored execution did not run");
}

#[tokio::test]
async fn submission_outside_a_runtime_is_rejected() {
    let folder = tempfile::tempdir().expect("temp dir");
    let store = CountingStore::open(&folder, Duration::ZERO);
    let runtime = start_engine(Arc::clone(&store)).await;

    let caller = runtime.clone();
    let outcome = std::thread::spawn(move || {
        let submission = caller.submit("orders", "acme", TriggerPayload::from_json(json!({ "n": 1 })), Source::Cli, false);
        futures::executor::block_on(submission).map(|submitted| submitted.execution_id)
    })
    .join()
    .expect("the caller's thread does not panic");

    let error = outcome.expect_err("no runtime runs the submission");
    assert!(error.to_string().contains("outside a tokio runtime"), "{error}");
    let filter = ExecutionFilter { limit: 10, ..ExecutionFilter::default() };
    assert!(store.list(filter).await.expect("lists").is_empty(), "the rejected submission was stored");
}

/// Serves `runtime` over HTTP on a free 127.0.0.1 port and returns its address.
async fn serve_http(runtime: &Runtime) -> std::net::SocketAddr {
    let settings = flow_runtime::http::HttpSettings {
        body_limit: 1 << 20,
        sync_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(120),
        admin_token: None,
    };
    let app = flow_runtime::http::router(runtime.clone(), settings, std::collections::HashMap::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("address");
    let limits = flow_runtime::http::ServerLimits::default();
    tokio::spawn(flow_runtime::http::serve(listener, app, limits, std::future::pending()));
    addr
}

/// Sends a JSON webhook request over a raw connection and closes the connection after
/// `hang_up`, before the response.
async fn post_and_hang_up(addr: std::net::SocketAddr, path: &str, extra_headers: &str, hang_up: Duration) {
    use tokio::io::AsyncWriteExt as _;

    let body = r#"{"n":1}"#;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{extra_headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connects");
    stream.write_all(request.as_bytes()).await.expect("writes");
    tokio::time::sleep(hang_up).await;
    drop(stream);
}

#[tokio::test]
async fn webhook_execution_runs_after_client_hangs_up() {
    let folder = tempfile::tempdir().expect("temp dir");
    let store = CountingStore::with_slow_insert_replies(&folder, Duration::from_millis(400));
    let runtime = start_engine(Arc::clone(&store)).await;
    let addr = serve_http(&runtime).await;

    // Both clients hang up while their insert's reply is on its way: an asynchronous request
    // and one that requests the flow's result.
    post_and_hang_up(addr, "/webhooks/acme/orders", "", Duration::from_millis(100)).await;
    post_and_hang_up(addr, "/webhooks/acme/orders", "Flow-Synchronous: true\r\n", Duration::from_millis(100)).await;

    let statuses = statuses_when_all(&*store, "succeeded", Duration::from_secs(5)).await;
    assert_eq!(statuses, ["succeeded", "succeeded"], "an accepted execution did not run");
}

#[tokio::test]
async fn invoked_flow_runs_after_its_parent_stops_waiting() {
    // The parent gives up on its child's submission while the insert's reply is delayed.
    let parent = flow(config("parent"), |context, _| {
        Box::pin(async move {
            let waited = tokio::time::timeout(Duration::from_millis(50), context.invoke_flow("child", json!({}))).await;
            Ok(json!({ "timedOut": waited.is_err() }).into())
        })
    });
    let folder = tempfile::tempdir().expect("temp dir");
    let store = CountingStore::with_slow_insert_replies(&folder, Duration::from_millis(300));
    let runtime = start_engine_with(Arc::clone(&store), vec![parent, flow(config("child"), echo)]).await;

    let parent_id = runtime
        .submit("parent", "acme", TriggerPayload::from_json(json!({})), Source::Cli, false)
        .await
        .expect("stored")
        .execution_id;

    let statuses = statuses_when_all(&*store, "succeeded", Duration::from_secs(5)).await;
    assert_eq!(statuses, ["succeeded", "succeeded"], "the parent or its child did not run");
    let parent = store.get(&parent_id).await.expect("reads").expect("stored");
    assert_eq!(parent.result, Some(json!({ "data": { "timedOut": true } })), "the parent waited for its child");
}
