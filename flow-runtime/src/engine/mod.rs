//! The execution engine: accepts executions durably, runs them on workers, records outcomes
//! and schedules retries.
//!
//! A submitted execution is inserted into the store before its id is returned. When its flow
//! runs in parallel and a worker is free, it is inserted already claimed by this process and
//! runs at once; otherwise it is inserted `queued` and the dispatcher claims it when a worker
//! frees up or its retry is due.

mod detach;
mod dispatch;
mod lifecycle;
mod lifecycle_lock;
mod route;
mod run;
mod scheduler;
mod waiters;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use std::panic::AssertUnwindSafe;

use flow_core::{FlowRef, IntegrationRef, QueueMode, TriggerError, TriggerPayload, TriggerResult};
use futures::FutureExt as _;
use serde_json::Value;
use tokio::sync::{Notify, Semaphore, oneshot};

pub use lifecycle::{Hook, HookRun, LifecycleError};
pub use route::{Route, RouteError};
pub use scheduler::ScheduledTick;
pub use waiters::Completion;

use crate::clock::Clock;
use crate::context::{Context, RunInfo, StateStore, States};
use crate::logger::Logger;
use crate::definition::Flow;
use crate::instance::Instance;
use crate::registry::Registry;
use crate::polling::PollingState;
use crate::store::{DeploymentRecord, InsertOutcome, Lease, NewExecution, QueuePolicies, Served, StateScope, Store, StoreError};
use waiters::Waiters;

/// How long a claimed execution stays with its worker without a renewal. Workers renew every
/// third of it, so another worker takes over an execution at most this long after its worker
/// died.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Executions running at once in this process.
    pub workers: usize,
    /// Lease length of a claimed execution.
    pub lease: Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            workers: crate::config::DEFAULT_WORKERS,
            lease: DEFAULT_LEASE,
        }
    }
}

/// What started an execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A webhook request.
    Webhook,
    /// The `invoke` command.
    Cli,
    /// `invoke_flow` from another execution, whose id is given.
    Invoke(String),
    /// A request routed by the preprocess flow's execution, whose id is given.
    Preprocess(String),
    /// A `tools/call` request on the instance's MCP server.
    Mcp,
    /// A schedule tick.
    Schedule,
}

impl Source {
    fn name(&self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Cli => "cli",
            Self::Invoke(_) => "invoke",
            Self::Preprocess(_) => "preprocess",
            Self::Mcp => "mcp",
            Self::Schedule => "schedule",
        }
    }

    fn parent_id(&self) -> Option<String> {
        match self {
            Self::Invoke(parent) | Self::Preprocess(parent) => Some(parent.clone()),
            Self::Webhook | Self::Cli | Self::Mcp | Self::Schedule => None,
        }
    }
}

/// The result of [`Runtime::submit`].
#[derive(Debug)]
pub struct Submitted {
    /// The stored execution's id, or the id of the execution a duplicate matched.
    pub execution_id: String,
    /// Whether the request matched a queued or running execution and will not run.
    pub deduplicated: bool,
    /// Resolves with the first attempt's outcome, when the caller asked to wait.
    pub completion: Option<oneshot::Receiver<Completion>>,
}

/// Options of a submission: whether the caller waits, and how the engine runs and stores it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SubmitMode {
    /// Whether [`Submitted::completion`] resolves with the first attempt's outcome.
    pub(crate) wait: bool,
    /// Whether the execution waits for a free worker and runs at once, outside the flow's queue.
    pub(crate) run_now: bool,
    /// Whether the payload is the webhook request exactly as the handler parsed and described it
    /// for this flow and instance, unchanged by a trigger. Such a payload is not described again,
    /// and the store may keep its body text once; see [`crate::store::payload::encode`].
    pub(crate) unchanged_request: bool,
}

