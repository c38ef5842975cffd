//! An in-process harness for testing flows: build a request, set config and state, run the
//! trigger and the execution, and drive retries and queues with virtual time. For end-to-end
//! tests of a built integration binary, [`ServedBinary`] runs its `serve` on a local port.
//!
//! The harness runs the real engine on a real SQLite file in a temporary folder, with a
//! [`ManualClock`] that only moves when the test calls [`TestHarness::advance`], so no test
//! waits for a retry delay or a schedule. Schedules and polling triggers fire as the clock
//! passes their instants, as they do under `serve`.
//!
//! ```ignore
//! use flow_runtime::testing::{TestHarness, TestRequest};
//!
//! #[tokio::test]
//! async fn order_is_fulfilled() {
//!     let harness = TestHarness::builder()
//!         .flow(process_order::definition())
//!         .config_var("Warehouse", "Rotterdam DC")
//!         .build()
//!         .await;
//!     let run = harness.invoke("process-order", TestRequest::json(json!({ "orderId": "A-1" }))).await;
//!     assert_eq!(run.data()["fulfilled"], json!(true));
//! }
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use flow_core::{Body, Customer, EndpointType, FlowOutput, HttpResponse, RawBody, TriggerError, TriggerPayload, TriggerResult};
use serde_json::Value;

use crate::clock::{Clock, ManualClock};
use crate::config::{FileConfig, InstanceSettings, Overrides, RuntimeSettings, build_instances};
use crate::definition::Flow;
use crate::engine::{Completion, EngineSettings, HookRun, LifecycleError, RouteError, Runtime, Source, SubmitError};
use crate::http::request::{parse_body, query_parameters};
use crate::integration::Integration;
use crate::registry::Registry;
use crate::store::{
    Ancestor, Durability, ExecutionFilter, ExecutionRecord, ExecutionSummary, SqliteStore, StateScope, StateWrite, Store,
    TickFilter, TickRecord, execution_with_lineage,
};

mod processes;
mod served;

pub use served::{ServedBinary, ServedBinaryBuilder, free_port};

/// Maximum wait for the preprocess flow in [`TestHarness::route`], in real time.
const ROUTE_TIMEOUT: Duration = Duration::from_secs(30);

/// A request to run a flow with: body, headers, query and path fragment.
#[derive(Debug, Clone, Default)]
pub struct TestRequest {
    body: Vec<u8>,
    content_type: Option<String>,
    headers: BTreeMap<String, String>,
    query: Vec<(String, String)>,
    path_fragment: String,
}

impl TestRequest {
    /// Creates a request with no body.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Creates a JSON request.
    pub fn json(value: Value) -> Self {
        Self::bytes("application/json", value.to_string().into_bytes())
    }

    /// Creates a form request (`application/x-www-form-urlencoded`) with fields in order.
    pub fn form<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        Self::bytes("application/x-www-form-urlencoded", encoded.into_bytes())
    }

    /// Creates a request with raw bytes of the given content type.
    pub fn bytes(content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            body: body.into(),
            content_type: Some(content_type.to_owned()),
            headers: [("content-type".to_owned(), content_type.to_owned())].into_iter().collect(),
            ..Self::default()
        }
    }

    /// Adds a header; names are stored in lowercase as the HTTP layer stores them.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(name.to_ascii_lowercase(), value.to_owned());
        self
    }

    /// Adds a query parameter; repeat a name to send several values.
    #[must_use]
    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the path after the flow's webhook URL.
    #[must_use]
    pub fn path(mut self, fragment: &str) -> Self {
        self.path_fragment = fragment.to_owned();
        self
    }

    async fn into_payload(self) -> TriggerPayload {
        let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(&self.query).finish();
        let bytes = bytes::Bytes::from(self.body);
        let data = parse_body(self.content_type.as_deref(), &bytes)
            .await
            .unwrap_or_else(|error| panic!("TestRequest body does not parse: {error}"));
        TriggerPayload {
            headers: self.headers,
            query_parameters: query_parameters(Some(&query)),
            raw_body: RawBody {
                data: bytes.to_vec(),
                content_type: self.content_type.clone(),
            },
            body: Body {
                data,
                content_type: self.content_type,
            },
            path_fragment: self.path_fragment,
            ..TriggerPayload::default()
        }
    }
}

