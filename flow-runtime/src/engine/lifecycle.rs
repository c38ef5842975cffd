//! Instance lifecycle: deploy and delete hooks, and which instances serve.
//!
//! Deploying an instance runs, for each flow in registration order, `on_instance_deploy` and
//! then `webhook_lifecycle(create = ...)`. The first failing hook stops the deploy: the
//! instance is recorded as `failed` with the flow, hook and error, and serves nothing (its
//! webhooks return 409 and its schedules do not fire) until a deploy succeeds. Hooks that ran
//! before the failure are not undone. Deleting runs `webhook_lifecycle(delete = ...)` and then
//! `on_instance_delete` for each flow. Every hook runs even when one fails, and the instance
//! is recorded as `deleted` only when all succeed, unless the delete is forced. A deployed
//! instance is not deployed again until it is deleted, so create hooks never run twice for one
//! deployment. Each hook has 30 seconds to finish.
//!
//! Hooks see the instance's config variables, customer and webhook URLs, and the state of
//! their flow, of the instance and of the integration; a successful hook's state changes are
//! saved.
//!
//! The store keeps each instance's deployment, so `serve` runs the deploy hooks once per
//! deployment: it deploys configured instances with no deployment or a failed one, and leaves
//! deleted instances deleted until an explicit deploy.
//!
//! A lock in the store lets one deploy or delete of an instance run at a time, across the
//! requests, CLI commands and processes that share the store (see [`super::lifecycle_lock`]).
//! A deploy or delete that finds the lock held fails with [`LifecycleError::InProgress`].
//! `serve` instead waits for the lock and then reads the deployment again, so processes that
//! start together on a shared store run the hooks once. When the deploy it waited for failed,
//! `serve` leaves the instance failed rather than run the hooks again.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, PoisonError};

use futures::FutureExt as _;
use serde::Serialize;

use super::{Inner, Runtime};
use crate::context::{Context, RunInfo};
use crate::definition::{Flow, HookFn};
use crate::instance::Instance;
use crate::logger::Logger;
use crate::store::{DeploymentRecord, DeploymentStatus, StateWrite, StoreError};

/// Maximum run time of one lifecycle hook; a hook still running then fails.
const HOOK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A lifecycle hook, as reports and errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Hook {
    /// `on_instance_deploy`.
    #[serde(rename = "on_instance_deploy")]
    OnInstanceDeploy,
    /// `webhook_lifecycle(create = ...)`.
    #[serde(rename = "webhook_lifecycle.create")]
    WebhookCreate,
    /// `webhook_lifecycle(delete = ...)`.
    #[serde(rename = "webhook_lifecycle.delete")]
    WebhookDelete,
    /// `on_instance_delete`.
    #[serde(rename = "on_instance_delete")]
    OnInstanceDelete,
}

impl Hook {
    /// Returns the attribute key that declares the hook.
    pub fn key(self) -> &'static str {
        match self {
            Self::OnInstanceDeploy => "on_instance_deploy",
            Self::WebhookCreate => "webhook_lifecycle.create",
            Self::WebhookDelete => "webhook_lifecycle.delete",
            Self::OnInstanceDelete => "on_instance_delete",
        }
    }

    fn function(self, flow: &Flow) -> Option<HookFn> {
        match self {
            Self::OnInstanceDeploy => flow.handlers.on_instance_deploy,
            Self::WebhookCreate => flow.handlers.webhook_create,
            Self::WebhookDelete => flow.handlers.webhook_delete,
            Self::OnInstanceDelete => flow.handlers.on_instance_delete,
        }
    }
}

/// One hook that ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookRun {
    /// Stable key of the flow that declares it.
    pub flow: String,
    /// Which hook.
    pub hook: Hook,
    /// The hook's error, when it failed.
    pub error: Option<String>,
}