/// Why an execution could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// No instance has this id.
    #[error("instance \"{0}\" not found")]
    UnknownInstance(String),
    /// No flow has this stable key or name.
    #[error("flow \"{0}\" not found")]
    UnknownFlow(String),
    /// The request matched a queued or running execution, whose id is given.
    #[error("deduplicated into execution {0}")]
    Deduplicated(String),
    /// The store failed before it confirmed the insert, so no execution id was returned. When
    /// the store committed the insert before failing, the execution still runs: its lease is
    /// not renewed, so it returns to the queue when the lease expires.
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) struct Inner {
    pub(crate) registry: Registry,
    pub(crate) instances: BTreeMap<String, Arc<Instance>>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: EngineSettings,
    pub(crate) worker_id: String,
    pub(crate) permits: Arc<Semaphore>,
    /// Attempts that gave their worker back and wait for their record's commit.
    pub(crate) recording: AtomicUsize,
    /// Ids of the executions whose attempt runs in this process, from its start until its
    /// record is committed, with the number of such attempts (two when a lease was lost and
    /// the execution claimed again). Only their leases are renewed.
    pub(crate) running: Mutex<HashMap<String, usize>>,
    pub(crate) queues: Arc<QueuePolicies>,
    /// Wakes the dispatcher; see [`Inner::queue_changed`].
    pub(crate) wake: Notify,
    pub(crate) waiters: Waiters,
    pub(crate) state_cache: Mutex<HashMap<StateScope, Arc<BTreeMap<String, Value>>>>,
    pub(crate) stopping: tokio::sync::watch::Sender<bool>,
    /// Every flow schedule of every instance.
    pub(crate) schedules: Vec<scheduler::ScheduledFlow>,
    /// Deployment by instance, as last read from or written to the store.
    pub(crate) deployments: RwLock<HashMap<String, DeploymentRecord>>,
    /// Read by each running deploy or delete, so that shutdown can wait for them.
    pub(crate) lifecycle_running: Arc<tokio::sync::RwLock<()>>,
    /// The lifecycle locks this process holds.
    pub(crate) held_locks: Arc<lifecycle_lock::HeldLocks>,
    self_ref: std::sync::Weak<Inner>,
}

/// The engine; cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("worker_id", &self.inner.worker_id).finish_non_exhaustive()
    }
}

impl Runtime {
    /// Creates an engine over a registry, its instances and a store. Call [`Runtime::start`]
    /// to recover stored work and run the dispatcher.
    pub fn new(
        registry: Registry,
        instances: Vec<Instance>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: EngineSettings,
    ) -> Self {
        let instances = instances
            .into_iter()
            .map(|instance| (instance.id.clone(), Arc::new(instance)))
            .collect();
        let schedules = scheduler::resolve_schedules(&registry, &instances);
        let (stopping, _) = tokio::sync::watch::channel(false);
        // On a store that one process owns, an execution of a flow or instance that is gone
        // is claimed and fails with a message naming it. On a shared store another process
        // may know it, during a rolling change of the binary or the config.
        let served = store.is_shared().then(|| Served {
            flows: registry.flows().iter().map(|flow| flow.stable_key().to_owned()).collect(),
            instances: instances.keys().cloned().collect(),
        });
        let queues = Arc::new(QueuePolicies {
            modes: registry
                .flows()
                .iter()
                .filter(|flow| flow.config.queue_mode() != QueueMode::Parallel)
                .map(|flow| (flow.stable_key().to_owned(), flow.config.queue_mode()))
                .collect(),
            served,
        });
        Self {
            inner: Arc::new_cyclic(|self_ref| Inner {
                self_ref: self_ref.clone(),
                registry,
                instances,
                store,
                clock,
                permits: Arc::new(Semaphore::new(settings.workers)),
                recording: AtomicUsize::new(0),
                running: Mutex::default(),
                queues,
                settings,
                worker_id: format!("worker-{}", uuid::Uuid::now_v7()),
                wake: Notify::new(),
                waiters: Waiters::default(),
                state_cache: Mutex::default(),
                stopping,
                schedules,
                deployments: RwLock::default(),
                lifecycle_running: Arc::default(),
                held_locks: Arc::default(),
            }),
        }
    }

    /// Requeues work left running by a previous process and starts the dispatcher.
    ///
    /// # Errors
    ///
    /// Returns the store's error when recovery fails.
    pub async fn start(&self) -> Result<(), StoreError> {
        self.recover().await?;
        self.inner.refresh_deployments().await?;
        tokio::spawn(dispatch::run_dispatcher(Arc::clone(&self.inner)));
        tokio::spawn(dispatch::run_lease_keeper(Arc::clone(&self.inner)));
        Ok(())
    }