/// Builds a [`TestHarness`].
#[derive(Debug)]
pub struct HarnessBuilder {
    flows: Vec<Flow>,
    integration: Integration,
    instance: InstanceSettings,
    start: DateTime<Utc>,
    state: Vec<(StateScope, String, Value)>,
}

impl HarnessBuilder {
    /// Adds a flow, such as `process_order::definition()`.
    #[must_use]
    pub fn flow(mut self, flow: Flow) -> Self {
        self.flows.push(flow);
        self
    }

    /// Sets the integration, with its config variable declarations.
    #[must_use]
    pub fn integration(mut self, integration: Integration) -> Self {
        self.integration = integration;
        self
    }

    /// Sets a config variable of the test instance; the integration declares it if it did not.
    #[must_use]
    pub fn config_var(mut self, name: &str, value: impl Into<Value>) -> Self {
        let value: Value = value.into();
        let toml_value = toml::Value::try_from(&value).unwrap_or_else(|_| toml::Value::String(value.to_string()));
        self.instance.config.insert(name.to_owned(), toml_value);
        if self.integration.find_config_var(name).is_none() {
            self.integration.config_vars.push(crate::integration::ConfigVar::new(name));
        }
        self
    }

    /// Sets the test instance's id (`test` by default).
    #[must_use]
    pub fn instance(mut self, id: &str) -> Self {
        self.instance.id = id.to_owned();
        self
    }

    /// Sets the test instance's customer.
    #[must_use]
    pub fn customer(mut self, customer: Customer) -> Self {
        self.instance.customer = crate::config::CustomerSettings {
            id: customer.id,
            name: customer.name,
            external_id: customer.external_id,
        };
        self
    }

    /// Sets the virtual time the harness starts at.
    #[must_use]
    pub fn start_at(mut self, instant: DateTime<Utc>) -> Self {
        self.start = instant;
        self
    }

    /// Seeds a value in the instance state of `flow` (its stable key).
    #[must_use]
    pub fn flow_state(mut self, flow: &str, key: &str, value: impl Into<Value>) -> Self {
        let scope = StateScope::Flow {
            instance: self.instance.id.clone(),
            flow: flow.to_owned(),
        };
        self.state.push((scope, key.to_owned(), value.into()));
        self
    }

    /// Seeds a value in the state shared by the instance's flows.
    #[must_use]
    pub fn cross_flow_state(mut self, key: &str, value: impl Into<Value>) -> Self {
        let scope = StateScope::CrossFlow {
            instance: self.instance.id.clone(),
        };
        self.state.push((scope, key.to_owned(), value.into()));
        self
    }

    /// Seeds the saved polling state of `flow` (its stable key), as a previous poll left it.
    #[must_use]
    pub fn polling_state(mut self, flow: &str, value: impl Into<Value>) -> Self {
        let scope = StateScope::Polling {
            instance: self.instance.id.clone(),
            flow: flow.to_owned(),
        };
        self.state.push((scope, crate::polling::POLLING_STATE_KEY.to_owned(), value.into()));
        self
    }

    /// Starts the harness.
    ///
    /// # Panics
    ///
    /// Panics with the configuration error when the flows or the config are invalid: a test
    /// setup mistake.
    pub async fn build(self) -> TestHarness {
        let folder = Arc::new(tempfile::tempdir().expect("a temporary folder for the test store"));
        let store_path = folder.path().join("flows.db");
        let clock = Arc::new(ManualClock::new(self.start));
        let registry = Registry::new(self.integration, self.flows).unwrap_or_else(|error| panic!("{error}"));

        let store = open_store(&store_path);
        let mut seeded: BTreeMap<String, (StateScope, BTreeMap<String, Value>)> = BTreeMap::new();
        for (scope, key, value) in self.state {
            seeded
                .entry(scope.storage_key())
                .or_insert_with(|| (scope, BTreeMap::new()))
                .1
                .insert(key, value);
        }
        for (_, (scope, values)) in seeded {
            store
                .save_state(
                    StateWrite {
                        scope,
                        changes: values.into_iter().map(|(key, value)| (key, Some(value))).collect(),
                    },
                    clock.now(),
                )
                .await
                .expect("seeds state");
        }

        let harness = TestHarness {
            registry,
            instance: self.instance,
            clock,
            store_path,
            runtime: None,
            _folder: folder,
        };
        harness.with_runtime(store).await
    }
}

