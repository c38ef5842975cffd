//! Deploys and deletes that run at the same time, in one runtime or in runtimes that share a
//! store: the hooks of one instance run for one of them at a time.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{PgSchema, config, echo, flow};
use flow_runtime::clock::SystemClock;
use flow_runtime::config::{FileConfig, InstanceSettings, Overrides, RuntimeSettings, build_instances};
use flow_runtime::core::FlowError;
use flow_runtime::definition::{BoxFuture, Handlers, HookFn};
use flow_runtime::engine::{EngineSettings, LifecycleError, Runtime};
use flow_runtime::store::{DeploymentStatus, Durability, SqliteStore, Store};
use flow_runtime::{Context, Flow, Integration, Registry};

/// Builds a runtime over `store` whose one flow runs `hook` on deploy, in the instance `acme`.
fn runtime_on(store: Arc<dyn Store>, hook: HookFn) -> Runtime {
    let mut contacts: Flow = flow(config("contacts"), echo);
    contacts.handlers = Handlers {
        on_instance_deploy: Some(hook),
        ..Handlers::default()
    };
    let registry = Registry::new(Integration::new("test", "Test", "0"), vec![contacts]).expect("valid flows");
    let file = FileConfig {
        instances: vec![InstanceSettings {
            id: "acme".into(),
            ..InstanceSettings::default()
        }],
        ..FileConfig::default()
    };
    let settings = RuntimeSettings::resolve(file, &Overrides::default(), |_| None).expect("settings");
    let instances = build_instances(&settings, &registry, |_| None).expect("instances");
    Runtime::new(registry, instances, store, Arc::new(SystemClock), EngineSettings::default())
}

/// Opens a SQLite store on `flows.db` in `folder`. Several stores may open one file.
fn sqlite(folder: &tempfile::TempDir) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(folder.path().join("flows.db"), Durability::Normal).expect("store"))
}

/// Declares a deploy hook that takes 300 ms, counts its runs in its own counter and then
/// succeeds, or returns `$outcome` when one is given.
macro_rules! counted_slow_hook {
    ($name:ident, $runs:ident) => {
        counted_slow_hook!($name, $runs, Ok(()));
    };
    ($name:ident, $runs:ident, $outcome:expr) => {
        static $runs: AtomicUsize = AtomicUsize::new(0);

        fn $name(_ctx: &Context) -> BoxFuture<'_, Result<(), FlowError>> {
            Box::pin(async {
                $runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                $outcome
            })
        }
    };
}

/// Builds two runtimes over one SQLite file in `folder`, as two processes would be.
fn two_runtimes(folder: &tempfile::TempDir, hook: HookFn) -> (Runtime, Runtime) {
    (runtime_on(sqlite(folder), hook), runtime_on(sqlite(folder), hook))
}

/// Runs `operation` 100 ms from now, once a deploy started at once is running.
async fn a_moment_later<T>(operation: impl Future<Output = T>) -> T {
    tokio::time::sleep(Duration::from_millis(100)).await;
    operation.await
}