    /// Starts the scheduler, which fires scheduled and polling flows at their cron instants
    /// until the engine stops. `serve` starts it, and commands that run one flow do not.
    pub fn start_scheduler(&self) {
        tokio::spawn(scheduler::run_scheduler(Arc::clone(&self.inner)));
    }

    /// Handles every schedule tick due by the clock's current time, once, and returns the
    /// recorded ticks. The testing harness drives schedules with it instead of the scheduler.
    ///
    /// # Errors
    ///
    /// Returns the store's error.
    pub async fn run_schedules(&self) -> Result<Vec<crate::store::TickRecord>, StoreError> {
        self.inner.run_schedules().await
    }

    /// Returns the resolved schedule of a flow in an instance, when it has one.
    pub fn schedule_of(&self, flow: &str, instance: &str) -> Option<&flow_core::CronSchedule> {
        self.inner
            .schedules
            .iter()
            .find(|schedule| schedule.flow == flow && schedule.instance == instance)
            .map(|schedule| &schedule.cron)
    }

    /// Returns the first fire instant after `after` of any schedule of a serving instance.
    pub fn next_fire(&self, after: chrono::DateTime<chrono::Utc>) -> Option<chrono::DateTime<chrono::Utc>> {
        self.inner.next_fire(after)
    }