/// The failure of a deploy or delete.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// No instance has this id.
    #[error("instance \"{0}\" not found; instances come from the config file's [[instances]]")]
    UnknownInstance(String),
    /// The instance is deployed; deploying it again would run the create hooks twice.
    #[error("instance \"{0}\" is already deployed; run `delete {0}` first to deploy it again")]
    AlreadyDeployed(String),
    /// The instance is deleted already; deleting it again would run the delete hooks twice.
    #[error("instance \"{0}\" is already deleted; run `deploy {0}` to deploy it again")]
    AlreadyDeleted(String),
    /// Another deploy or delete of the instance is running, in this process or another one.
    #[error(
        "a deploy or delete of instance \"{0}\" is running, from another request, the CLI or another process on \
         this store; try again once it has ended (the lock of a process that stopped during one lapses within 30 \
         seconds)"
    )]
    InProgress(String),
    /// The instance was never deployed, so there is nothing to delete.
    #[error(
        "instance \"{0}\" was never deployed from this store, so there is nothing to delete; check the instance \
         id and the store, or pass --force (HTTP: ?force=true) to record it as deleted, which keeps `serve` from \
         deploying it"
    )]
    NeverDeployed(String),
    /// A hook failed; the runs up to and including the failure are given.
    #[error("{}", describe_failures(.instance, .runs))]
    HookFailed {
        /// Instance id.
        instance: String,
        /// Every hook that ran, in order.
        runs: Vec<HookRun>,
    },
    /// The store did not record the deployment.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn describe_failures(instance: &str, runs: &[HookRun]) -> String {
    let failures: Vec<String> = runs
        .iter()
        .filter_map(|run| {
            let error = run.error.as_ref()?;
            Some(format!("flow \"{}\" {} failed: {error}", run.flow, run.hook.key()))
        })
        .collect();
    format!("instance \"{instance}\": {}", failures.join("; "))
}

impl Inner {
    /// Returns whether an instance serves webhooks and schedules: yes unless its last deploy
    /// failed or it was deleted.
    pub(crate) fn is_serving(&self, instance: &str) -> bool {
        self.deployments
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(instance)
            .is_none_or(|record| record.status.is_serving())
    }

    /// Returns an instance's deployment status, when it has one.
    pub(crate) fn deployment_status(&self, instance: &str) -> Option<DeploymentStatus> {
        self.deployments.read().unwrap_or_else(PoisonError::into_inner).get(instance).map(|record| record.status)
    }

