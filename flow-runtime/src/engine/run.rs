//! One attempt of one execution: build the context, run the flow, record the outcome.

use std::panic::AssertUnwindSafe;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError};

use futures::FutureExt as _;
use flow_core::{ExecutionParams, FlowError, FlowOutput, FlowRef, TriggerPayload};
use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument as _;

use super::waiters::Completion;
use super::{Inner, Source};
use crate::context::{Context, FlowInvoker, RunInfo};
use crate::definition::{BoxFuture, Flow};
use crate::instance::Instance;
use crate::logger::Logger;
use crate::step::StepJournal;
use crate::store::{AttemptOutcome, AttemptRecord, ClaimedExecution, StateWrite};

/// Runs one attempt and records it. `payload` is the submitted payload when the submitting
/// process runs the execution at once; otherwise the stored one is read. `worker` is the
/// engine's worker permit that the attempt holds, released once its record is sent to the store.
///
/// Boxes the attempt with its span, so spawning it moves a pointer. Each further async layer
/// around the attempt would copy its whole state again when it starts.
///
/// The `execution` span has no parent, so an attempt started inside another span, such as the
/// parent flow's during `invoke_flow`, does not log inside it.
pub(super) fn run_attempt(
    inner: Arc<Inner>,
    claimed: ClaimedExecution,
    payload: Option<Box<TriggerPayload>>,
    worker: Option<OwnedSemaphorePermit>,
) -> BoxFuture<'static, ()> {
    let span = tracing::info_span!(
        parent: None,
        "execution",
        execution_id = %claimed.id,
        flow = %claimed.flow,
        instance = %claimed.instance,
        attempt = claimed.attempt,
    );
    Box::pin(attempt(inner, claimed, payload, worker).instrument(span))
}

async fn attempt(
    inner: Arc<Inner>,
    claimed: ClaimedExecution,
    payload: Option<Box<TriggerPayload>>,
    worker: Option<OwnedSemaphorePermit>,
) {
    let _running = RunningAttempt::start(&inner, &claimed.id);
    let started_at = inner.clock.now();
    let outcome = match prepare(&inner, &claimed, payload) {
        Ok((flow, instance, payload)) => execute(&inner, &claimed, flow, instance, payload).await,
        Err(error) => Attempt {
            result: Err(FlowError::terminal(error)),
            logs: Vec::new(),
            state_writes: Vec::new(),
        },
    };
    record(&inner, &claimed, started_at, outcome, worker).await;
}

struct Attempt {
    result: Result<FlowOutput, FlowError>,
    logs: Vec<crate::logger::LogEntry>,
    state_writes: Vec<StateWrite>,
}

fn prepare<'a>(
    inner: &'a Inner,
    claimed: &ClaimedExecution,
    payload: Option<Box<TriggerPayload>>,
) -> Result<(&'a Flow, &'a Arc<Instance>, Box<TriggerPayload>), String> {
    let flow = inner.registry.get(&claimed.flow).ok_or_else(|| {
        format!("flow \"{}\" is not in this binary any more, so the execution cannot run; run a binary that has the flow to run new ones", claimed.flow)
    })?;
    let instance = inner.instances.get(&claimed.instance).ok_or_else(|| {
        format!(
            "instance \"{}\" is not configured any more, so the execution cannot run; add the instance to the config file to run new ones",
            claimed.instance
        )
    })?;
    // A submitted payload contains the instance's keys already, and a stored one has none.
    let payload = match payload {
        Some(payload) => payload,
        None => {
            let mut payload = crate::store::payload::decode(&claimed.payload)?;
            payload.webhook_api_keys = instance.webhook_api_keys_by_name.clone();
            Box::new(payload)
        }
    };
    Ok((flow, instance, payload))
}