    /// Requeues work left running by a previous process, without starting the dispatcher;
    /// [`Runtime::run_due`] then runs queued work on demand.
    ///
    /// # Errors
    ///
    /// Returns the store's error.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        let recovered = self.inner.store.recover(self.inner.clock.now()).await?;
        if recovered > 0 {
            tracing::info!(count = recovered, "requeued executions left running by a previous process");
        }
        Ok(recovered)
    }

    /// Claims every execution due by the clock's current time, runs each attempt to its end,
    /// and repeats until nothing is due; returns how many attempts ran. The testing harness
    /// drives the engine with it instead of the background dispatcher.
    ///
    /// # Errors
    ///
    /// Returns the store's error.
    pub async fn run_due(&self) -> Result<usize, StoreError> {
        let mut attempts = 0;
        loop {
            let now = self.inner.clock.now();
            let claimed = self
                .inner
                .store
                .claim(
                    &self.inner.worker_id,
                    self.inner.settings.workers,
                    now,
                    now + self.inner.settings.lease,
                    Arc::clone(&self.inner.queues),
                )
                .await?;
            if claimed.is_empty() {
                return Ok(attempts);
            }
            attempts += claimed.len();
            let runs = claimed.into_iter().map(|execution| run::run_attempt(Arc::clone(&self.inner), execution, None, None));
            futures::future::join_all(runs).await;
        }
    }

    /// Returns how many attempts this engine is running now, counting attempts whose flow has
    /// returned until their record is committed.
    pub fn running_count(&self) -> usize {
        let holding_workers = self.inner.settings.workers - self.inner.permits.available_permits();
        holding_workers + self.inner.recording.load(Ordering::SeqCst)
    }

    /// Returns the registry.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Returns the store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Returns the clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Returns the instance with this id.
    pub fn instance(&self, id: &str) -> Option<&Arc<Instance>> {
        self.inner.instances.get(id)
    }

    /// Returns every instance, ordered by id.
    pub fn instances(&self) -> impl Iterator<Item = &Arc<Instance>> {
        self.inner.instances.values()
    }

    /// Returns the integration's id, name and version as payloads show them.
    pub fn integration_ref(&self) -> IntegrationRef {
        self.inner.integration_ref()
    }

    /// Fills the payload fields that describe where it runs: customer, instance, flow,
    /// integration, webhook URLs and keys, invoke URL, execution id and start time.
    pub fn describe_payload(&self, payload: &mut TriggerPayload, flow: &Flow, instance: &Instance, execution_id: &str) {
        self.inner.describe_payload(payload, flow, instance, execution_id);
    }

    /// Runs the flow's custom trigger on `payload`, or passes the payload on when the flow has
    /// none. A panicking trigger gives a 500 rejection.
    ///
    /// # Errors
    ///
    /// Returns the trigger's [`TriggerError`]: the status and message for the caller.
    pub async fn run_trigger(
        &self,
        flow: &Flow,
        instance: &Arc<Instance>,
        payload: TriggerPayload,
    ) -> Result<TriggerResult, TriggerError> {
        self.inner.run_trigger_with(flow, instance, payload, None).await
    }

    /// Runs a polling flow's trigger with its saved polling state, as a tick does, but saves
    /// nothing: the `invoke` command uses it to try a poll without moving the cursor.
    ///
    /// # Errors
    ///
    /// Returns the trigger's [`TriggerError`], or a 500 one when the state cannot be read.
    pub async fn run_poll(
        &self,
        flow: &Flow,
        instance: &Arc<Instance>,
        payload: TriggerPayload,
    ) -> Result<TriggerResult, TriggerError> {
        let scope = StateScope::Polling {
            instance: instance.id.clone(),
            flow: flow.stable_key().to_owned(),
        };
        let saved = self
            .inner
            .store
            .load_state(scope)
            .await
            .map_err(|error| TriggerError::internal(format!("could not load the polling state: {error}")))?;
        let polling = Arc::new(PollingState::new(saved.get(crate::polling::POLLING_STATE_KEY).cloned()));
        self.inner.run_trigger_with(flow, instance, payload, Some(polling)).await
    }

    /// Stores a new execution and returns its id once the insert is committed.
    ///
    /// When `wait` is set, [`Submitted::completion`] resolves with the first attempt's outcome.
    ///
    /// # Errors
    ///
    /// Returns [`SubmitError`] for an unknown flow or instance, or when the store fails.
    pub async fn submit(
        &self,
        flow_key: &str,
        instance_id: &str,
        payload: TriggerPayload,
        source: Source,
        wait: bool,
    ) -> Result<Submitted, SubmitError> {
        let mode = SubmitMode {
            wait,
            ..SubmitMode::default()
        };
        self.inner.submit(flow_key, instance_id, Box::new(payload), source, mode).await
    }

    /// Stores a new execution as [`Runtime::submit`] does, with the options in `mode`.
    pub(crate) async fn submit_with(
        &self,
        flow_key: &str,
        instance_id: &str,
        payload: Box<TriggerPayload>,
        source: Source,
        mode: SubmitMode,
    ) -> Result<Submitted, SubmitError> {
        self.inner.submit(flow_key, instance_id, payload, source, mode).await
    }

    /// Stores a new execution claimed by this process and runs it at once, outside the flow's
    /// queue, waiting for a free worker; returns its id and first outcome. The `invoke`
    /// command uses it, so it works beside a server that shares the store.
    ///
    /// # Errors
    ///
    /// Returns [`SubmitError`] for an unknown flow or instance, when the store fails, or when
    /// the request was deduplicated into another execution (as `Deduplicated`).
    pub async fn run_now(
        &self,
        flow_key: &str,
        instance_id: &str,
        payload: TriggerPayload,
        source: Source,
    ) -> Result<(String, Completion), SubmitError> {
        let mode = SubmitMode {
            wait: true,
            run_now: true,
            unchanged_request: false,
        };
        let submitted = self.inner.submit(flow_key, instance_id, Box::new(payload), source, mode).await?;
        let Some(completion) = submitted.completion else {
            return Err(SubmitError::Deduplicated(submitted.execution_id));
        };
        let completion = completion
            .await
            .map_err(|_| SubmitError::Store(StoreError::Closed("the engine stopped before the execution finished".to_owned())))?;
        Ok((submitted.execution_id, completion))
    }

    /// Stops claiming work, waits up to `grace` for running executions and the commits of
    /// their records, and for running deploys and deletes. Returns the executions still
    /// running to the queue for the next start.
    pub async fn shutdown(&self, grace: Duration) {
        let _ = self.inner.stopping.send(true);
        self.inner.wake.notify_waiters();

        let all = u32::try_from(self.inner.settings.workers).unwrap_or(u32::MAX);
        let executions = tokio::time::timeout(grace, async {
            let workers = self.inner.permits.acquire_many(all).await;
            // An attempt gives its worker back before its record commits. Requeued before that,
            // a finished execution would lose its outcome and run again after the restart.
            while self.inner.recording.load(Ordering::SeqCst) > 0 {
                tokio::time::sleep(RECORD_POLL).await;
            }
            workers
        });
        // A deploy or delete that goes on after its client hung up would otherwise stop halfway,
        // with a webhook registered at another system and not recorded.
        let lifecycle = tokio::time::timeout(grace, self.inner.lifecycle_running.write());
        let (drained, lifecycle) = tokio::join!(executions, lifecycle);
        match drained {
            Ok(_) => tracing::info!("every running execution finished before shutdown"),
            Err(_) => {
                let running = self.inner.settings.workers - self.inner.permits.available_permits();
                tracing::warn!(running, grace_seconds = grace.as_secs(), "grace period over; executions still running are left queued");
            }
        }
        if lifecycle.is_err() {
            tracing::warn!(
                grace_seconds = grace.as_secs(),
                "grace period over with a deploy or delete still running; its hooks stop where they are"
            );
            self.inner.release_held_locks().await;
        }
        match self.inner.store.release_worker(&self.inner.worker_id).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "requeued unfinished executions for the next start"),
            Err(error) => tracing::error!(%error, "could not requeue unfinished executions; they are recovered at the next start"),
        }
    }
}