/// Runs flows in-process on a temporary store with virtual time.
#[derive(Debug)]
pub struct TestHarness {
    registry: Registry,
    instance: InstanceSettings,
    clock: Arc<ManualClock>,
    store_path: PathBuf,
    runtime: Option<Runtime>,
    _folder: Arc<tempfile::TempDir>,
}

/// The outcome of [`TestHarness::invoke`]: the first attempt's result.
#[derive(Debug, Clone)]
pub struct TestRun {
    /// The execution id.
    pub execution_id: String,
    /// The trigger's custom response, if it gave one.
    pub trigger_response: Option<HttpResponse>,
    /// The first attempt's outcome.
    pub completion: Completion,
}

impl TestRun {
    /// Returns the JSON result of a successful first attempt.
    ///
    /// # Panics
    ///
    /// Panics with the error when the attempt failed or returned an HTTP response.
    pub fn data(&self) -> &Value {
        match &self.completion {
            Completion::Succeeded(FlowOutput::Data(value)) => value,
            Completion::Succeeded(FlowOutput::Response(response)) => {
                panic!("the flow returned an HTTP response with status {}, not JSON", response.status)
            }
            Completion::Failed { error, .. } => panic!("the execution failed: {error}"),
        }
    }

    /// Returns the error of a failed first attempt, or `None` when it succeeded.
    pub fn error(&self) -> Option<&str> {
        match &self.completion {
            Completion::Failed { error, .. } => Some(error),
            Completion::Succeeded(_) => None,
        }
    }
}

fn open_store(path: &std::path::Path) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(path, Durability::Normal).expect("opens the test store"))
}

impl TestHarness {
    /// Starts building a harness with instance `test`, starting at 2026-01-01T00:00:00Z.
    pub fn builder() -> HarnessBuilder {
        HarnessBuilder {
            flows: Vec::new(),
            integration: Integration::new("test", "Test Integration", "0.0.0"),
            instance: InstanceSettings {
                id: "test".to_owned(),
                ..InstanceSettings::default()
            },
            start: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap_or_default(),
            state: Vec::new(),
        }
    }

    async fn with_runtime(mut self, store: Arc<SqliteStore>) -> Self {
        let file = FileConfig {
            instances: vec![self.instance.clone()],
            ..FileConfig::default()
        };
        let settings = RuntimeSettings::resolve(file, &Overrides::default(), |_| None).unwrap_or_else(|error| panic!("{error}"));
        let instances = build_instances(&settings, &self.registry, |_| None).unwrap_or_else(|error| panic!("{error}"));
        let runtime = Runtime::new(
            self.registry.clone(),
            instances,
            store,
            Arc::clone(&self.clock) as Arc<dyn Clock>,
            EngineSettings::default(),
        );
        runtime.recover().await.expect("recovers the test store");
        // The first pass starts each new schedule at the current virtual time.
        runtime.run_schedules().await.expect("starts the schedules");
        self.runtime = Some(runtime);
        self
    }

    /// Returns the engine.
    pub fn runtime(&self) -> &Runtime {
        self.runtime.as_ref().expect("the harness always holds a runtime after build")
    }

    /// Returns the virtual time.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Runs only the flow's trigger on `request`.
    ///
    /// # Errors
    ///
    /// Returns the trigger's rejection.
    ///
    /// # Panics
    ///
    /// Panics when no flow has this stable key.
    pub async fn run_trigger(&self, stable_key: &str, request: TestRequest) -> Result<TriggerResult, TriggerError> {
        let runtime = self.runtime();
        let flow = runtime.registry().get(stable_key).unwrap_or_else(|| panic!("no flow has the stable key \"{stable_key}\""));
        let instance = runtime.instance(&self.instance.id).expect("the test instance exists").clone();
        let mut payload = request.into_payload().await;
        runtime.describe_payload(&mut payload, flow, &instance, &uuid::Uuid::now_v7().to_string());
        runtime.run_trigger(flow, &instance, payload).await
    }