async fn execute(
    inner: &Arc<Inner>,
    claimed: &ClaimedExecution,
    flow: &Flow,
    instance: &Arc<Instance>,
    payload: Box<TriggerPayload>,
) -> Attempt {
    let scopes = super::state_scopes(flow, instance);
    let states = match inner.load_states(&scopes).await {
        Ok(states) => Arc::new(states),
        Err(error) => {
            return Attempt {
                result: Err(FlowError::new(format!("could not load state: {error}"))),
                logs: Vec::new(),
                state_writes: Vec::new(),
            };
        }
    };

    let logger = Logger::new(Arc::clone(&inner.clock), &claimed.id, flow.stable_key(), &instance.id);
    let context = Context::new(
        RunInfo {
            execution_id: claimed.id.clone(),
            flow: FlowRef {
                stable_key: Some(flow.stable_key().to_owned()),
                name: Some(flow.name().to_owned()),
            },
            attempt: claimed.attempt,
            started_at: payload.started_at.unwrap_or(claimed.created_at),
        },
        Arc::clone(instance),
        inner.integration_ref(),
        logger.clone(),
        Arc::clone(&states),
        Some(Arc::clone(inner) as Arc<dyn FlowInvoker>),
    );

    let recorded = if claimed.attempt > 1 {
        match inner.store.load_steps(&claimed.id).await {
            Ok(recorded) => recorded,
            Err(error) => {
                return Attempt {
                    result: Err(FlowError::new(format!("could not load the step journal: {error}"))),
                    logs: Vec::new(),
                    state_writes: Vec::new(),
                };
            }
        }
    } else {
        // A first attempt has no journal: recovery after a crash counts as a new attempt.
        BTreeMap::new()
    };
    let journal = StepJournal::new(
        flow.config.error_config.clone().unwrap_or_default(),
        recorded,
        Arc::clone(&inner.store),
        &claimed.id,
        Arc::clone(&inner.clock),
    );
    let context = context.with_steps(Arc::new(journal));

    let params = ExecutionParams { trigger: *payload };
    let result = match AssertUnwindSafe((flow.execute)(&context, params)).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(FlowError::new(format!("flow panicked: {}", panic_message(&*panic)))),
    };

    let state_writes = if result.is_ok() {
        let stores = [&states.instance, &states.cross_flow, &states.integration];
        scopes
            .into_iter()
            .zip(stores)
            .filter(|(_, store)| store.is_changed())
            .map(|(scope, store)| StateWrite {
                scope,
                changes: store.changes(),
            })
            .collect()
    } else {
        Vec::new()
    };
    Attempt {
        result,
        logs: logger.entries(),
        state_writes,
    }
}

async fn record(
    inner: &Arc<Inner>,
    claimed: &ClaimedExecution,
    started_at: chrono::DateTime<chrono::Utc>,
    attempt: Attempt,
    worker: Option<OwnedSemaphorePermit>,
) {
    let finished_at = inner.clock.now();
    let flow = inner.registry.get(&claimed.flow);
    let retry = flow.and_then(|flow| flow.config.retry.clone());
    // A parallel flow's finished attempt frees a worker, which the dispatcher takes by itself
    // when this process queued work. A queued flow's next execution, a retry, or work that
    // another process queued on a shared store needs the dispatcher to look at the queue.
    let queued_flow = flow.is_none_or(|flow| flow.config.queue_mode() != flow_core::QueueMode::Parallel);
    let shared_queue = inner.store.is_shared();

    let (outcome, completion) = match kept_result(attempt.result) {
        Ok(output) => {
            let result = serde_json::to_value(&output).unwrap_or(Value::Null);
            tracing::info!("execution succeeded");
            (AttemptOutcome::Succeeded { result }, Completion::Succeeded(output))
        }
        Err(error) => {
            let message = error.message().to_owned();
            let retries_left = retry
                .as_ref()
                .is_some_and(|retry| !error.is_terminal() && claimed.attempt <= retry.max_attempts);
            if let (true, Some(retry)) = (retries_left, &retry) {
                let delay = retry.delay_before_retry(claimed.attempt);
                let retry_at = finished_at + delay;
                tracing::warn!(error = %message, retry_at = %retry_at, "attempt failed; retry scheduled");
                (
                    AttemptOutcome::Retrying {
                        error: message.clone(),
                        retry_at,
                    },
                    Completion::Failed {
                        error: message,
                        retrying: true,
                    },
                )
            } else {
                tracing::error!(error = %message, terminal = error.is_terminal(), "execution failed");
                (
                    AttemptOutcome::Failed { error: message.clone() },
                    Completion::Failed {
                        error: message,
                        retrying: false,
                    },
                )
            }
        }
    };

    let moves_queue = queued_flow || shared_queue || matches!(outcome, AttemptOutcome::Retrying { .. });

    // The next run of a sequential queue may be claimed the moment this commit lands, before
    // this task runs again, so the cache must hold the new state before the commit. When the
    // store does not record the attempt, the cached scopes are dropped and read again.
    let state_writes = attempt.state_writes;
    {
        let mut cache = inner.state_cache.lock().unwrap_or_else(PoisonError::into_inner);
        for write in &state_writes {
            if let Some(values) = cache.get_mut(&write.scope) {
                write.apply(Arc::make_mut(values));
            }
        }
    }
    let forget_cached_state = || {
        let mut cache = inner.state_cache.lock().unwrap_or_else(PoisonError::into_inner);
        for write in &state_writes {
            cache.remove(&write.scope);
        }
    };

    let record = AttemptRecord {
        execution_id: claimed.id.clone(),
        attempt: claimed.attempt,
        worker: inner.worker_id.clone(),
        started_at,
        finished_at,
        outcome,
        logs: attempt.logs,
        state_writes: state_writes.clone(),
    };
    let written = inner.store.finish_attempt(&record);
    // The SQLite store queues the record when `finish_attempt` is called, so a claim sent after
    // this point runs after the record, in the same transaction or a later one. The worker is
    // therefore free for the next execution while the record commits. `Recording` keeps the
    // attempt in `Runtime::running_count` until the commit is known.
    let recording = worker.map(|permit| {
        let recording = Recording::start(&inner.recording);
        drop(permit);
        recording
    });
    let mut written = written.await;

    // This worker keeps renewing the execution's lease, so no other worker takes it over while
    // the record is retried, and its queue waits for the record.
    let mut delay = RECORD_RETRY_FIRST;
    while let Err(error) = &written {
        if *inner.stopping.borrow() {
            break;
        }
        tracing::error!(%error, retry_in_ms = delay.as_millis(), "could not record the attempt; retrying");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RECORD_RETRY_MAX);
        written = inner.store.finish_attempt(&record).await;
    }

    match written {
        Ok(true) => {}
        Ok(false) => forget_cached_state(),
        Err(error) => {
            forget_cached_state();
            // Shutdown returns the execution to the queue, and it runs again after the restart.
            tracing::error!(%error, "could not record the attempt before shutdown; the execution will run again");
        }
    }
    inner.waiters.complete(&claimed.id, &completion);
    drop(recording);
    if moves_queue {
        inner.queue_changed();
    }
}