/// Passes a custom trigger's result on, unless the JSON body it made is nested deeper than the
/// store keeps. Such a body would not read back for a retry or a queued run. Serializing or
/// dropping it could overflow the stack, so it is dropped without recursion, and the request
/// is rejected with a 500.
fn kept_trigger_body(mut result: TriggerResult) -> Result<TriggerResult, TriggerError> {
    let data = match std::mem::take(&mut result.payload.body.data) {
        // A body that still has the text it was sent as was checked when it arrived.
        flow_core::BodyData::Json(json) if json.text().is_none() => json.into_value(),
        other => {
            result.payload.body.data = other;
            return Ok(result);
        }
    };
    match crate::store::json::within_depth(data) {
        Ok(data) => {
            result.payload.body.data = flow_core::BodyData::Json(data.into());
            Ok(result)
        }
        Err(depth) => Err(TriggerError::internal(crate::store::json::too_deep("the trigger's payload body", depth))),
    }
}

/// Returns the persisted state scopes a run of `flow` in `instance` reads: the flow's own, the
/// instance's and the integration's.
pub(crate) fn state_scopes(flow: &Flow, instance: &Instance) -> [StateScope; 3] {
    [
        StateScope::Flow {
            instance: instance.id.clone(),
            flow: flow.stable_key().to_owned(),
        },
        StateScope::CrossFlow {
            instance: instance.id.clone(),
        },
        StateScope::Integration,
    ]
}

impl Inner {
    /// Tells the dispatcher that queued work may be waiting or that a queue's head may have
    /// moved: an execution was queued, a retry scheduled, a queued flow's attempt finished or
    /// a lease expired.
    ///
    /// An idle dispatcher claims only after such a signal, when a retry is due, or at its
    /// periodic check. A finished attempt of a parallel flow sends no signal on a store of one
    /// process, because the submissions it could serve ran at once or woke the dispatcher.
    pub(crate) fn queue_changed(&self) {
        self.wake.notify_one();
    }

    /// Returns the ids of the executions whose attempt runs in this process.
    pub(crate) fn running_attempts(&self) -> Vec<String> {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        running.keys().cloned().collect()
    }

    /// Returns an owning handle to this engine, which lives as long as any `Runtime` or task.
    pub(crate) fn self_arc(&self) -> Arc<Self> {
        self.self_ref.upgrade().expect("the engine is alive while one of its methods runs")
    }

    pub(crate) fn integration_ref(&self) -> IntegrationRef {
        let integration = self.registry.integration();
        IntegrationRef {
            id: Some(integration.id.clone()),
            name: Some(integration.name.clone()),
            version: Some(integration.version.clone()),
        }
    }