#[tokio::test]
async fn deploy_during_a_deploy_is_in_progress() {
    counted_slow_hook!(hook, RUNS);
    let folder = tempfile::tempdir().expect("temp dir");
    let runtime = runtime_on(sqlite(&folder), hook);

    let (first, second) = tokio::join!(runtime.deploy("acme"), a_moment_later(runtime.deploy("acme")));

    assert!(first.is_ok(), "{first:?}");
    assert!(matches!(second, Err(LifecycleError::InProgress(ref instance)) if instance == "acme"), "{second:?}");
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn delete_during_a_deploy_is_in_progress() {
    counted_slow_hook!(hook, RUNS);
    let folder = tempfile::tempdir().expect("temp dir");
    let runtime = runtime_on(sqlite(&folder), hook);

    let (_, delete) = tokio::join!(runtime.deploy("acme"), a_moment_later(runtime.delete("acme", true)));

    assert!(matches!(delete, Err(LifecycleError::InProgress(_))), "{delete:?}");
}

#[tokio::test]
async fn deploy_after_deploy_is_already_deployed() {
    counted_slow_hook!(hook, RUNS);
    let folder = tempfile::tempdir().expect("temp dir");
    let runtime = runtime_on(sqlite(&folder), hook);
    runtime.deploy("acme").await.expect("deploys");

    let again = runtime.deploy("acme").await;

    assert!(matches!(again, Err(LifecycleError::AlreadyDeployed(_))), "{again:?}");
}

#[tokio::test]
async fn sqlite_runtimes_starting_together_deploy_once() {
    counted_slow_hook!(hook, RUNS);
    let folder = tempfile::tempdir().expect("temp dir");
    let (first, second) = two_runtimes(&folder, hook);

    let (a, b) = tokio::join!(first.deploy_pending(), second.deploy_pending());

    assert_eq!((a.expect("reads").len(), b.expect("reads").len()), (0, 0), "no deploy failed");
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn starting_runtime_waits_for_a_running_deploy() {
    counted_slow_hook!(hook, RUNS);
    let folder = tempfile::tempdir().expect("temp dir");
    let (first, second) = two_runtimes(&folder, hook);

    let (_, second_ready_at) = tokio::join!(first.deploy_pending(), a_moment_later(async {
        second.deploy_pending().await.expect("reads");
        chrono::Utc::now()
    }));

    let deployments = second.deployments().await.expect("reads");
    assert_eq!(deployments[0].status, DeploymentStatus::Deployed);
    assert!(deployments[0].updated_at <= second_ready_at, "the second runtime was ready before the deploy ended");
}

#[tokio::test]
async fn waiting_runtime_leaves_a_failed_deploy_failed() {
    counted_slow_hook!(hook, RUNS, Err(FlowError::new("the supplier did not answer")));
    let folder = tempfile::tempdir().expect("temp dir");
    let (first, second) = two_runtimes(&folder, hook);

    let (a, b) = tokio::join!(first.deploy_pending(), a_moment_later(second.deploy_pending()));

    assert_eq!(a.expect("reads").len(), 1, "the first runtime's deploy failed");
    assert!(b.expect("reads").is_empty(), "the second runtime ran no deploy of its own");
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn shutdown_waits_for_a_running_deploy() {
    counted_slow_hook!(hook, RUNS);
    let folder = tempfile::tempdir().expect("temp dir");
    let runtime = runtime_on(sqlite(&folder), hook);
    let deploying = runtime.clone();
    tokio::spawn(async move { deploying.deploy("acme").await });
    tokio::time::sleep(Duration::from_millis(100)).await;

    runtime.shutdown(Duration::from_secs(5)).await;

    let deployments = runtime.deployments().await.expect("reads");
    assert_eq!(deployments.first().map(|record| record.status), Some(DeploymentStatus::Deployed));
}

#[tokio::test]
async fn shutdown_after_its_grace_releases_the_lock() {
    counted_slow_hook!(hook, RUNS);
    let folder = tempfile::tempdir().expect("temp dir");
    let store = sqlite(&folder);
    let runtime = runtime_on(Arc::clone(&store), hook);
    let deploying = runtime.clone();
    tokio::spawn(async move { deploying.deploy("acme").await });
    tokio::time::sleep(Duration::from_millis(100)).await;

    runtime.shutdown(Duration::from_millis(50)).await;

    let now = chrono::Utc::now();
    let locked = store.lock_lifecycle("acme", "next-deploy", now, now + chrono::Duration::seconds(30)).await.expect("locks");
    assert!(locked, "the stopped deploy kept the lock");
}

#[tokio::test]
async fn postgres_runtimes_starting_together_deploy_once() {
    counted_slow_hook!(hook, RUNS);
    let Some(schema) = PgSchema::create("postgres_runtimes_starting_together_deploy_once").await else {
        return;
    };
    let runtimes = [
        runtime_on(schema.open().await, hook),
        runtime_on(schema.open().await, hook),
        runtime_on(schema.open().await, hook),
    ];

    let outcomes = futures::future::join_all(runtimes.iter().map(Runtime::deploy_pending)).await;

    drop(runtimes);
    schema.drop().await;
    for outcome in outcomes {
        assert!(outcome.expect("reads").is_empty(), "no deploy failed");
    }
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
}