    /// Reloads every instance's deployment from the store. When one changed since the last
    /// reload, another process may have run hooks that saved state, so the state cache is
    /// emptied and read again from the store.
    pub(crate) async fn refresh_deployments(&self) -> Result<(), StoreError> {
        let records: HashMap<String, DeploymentRecord> =
            self.store.deployments().await?.into_iter().map(|record| (record.instance.clone(), record)).collect();

        let mut known = self.deployments.write().unwrap_or_else(PoisonError::into_inner);
        if *known != records {
            // NOTE: an attempt that commits while the cache is emptied and read again may be
            // missing from the cache until the next change of a deployment or a restart.
            self.state_cache.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
        *known = records;
        Ok(())
    }

    /// Reloads one instance's deployment from the store, as [`Inner::refresh_deployments`]
    /// reloads all of them.
    pub(crate) async fn refresh_deployment(&self, instance: &str) -> Result<(), StoreError> {
        let record = self.store.deployment(instance).await?;

        let mut known = self.deployments.write().unwrap_or_else(PoisonError::into_inner);
        if known.get(instance) != record.as_ref() {
            self.state_cache.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
        match record {
            Some(record) => known.insert(instance.to_owned(), record),
            None => known.remove(instance),
        };
        Ok(())
    }

    async fn run_hooks(&self, instance: &Arc<Instance>, hooks: [Hook; 2], stop_at_failure: bool) -> Vec<HookRun> {
        let mut runs = Vec::new();
        for flow in self.registry.flows() {
            for hook in hooks {
                let Some(function) = hook.function(flow) else { continue };
                let error = self.run_hook(flow, instance, hook, function).await.err();
                let failed = error.is_some();
                runs.push(HookRun {
                    flow: flow.stable_key().to_owned(),
                    hook,
                    error,
                });
                if failed && stop_at_failure {
                    return runs;
                }
            }
        }
        runs
    }

    async fn run_hook(&self, flow: &Flow, instance: &Arc<Instance>, hook: Hook, function: HookFn) -> Result<(), String> {
        let run_id = format!("{}-{}", hook.key(), uuid::Uuid::now_v7());
        let scopes = super::state_scopes(flow, instance);
        let states = Arc::new(self.load_states(&scopes).await.map_err(|error| format!("could not load state: {error}"))?);

        let context = Context::new(
            RunInfo {
                execution_id: run_id.clone(),
                flow: flow_core::FlowRef {
                    stable_key: Some(flow.stable_key().to_owned()),
                    name: Some(flow.name().to_owned()),
                },
                attempt: 0,
                started_at: self.clock.now(),
            },
            Arc::clone(instance),
            self.integration_ref(),
            Logger::new(Arc::clone(&self.clock), &run_id, flow.stable_key(), &instance.id),
            Arc::clone(&states),
            None,
        );
        let run = tokio::time::timeout(HOOK_TIMEOUT, AssertUnwindSafe(function(&context)).catch_unwind());
        let mut outcome = match run.await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(error))) => Err(error.to_string()),
            Ok(Err(_)) => Err("the hook panicked; see the runtime log".to_owned()),
            Err(_) => Err(format!("the hook did not finish within {} seconds", HOOK_TIMEOUT.as_secs())),
        };

        // A successful hook's state changes are saved, so a webhook id registered on deploy
        // is there for the delete hook.
        if outcome.is_ok() {
            let changed = [&states.instance, &states.cross_flow, &states.integration];
            for (scope, store) in scopes.into_iter().zip(changed) {
                if !store.is_changed() {
                    continue;
                }
                let write = StateWrite {
                    scope: scope.clone(),
                    changes: store.changes(),
                };
                if let Err(error) = self.store.save_state(write, self.clock.now()).await {
                    outcome = Err(format!("could not save the hook's state: {error}"));
                    break;
                }
                self.state_cache.lock().unwrap_or_else(PoisonError::into_inner).remove(&scope);
            }
        }
        match &outcome {
            Ok(()) => tracing::info!(flow = flow.stable_key(), instance = %instance.id, hook = hook.key(), "lifecycle hook succeeded"),
            Err(error) => tracing::error!(flow = flow.stable_key(), instance = %instance.id, hook = hook.key(), %error, "lifecycle hook failed"),
        }
        outcome
    }

    async fn save_status(&self, instance: &str, status: DeploymentStatus, error: Option<String>) -> Result<(), StoreError> {
        let now = self.clock.now();
        let previous = self.store.deployment(instance).await?;
        let deployed_at = match status {
            DeploymentStatus::Deployed => Some(now),
            DeploymentStatus::Failed | DeploymentStatus::Deleted => previous.and_then(|record| record.deployed_at),
        };
        let record = DeploymentRecord {
            instance: instance.to_owned(),
            status,
            error,
            updated_at: now,
            deployed_at,
        };
        self.store.save_deployment(record.clone()).await?;
        self.deployments
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(instance.to_owned(), record);
        Ok(())
    }
}