    /// Runs the flow's trigger, stores the execution, runs it (and anything else due), and
    /// returns its first attempt's outcome. Retries wait for [`TestHarness::advance`].
    ///
    /// # Panics
    ///
    /// Panics when the trigger rejects the request or the store fails; use
    /// [`TestHarness::run_trigger`] to test rejections.
    pub async fn invoke(&self, stable_key: &str, request: TestRequest) -> TestRun {
        let trigger = self
            .run_trigger(stable_key, request)
            .await
            .unwrap_or_else(|rejection| panic!("the trigger rejected the request: {rejection}"));
        let runtime = self.runtime();
        let submitted = runtime
            .submit(stable_key, &self.instance.id, trigger.payload, Source::Webhook, true)
            .await
            .unwrap_or_else(|error: SubmitError| panic!("the execution was not accepted: {error}"));
        let Some(completion) = submitted.completion else {
            panic!("the request was deduplicated into execution {}", submitted.execution_id);
        };
        runtime.run_due().await.expect("runs due executions");
        let completion = completion.await.expect("the execution finishes");
        TestRun {
            execution_id: submitted.execution_id,
            trigger_response: trigger.response,
            completion,
        }
    }

    /// Sends a request to the integration's routed endpoint: `/webhooks/{instance}` of the test
    /// instance, or the shared `/webhooks`. The preprocess flow runs first when there is one.
    /// The routed flow's trigger and execution run next, and the first attempt's outcome is
    /// returned. The routed execution's [`TestHarness::lineage`]
    /// lists the preprocess execution.
    ///
    /// # Errors
    ///
    /// Returns the [`RouteError`] the HTTP layer returns: an unknown flow or customer
    /// (404), a missing routing field (400), a failed preprocess flow (500), or the routed
    /// flow's trigger rejection.
    ///
    /// # Panics
    ///
    /// Panics when the store fails or the request was deduplicated.
    pub async fn route(&self, request: TestRequest) -> Result<TestRun, RouteError> {
        let runtime = self.runtime();
        let shared = runtime.registry().integration().endpoint_type == EndpointType::SharedInstance;
        let instance_id = (!shared).then_some(self.instance.id.as_str());
        let payload = request.into_payload().await;
        let route = runtime.route(instance_id, payload, ROUTE_TIMEOUT).await?;

        let flow = runtime.registry().get(&route.flow).expect("the route names a registered flow");
        let preprocess_id = match &route.source {
            Source::Preprocess(execution_id) => Some(execution_id.clone()),
            _ => None,
        };
        let mut payload = route.payload;
        runtime.describe_payload(&mut payload, flow, &route.instance, &uuid::Uuid::now_v7().to_string());
        let trigger = runtime
            .run_trigger(flow, &route.instance, payload)
            .await
            .map_err(|rejection| RouteError {
                status: rejection.status,
                message: rejection.message,
                execution_id: preprocess_id,
            })?;
        let submitted = runtime
            .submit(&route.flow, &route.instance.id, trigger.payload, route.source, true)
            .await
            .unwrap_or_else(|error: SubmitError| panic!("the routed execution was not accepted: {error}"));
        let Some(completion) = submitted.completion else {
            panic!("the routed request was deduplicated into execution {}", submitted.execution_id);
        };
        self.run_due().await;
        let completion = completion.await.expect("the routed execution finishes");
        Ok(TestRun {
            execution_id: submitted.execution_id,
            trigger_response: trigger.response.or(route.trigger_response),
            completion,
        })
    }

    /// Returns the tools the instance's MCP server lists, as `tools/list` sends them: one per
    /// agent flow, with `name`, `description`, `inputSchema` and `outputSchema`.
    pub fn tools(&self) -> Vec<Value> {
        crate::mcp::tool_definitions(self.runtime().registry())
            .iter()
            .map(|tool| serde_json::to_value(tool).unwrap_or(Value::Null))
            .collect()
    }