    pub(crate) fn describe_payload(
        &self,
        payload: &mut TriggerPayload,
        flow: &Flow,
        instance: &Instance,
        execution_id: &str,
    ) {
        payload.customer = instance.customer.clone();
        payload.instance = flow_core::InstanceRef {
            id: Some(instance.id.clone()),
            name: Some(instance.name.clone()),
        };
        payload.flow = FlowRef {
            stable_key: Some(flow.stable_key().to_owned()),
            name: Some(flow.name().to_owned()),
        };
        payload.integration = self.integration_ref();
        payload.webhook_urls = instance.webhook_urls.clone();
        payload.webhook_api_keys = instance.webhook_api_keys_by_name.clone();
        payload.invoke_url = instance.webhook_urls.get(flow.name()).cloned().unwrap_or_default();
        payload.execution_id = execution_id.to_owned();
        if payload.started_at.is_none() {
            payload.started_at = Some(self.clock.now());
        }
    }

    /// Stores a new execution. A caller that stops waiting (an HTTP client that hangs up)
    /// leaves the submission to finish on a task of its own, so it cannot leave a committed
    /// execution without the worker that was meant to run it.
    ///
    /// The payload stays boxed from the request to the flow's call, because a `TriggerPayload`
    /// is about 650 bytes and each async layer that took it by value would copy it again.
    pub(crate) async fn submit(
        self: &Arc<Self>,
        flow_key: &str,
        instance_id: &str,
        payload: Box<TriggerPayload>,
        source: Source,
        mode: SubmitMode,
    ) -> Result<Submitted, SubmitError> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(SubmitError::Store(StoreError::Closed(
                "cannot submit outside a tokio runtime; submit from a task of the runtime that runs the engine".to_owned(),
            )));
        };
        let inner = Arc::clone(self);
        let (flow_key, instance_id) = (flow_key.to_owned(), instance_id.to_owned());
        let spawner = runtime.clone();
        detach::Detached::new(runtime, Box::pin(async move {
            let submission = AssertUnwindSafe(inner.submit_detached(&spawner, &flow_key, &instance_id, payload, source, mode));
            submission.catch_unwind().await.unwrap_or_else(|panic| {
                let message = run::panic_message(&*panic);
                tracing::error!(flow = %flow_key, instance = %instance_id, panic = %message, "submission panicked");
                Err(SubmitError::Store(StoreError::Closed(format!("the submission panicked: {message}"))))
            })
        }))
        .await
    }

    async fn submit_detached(
        self: &Arc<Self>,
        runtime: &tokio::runtime::Handle,
        flow_key: &str,
        instance_id: &str,
        mut payload: Box<TriggerPayload>,
        source: Source,
        mode: SubmitMode,
    ) -> Result<Submitted, SubmitError> {
        let flow = self
            .registry
            .find(flow_key)
            .ok_or_else(|| SubmitError::UnknownFlow(flow_key.to_owned()))?;
        let instance = self
            .instances
            .get(instance_id)
            .ok_or_else(|| SubmitError::UnknownInstance(instance_id.to_owned()))?;

        let execution_id = if payload.execution_id.is_empty() {
            uuid::Uuid::now_v7().to_string()
        } else {
            payload.execution_id.clone()
        };
        if !mode.unchanged_request {
            self.describe_payload(&mut payload, flow, instance, &execution_id);
        }

        let now = self.clock.now();
        let permit = match (mode.run_now, flow.config.queue_mode()) {
            (true, _) => Arc::clone(&self.permits).acquire_owned().await.ok(),
            (false, QueueMode::Parallel) => Arc::clone(&self.permits).try_acquire_owned().ok(),
            (false, QueueMode::Throttled { .. } | QueueMode::Sequential) => None,
        };
        let claimed_by = permit.as_ref().map(|_| Lease {
            worker: self.worker_id.clone(),
            until: now + self.settings.lease,
        });
        let execution = self.new_execution(flow, instance, &mut payload, &source, now, claimed_by, mode.unchanged_request)?;

        let completion = mode.wait.then(|| self.waiters.register(&execution_id));
        let inserted = self.store.insert(execution).await;

        let outcome = match inserted {
            Ok(outcome) => outcome,
            Err(error) => {
                self.waiters.forget(&execution_id);
                return Err(error.into());
            }
        };
        match outcome {
            InsertOutcome::Inserted => {
                tracing::debug!(execution_id = %execution_id, flow = flow.stable_key(), instance = %instance.id, "execution accepted");
                match permit {
                    Some(permit) => {
                        let claimed = crate::store::ClaimedExecution {
                            id: execution_id.clone(),
                            flow: flow.stable_key().to_owned(),
                            instance: instance.id.clone(),
                            payload: String::new(),
                            attempt: 1,
                            created_at: now,
                            parent_id: source.parent_id(),
                        };
                        let inner = Arc::clone(self);
                        runtime.spawn(run::run_attempt(inner, claimed, Some(payload), Some(permit)));
                    }
                    None => {
                        self.queue_changed();
                        if completion.is_some() && self.store.is_shared() {
                            runtime.spawn(watch_stored_completion(Arc::clone(self), execution_id.clone()));
                        }
                    }
                }
                Ok(Submitted {
                    execution_id,
                    deduplicated: false,
                    completion,
                })
            }
            InsertOutcome::Deduplicated { existing_id } => {
                self.waiters.forget(&execution_id);
                tracing::info!(execution_id = %execution_id, matched = %existing_id, flow = flow.stable_key(), "request deduplicated");
                Ok(Submitted {
                    execution_id: existing_id,
                    deduplicated: true,
                    completion: None,
                })
            }
        }
    }

    /// Runs the flow's custom trigger, with `polling` as its polling state when it runs as a
    /// polling flow's trigger.
    pub(crate) async fn run_trigger_with(
        &self,
        flow: &Flow,
        instance: &Arc<Instance>,
        payload: TriggerPayload,
        polling: Option<Arc<PollingState>>,
    ) -> Result<TriggerResult, TriggerError> {
        let Some(trigger) = flow.handlers.on_trigger else {
            return Ok(TriggerResult::new(payload));
        };

        let mut context = Context::new(
            RunInfo {
                execution_id: payload.execution_id.clone(),
                flow: payload.flow.clone(),
                attempt: 0,
                started_at: payload.started_at.unwrap_or_else(|| self.clock.now()),
            },
            Arc::clone(instance),
            self.integration_ref(),
            Logger::new(Arc::clone(&self.clock), &payload.execution_id, flow.stable_key(), &instance.id),
            Arc::new(States::default()),
            None,
        );
        if let Some(polling) = polling {
            context = context.with_polling(polling);
        }
        let result = match AssertUnwindSafe(trigger(&context, payload)).catch_unwind().await {
            Ok(result) => result.and_then(kept_trigger_body),
            Err(_) => {
                tracing::error!(flow = flow.stable_key(), instance = %instance.id, "trigger panicked");
                Err(TriggerError::internal("the flow's trigger panicked; see the runtime log"))
            }
        };
        if let Err(rejection) = &result {
            tracing::info!(flow = flow.stable_key(), instance = %instance.id, status = rejection.status, "trigger rejected the request");
        }
        result
    }

    /// Builds the stored form of an execution of `flow` whose payload is described already:
    /// the serialized payload without API keys, and its dedupe and unique request ids.
    /// `body_from_raw` means that the body was parsed from the raw body and not changed since.
    #[expect(clippy::too_many_arguments, reason = "each argument is a separate part of the stored execution")]
    pub(crate) fn new_execution(
        &self,
        flow: &Flow,
        instance: &Instance,
        payload: &mut TriggerPayload,
        source: &Source,
        now: chrono::DateTime<chrono::Utc>,
        claimed_by: Option<Lease>,
        body_from_raw: bool,
    ) -> Result<NewExecution, SubmitError> {
        let dedupe_path = flow.config.queue.as_ref().and_then(|queue| queue.dedupe_id_field.as_ref());
        let unique_path = flow.config.retry.as_ref().and_then(|retry| retry.unique_request_id_field.as_ref());
        // Serializing the payload for field lookups costs as much as storing it, so it is done
        // only for flows that read a field.
        let fields = if dedupe_path.is_some() || unique_path.is_some() {
            payload.field_source()
        } else {
            Value::Null
        };
        let body_text = match &payload.body.data {
            flow_core::BodyData::Json(json) => json.text(),
            _ => None,
        };
        let dedupe_key = dedupe_path.and_then(|path| path.resolve_id_in(&fields, body_text));
        let unique_request_id = unique_path.and_then(|path| path.resolve_id_in(&fields, body_text));

        // API keys are not stored: the worker fills them in again from the instance. The
        // payload is serialized straight to text, without an intermediate JSON value.
        let api_keys = std::mem::take(&mut payload.webhook_api_keys);
        let stored = crate::store::payload::encode(payload, body_from_raw).map_err(|error| {
            SubmitError::Store(StoreError::Corrupt(format!("the trigger payload does not serialize: {error}")))
        })?;
        payload.webhook_api_keys = api_keys;

        Ok(NewExecution {
            id: payload.execution_id.clone(),
            flow: flow.stable_key().to_owned(),
            instance: instance.id.clone(),
            payload: stored,
            created_at: now,
            dedupe_key,
            unique_request_id,
            parent_id: source.parent_id(),
            source: source.name().to_owned(),
            claimed_by,
        })
    }

    /// Loads the persisted state scopes of a run, in the order [`state_scopes`] gives them,
    /// with an empty execution state.
    pub(crate) async fn load_states(&self, scopes: &[StateScope; 3]) -> Result<States, StoreError> {
        let [instance, cross_flow, integration] = scopes;
        Ok(States {
            instance: StateStore::new((*self.state(instance).await?).clone()),
            cross_flow: StateStore::new((*self.state(cross_flow).await?).clone()),
            integration: StateStore::new((*self.state(integration).await?).clone()),
            execution: StateStore::default(),
        })
    }

    /// Returns a state map from the cache, loading it from the store on first use. A store
    /// shared with other processes is read every time and nothing is cached, because other
    /// processes' writes would not reach the cache.
    pub(crate) async fn state(&self, scope: &StateScope) -> Result<Arc<BTreeMap<String, Value>>, StoreError> {
        if self.store.is_shared() {
            return Ok(Arc::new(self.store.load_state(scope.clone()).await?));
        }
        if let Some(values) = self.state_cache.lock().unwrap_or_else(PoisonError::into_inner).get(scope) {
            return Ok(Arc::clone(values));
        }
        let values = Arc::new(self.store.load_state(scope.clone()).await?);
        self.state_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(scope.clone())
            .or_insert_with(|| Arc::clone(&values));
        Ok(values)
    }
}