impl Runtime {
    /// Runs the deploy hooks of every flow for an instance and records it as deployed; see the
    /// module documentation. Returns the hooks that ran.
    ///
    /// # Errors
    ///
    /// Returns [`LifecycleError::HookFailed`] naming the flow, hook and error, after recording
    /// the instance as `failed`; [`LifecycleError::InProgress`] while another deploy or
    /// delete of the instance runs; or an unknown instance or store error.
    pub async fn deploy(&self, instance_id: &str) -> Result<Vec<HookRun>, LifecycleError> {
        let inner = &self.inner;
        let instance = inner
            .instances
            .get(instance_id)
            .ok_or_else(|| LifecycleError::UnknownInstance(instance_id.to_owned()))?;
        let lock = inner
            .lock_lifecycle(instance_id)
            .await?
            .ok_or_else(|| LifecycleError::InProgress(instance_id.to_owned()))?;

        let result = self.deploy_locked(instance_id, instance).await;
        lock.release().await;
        result
    }

    /// Deploys an instance, under its lifecycle lock, unless it is deployed already.
    async fn deploy_locked(&self, instance_id: &str, instance: &Arc<Instance>) -> Result<Vec<HookRun>, LifecycleError> {
        // Another process (a server, or the CLI beside it) may have changed the deployment.
        self.inner.refresh_deployments().await?;
        if self.inner.deployment_status(instance_id) == Some(DeploymentStatus::Deployed) {
            return Err(LifecycleError::AlreadyDeployed(instance_id.to_owned()));
        }
        self.deploy_checked(instance_id, instance).await
    }

    /// Runs the deploy hooks of an instance that is known not to be deployed, and records the
    /// outcome.
    async fn deploy_checked(&self, instance_id: &str, instance: &Arc<Instance>) -> Result<Vec<HookRun>, LifecycleError> {
        let inner = &self.inner;
        let runs = inner.run_hooks(instance, [Hook::OnInstanceDeploy, Hook::WebhookCreate], true).await;
        if runs.iter().any(|run| run.error.is_some()) {
            let error = LifecycleError::HookFailed {
                instance: instance_id.to_owned(),
                runs,
            };
            inner.save_status(instance_id, DeploymentStatus::Failed, Some(error.to_string())).await?;
            return Err(error);
        }
        // Ticks that fell while the instance was not deployed are not caught up.
        inner.store.restart_schedules(instance_id, inner.clock.now()).await?;
        inner.save_status(instance_id, DeploymentStatus::Deployed, None).await?;
        tracing::info!(instance = instance_id, hooks = runs.len(), "instance deployed");
        Ok(runs)
    }

    /// Runs the delete hooks of every flow for an instance and records it as deleted; see the
    /// module documentation. Returns the hooks that ran. With `force`, the instance is
    /// recorded as deleted even when hooks fail, and the failures are in the returned runs.
    /// Use it when the remote side is already gone.
    ///
    /// # Errors
    ///
    /// Returns [`LifecycleError::HookFailed`] listing every failed hook, leaving the
    /// deployment as it was unless `force` is set; [`LifecycleError::AlreadyDeleted`], or
    /// [`LifecycleError::NeverDeployed`] without `force`; [`LifecycleError::InProgress`] while
    /// another deploy or delete of the instance runs; or an unknown instance or store error.
    pub async fn delete(&self, instance_id: &str, force: bool) -> Result<Vec<HookRun>, LifecycleError> {
        let inner = &self.inner;
        let instance = inner
            .instances
            .get(instance_id)
            .ok_or_else(|| LifecycleError::UnknownInstance(instance_id.to_owned()))?;
        let lock = inner
            .lock_lifecycle(instance_id)
            .await?
            .ok_or_else(|| LifecycleError::InProgress(instance_id.to_owned()))?;

        let result = self.delete_locked(instance_id, instance, force).await;
        lock.release().await;
        result
    }