/// Passes a flow's result on, unless its data is nested deeper than the store keeps. Such data
/// would not read back, and serializing or dropping it could overflow the stack. So it is
/// dropped without recursion, and the attempt fails for good.
fn kept_result(result: Result<FlowOutput, FlowError>) -> Result<FlowOutput, FlowError> {
    let Ok(FlowOutput::Data(data)) = result else {
        return result;
    };
    crate::store::json::within_depth(data).map(FlowOutput::Data).map_err(|depth| {
        let message = crate::store::json::too_deep("the flow's result", depth);
        FlowError::terminal(format!("{message}; return a flatter value"))
    })
}

/// First wait before an attempt's record is written again after the store failed it.
const RECORD_RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(100);

/// Maximum wait between writes of an attempt's record. The wait doubles up to it.
const RECORD_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// Lists an execution in [`Inner::running`], so its lease is renewed, until this guard is
/// dropped.
struct RunningAttempt<'a> {
    inner: &'a Inner,
    id: String,
}

impl<'a> RunningAttempt<'a> {
    fn start(inner: &'a Inner, id: &str) -> Self {
        let mut running = inner.running.lock().unwrap_or_else(PoisonError::into_inner);
        *running.entry(id.to_owned()).or_default() += 1;
        Self { inner, id: id.to_owned() }
    }
}

impl Drop for RunningAttempt<'_> {
    fn drop(&mut self) {
        let mut running = self.inner.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = running.get_mut(&self.id) {
            *count -= 1;
            if *count == 0 {
                running.remove(&self.id);
            }
        }
    }
}

/// Counts an attempt whose worker was released before its record was committed, until this
/// guard is dropped.
struct Recording<'a>(&'a AtomicUsize);

impl<'a> Recording<'a> {
    fn start(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Recording<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-text panic payload".to_owned()
    }
}

impl FlowInvoker for Inner {
    fn invoke<'a>(&'a self, parent: &'a Context, flow: &'a str, data: Value) -> BoxFuture<'a, Result<FlowOutput, FlowError>> {
        Box::pin(async move {
            let Some(instance_id) = parent.instance().id else {
                return Err(FlowError::new("cannot invoke a flow outside an instance"));
            };
            let target = self
                .registry
                .find(flow)
                .ok_or_else(|| FlowError::new(format!("cannot invoke flow \"{flow}\": no flow has that name or stable key")))?;
            let data = crate::store::json::within_depth(data).map_err(|depth| {
                let message = crate::store::json::too_deep("its data", depth);
                FlowError::new(format!("cannot invoke flow \"{flow}\": {message}"))
            })?;
            let inner = self.self_arc();
            let submitted = inner
                .submit(
                    target.stable_key(),
                    &instance_id,
                    Box::new(TriggerPayload::from_json(data)),
                    Source::Invoke(parent.execution_id().to_owned()),
                    super::SubmitMode {
                        wait: true,
                        ..super::SubmitMode::default()
                    },
                )
                .await
                .map_err(|error| FlowError::new(format!("cannot invoke flow \"{flow}\": {error}")))?;
            let Some(completion) = submitted.completion else {
                return Err(FlowError::new(format!(
                    "invoked flow \"{flow}\" was deduplicated into execution {}",
                    submitted.execution_id
                )));
            };
            match completion.await {
                Ok(Completion::Succeeded(output)) => Ok(output),
                Ok(Completion::Failed { error, .. }) => Err(FlowError::new(format!(
                    "invoked flow \"{flow}\" failed (execution {}): {error}",
                    submitted.execution_id
                ))),
                Err(_) => Err(FlowError::new(format!(
                    "invoked flow \"{flow}\" (execution {}) did not finish before shutdown",
                    submitted.execution_id
                ))),
            }
        })
    }
}