    /// Calls an agent flow as the MCP server's `tools/call` does: the arguments are the body,
    /// the execution's source is `mcp`, and the first attempt's outcome is returned. The
    /// `Api-Key` check of the HTTP layer is not part of the call.
    ///
    /// # Panics
    ///
    /// Panics when no agent flow has this stable key, when `arguments` is not a JSON object or
    /// does not match the tool's input schema, or when the store fails.
    pub async fn call_tool(&self, name: &str, arguments: Value) -> TestRun {
        let runtime = self.runtime();
        let Some(flow) = runtime.registry().get(name).filter(|flow| flow.config.agent) else {
            panic!("no agent flow has the stable key \"{name}\"");
        };
        if let Some(schema) = &flow.config.schemas.input {
            let validator = crate::mcp::input_validator(flow, schema).unwrap_or_else(|error| panic!("{error}"));
            if let Err(invalid) = crate::mcp::check_arguments(name, &validator, &arguments) {
                panic!("{}", invalid.message);
            }
        }
        let Value::Object(arguments) = arguments else {
            panic!("tool arguments must be a JSON object, not {arguments}");
        };

        let payload = crate::mcp::tool_payload(Some(arguments));
        let submitted = runtime
            .submit(name, &self.instance.id, payload, Source::Mcp, true)
            .await
            .unwrap_or_else(|error: SubmitError| panic!("the tool call was not accepted: {error}"));
        let Some(completion) = submitted.completion else {
            panic!("the tool call was deduplicated into execution {}", submitted.execution_id);
        };
        self.run_due().await;
        let completion = completion.await.expect("the tool call finishes");
        TestRun {
            execution_id: submitted.execution_id,
            trigger_response: None,
            completion,
        }
    }

    /// Stores an execution without waiting for it, as an asynchronous webhook does; returns its
    /// id, or the matched id for a deduplicated request. Call [`TestHarness::run_due`] or
    /// [`TestHarness::advance`] to run it.
    ///
    /// # Panics
    ///
    /// Panics when the trigger rejects the request or the store fails.
    pub async fn enqueue(&self, stable_key: &str, request: TestRequest) -> String {
        let trigger = self
            .run_trigger(stable_key, request)
            .await
            .unwrap_or_else(|rejection| panic!("the trigger rejected the request: {rejection}"));
        let submitted = self
            .runtime()
            .submit(stable_key, &self.instance.id, trigger.payload, Source::Webhook, false)
            .await
            .unwrap_or_else(|error| panic!("the execution was not accepted: {error}"));
        submitted.execution_id
    }