    /// Deletes an instance under its lifecycle lock; see [`Runtime::delete`].
    async fn delete_locked(&self, instance_id: &str, instance: &Arc<Instance>, force: bool) -> Result<Vec<HookRun>, LifecycleError> {
        let inner = &self.inner;
        // Another process (a server, or the CLI beside it) may have changed the deployment.
        inner.refresh_deployments().await?;
        match inner.deployment_status(instance_id) {
            Some(DeploymentStatus::Deleted) => return Err(LifecycleError::AlreadyDeleted(instance_id.to_owned())),
            None if !force => return Err(LifecycleError::NeverDeployed(instance_id.to_owned())),
            _ => {}
        }

        let runs = inner.run_hooks(instance, [Hook::WebhookDelete, Hook::OnInstanceDelete], false).await;
        if !force && runs.iter().any(|run| run.error.is_some()) {
            return Err(LifecycleError::HookFailed {
                instance: instance_id.to_owned(),
                runs,
            });
        }
        inner.save_status(instance_id, DeploymentStatus::Deleted, None).await?;
        tracing::info!(instance = instance_id, hooks = runs.len(), "instance deleted");
        Ok(runs)
    }

    /// Deploys every instance that has no deployment yet or whose last deploy failed, and
    /// returns the failures; deleted instances stay deleted. `serve` calls it before it
    /// accepts requests.
    ///
    /// # Errors
    ///
    /// Returns the store's error; hook failures are returned in the list, not as an error.
    pub async fn deploy_pending(&self) -> Result<Vec<LifecycleError>, StoreError> {
        self.inner.refresh_deployments().await?;
        let mut pending = Vec::new();
        for (id, instance) in &self.inner.instances {
            match self.inner.deployment_status(id) {
                Some(DeploymentStatus::Deployed) => {}
                Some(DeploymentStatus::Deleted) => {
                    tracing::warn!(instance = %id, "instance was deleted and serves nothing; run `deploy {id}` to deploy it again");
                }
                Some(DeploymentStatus::Failed) | None => pending.push((id.as_str(), instance)),
            }
        }

        // Instances deploy side by side, so one slow customer system delays the start by at
        // most its own hooks' timeouts.
        let deploys = pending.into_iter().map(|(id, instance)| self.deploy_pending_one(id, instance));
        let mut failures = Vec::new();
        for result in futures::future::join_all(deploys).await {
            match result {
                Ok(_) => {}
                Err(LifecycleError::Store(error)) => return Err(error),
                Err(error) => failures.push(error),
            }
        }
        Ok(failures)
    }

    /// Deploys one instance that `serve` found pending, once no other deploy or delete of it
    /// runs. Another process may have deployed or deleted it meanwhile, and then its hooks do
    /// not run.
    async fn deploy_pending_one(&self, instance_id: &str, instance: &Arc<Instance>) -> Result<Vec<HookRun>, LifecycleError> {
        let (lock, waited) = self.inner.lock_lifecycle_waiting(instance_id).await?;
        let result = match self.inner.refresh_deployment(instance_id).await {
            Ok(()) => match self.inner.deployment_status(instance_id) {
                Some(DeploymentStatus::Deployed | DeploymentStatus::Deleted) => Ok(Vec::new()),
                // Each process that started together would otherwise run the failing hooks again.
                Some(DeploymentStatus::Failed) if waited => {
                    tracing::warn!(
                        instance = instance_id,
                        "another process's deploy of the instance failed while this one waited; it serves nothing until `deploy` succeeds"
                    );
                    Ok(Vec::new())
                }
                Some(DeploymentStatus::Failed) | None => self.deploy_checked(instance_id, instance).await,
            },
            Err(error) => Err(error.into()),
        };
        lock.release().await;
        result
    }

    /// Returns every instance's deployment record.
    ///
    /// # Errors
    ///
    /// Returns the store's error.
    pub async fn deployments(&self) -> Result<Vec<DeploymentRecord>, StoreError> {
        self.inner.store.deployments().await
    }

    /// Returns whether an instance serves webhooks and schedules (it was not deleted and its
    /// last deploy did not fail).
    pub fn is_serving(&self, instance: &str) -> bool {
        self.inner.is_serving(instance)
    }
}