/// How often shutdown checks whether the records of finished attempts have committed.
const RECORD_POLL: Duration = Duration::from_millis(5);

/// How often a caller's process reads a shared store for the outcome of an execution that
/// another process may run.
const STORED_COMPLETION_INTERVAL: Duration = Duration::from_millis(250);

/// Completes the waiters of a queued execution on a shared store once the store shows its
/// first outcome. Another process may claim and run the execution, and only the process that
/// runs it wakes its own waiters. Ends when no caller waits any more.
///
/// Each check reads the execution's summary, and the whole execution only once the summary
/// shows an ended first attempt, so a large payload is not read again every time.
async fn watch_stored_completion(inner: Arc<Inner>, execution_id: String) {
    loop {
        tokio::time::sleep(STORED_COMPLETION_INTERVAL).await;
        if !inner.waiters.is_waiting(&execution_id) {
            inner.waiters.forget(&execution_id);
            return;
        }
        let read = match inner.store.summary(&execution_id).await {
            Ok(Some(summary)) if !waiters::first_attempt_ended(&summary) => continue,
            Ok(_) => inner.store.get(&execution_id).await,
            Err(error) => Err(error),
        };
        let record = match read {
            Ok(record) => record,
            Err(error) => {
                tracing::warn!(execution_id = %execution_id, %error, "could not read a waited-for execution; reading it again");
                continue;
            }
        };
        if let Some(completion) = record.as_ref().and_then(waiters::stored_completion) {
            inner.waiters.complete(&execution_id, &completion);
            return;
        }
    }
}