    /// Fires the schedule ticks due now, then runs every execution due now, including retries,
    /// until nothing is due; returns how many attempts ran.
    pub async fn run_due(&self) -> usize {
        self.runtime().run_schedules().await.expect("handles schedule ticks");
        let mut attempts = 0;
        // Executions started at submit time run on their own tasks; wait for them to finish.
        for _ in 0..1000 {
            attempts += self.runtime().run_due().await.expect("runs due executions");
            if self.runtime().running_count() == 0 {
                return attempts;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        attempts
    }

    /// Moves virtual time forward as a running server lives through it: the clock stops at
    /// every schedule instant and retry due time on the way, and what is due runs there.
    /// Returns how many attempts ran.
    pub async fn advance(&self, duration: Duration) -> usize {
        let target = self.clock.now() + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX);
        let mut attempts = 0;
        loop {
            let now = self.clock.now();
            let next_tick = self.runtime().next_fire(now);
            let next_due = self
                .runtime()
                .store()
                .next_due()
                .await
                .expect("reads the store")
                .filter(|due| *due > now);
            let next = [next_tick, next_due].into_iter().flatten().min();
            match next {
                Some(instant) if instant <= target => {
                    self.clock.set(instant);
                    attempts += self.run_due().await;
                }
                _ => break,
            }
        }
        self.clock.set(target.max(self.clock.now()));
        attempts + self.run_due().await
    }

    /// Moves virtual time forward as if the process were stopped: nothing runs, and the next
    /// [`TestHarness::run_due`] or [`TestHarness::advance`] catches up on missed ticks.
    pub fn advance_while_stopped(&self, duration: Duration) {
        self.clock.advance(duration);
    }

    /// Runs the deploy hooks of the test instance; see [`Runtime::deploy`].
    ///
    /// # Errors
    ///
    /// Returns the failed hook with its flow and error.
    pub async fn deploy(&self) -> Result<Vec<HookRun>, LifecycleError> {
        self.runtime().deploy(&self.instance.id).await
    }

    /// Runs the delete hooks of the test instance; see [`Runtime::delete`].
    ///
    /// # Errors
    ///
    /// Returns every failed hook with its flow and error.
    pub async fn delete(&self) -> Result<Vec<HookRun>, LifecycleError> {
        self.runtime().delete(&self.instance.id, false).await
    }

    /// Returns the recorded schedule ticks of a flow (its stable key), oldest first.
    pub async fn ticks(&self, flow: &str) -> Vec<TickRecord> {
        let mut ticks = self
            .runtime()
            .store()
            .list_ticks(TickFilter {
                flow: Some(flow.to_owned()),
                instance: Some(self.instance.id.clone()),
                limit: usize::MAX >> 1,
            })
            .await
            .expect("reads the store");
        ticks.reverse();
        ticks
    }

    /// Returns the executions of a flow (its stable key), oldest first.
    pub async fn executions(&self, flow: &str) -> Vec<ExecutionSummary> {
        let mut executions = self
            .runtime()
            .store()
            .list(ExecutionFilter {
                flow: Some(flow.to_owned()),
                instance: Some(self.instance.id.clone()),
                limit: usize::MAX >> 1,
                ..ExecutionFilter::default()
            })
            .await
            .expect("reads the store");
        executions.reverse();
        executions
    }

    /// Returns the saved polling state of a flow (its stable key), `None` before the first
    /// successful poll that set one.
    pub async fn saved_polling_state(&self, flow: &str) -> Option<Value> {
        let scope = StateScope::Polling {
            instance: self.instance.id.clone(),
            flow: flow.to_owned(),
        };
        let mut values = self.runtime().store().load_state(scope).await.expect("reads the store");
        values.remove(crate::polling::POLLING_STATE_KEY)
    }

    /// Returns a stored execution with its attempts and logs.
    ///
    /// # Panics
    ///
    /// Panics when no execution has this id.
    pub async fn execution(&self, id: &str) -> ExecutionRecord {
        self.runtime()
            .store()
            .get(id)
            .await
            .expect("reads the store")
            .unwrap_or_else(|| panic!("no execution has the id {id}"))
    }

    /// Returns the executions that started this one, nearest first, as `GET /executions/{id}`
    /// lists them under `lineage`.
    ///
    /// # Panics
    ///
    /// Panics when no execution has this id.
    pub async fn lineage(&self, id: &str) -> Vec<Ancestor> {
        execution_with_lineage(self.runtime().store().as_ref(), id)
            .await
            .expect("reads the store")
            .unwrap_or_else(|| panic!("no execution has the id {id}"))
            .lineage
    }

    /// Returns the saved instance state of a flow (its stable key).
    pub async fn flow_state(&self, flow: &str) -> BTreeMap<String, Value> {
        let scope = StateScope::Flow {
            instance: self.instance.id.clone(),
            flow: flow.to_owned(),
        };
        self.runtime().store().load_state(scope).await.expect("reads the store")
    }

    /// Returns the saved state shared by the instance's flows.
    pub async fn cross_flow_state(&self) -> BTreeMap<String, Value> {
        let scope = StateScope::CrossFlow {
            instance: self.instance.id.clone(),
        };
        self.runtime().store().load_state(scope).await.expect("reads the store")
    }

    /// Replaces the engine with a new one on the same store and clock, as a process restart
    /// after a crash does: work the old engine left running is requeued.
    pub async fn restart(mut self) -> Self {
        self.runtime = None;
        let store = open_store(&self.store_path);
        self.with_runtime(store).await
    }
}
