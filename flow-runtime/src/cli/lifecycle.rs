//! `deploy` and `delete`: run an instance's lifecycle hooks and record its deployment.

use std::path::PathBuf;

use super::{CliError, PreparedRuntime, load_settings, open_store};
use crate::config::Overrides;
use crate::engine::{HookRun, LifecycleError};
use crate::registry::Registry;

/// The lifecycle command to run.
#[derive(Debug, Clone, Copy)]
pub(super) enum Action {
    Deploy,
    /// Deletes; with `true`, even when hooks fail.
    Delete(bool),
}

pub(super) async fn run(
    registry: Registry,
    config: Option<PathBuf>,
    overrides: Overrides,
    instance: &str,
    action: Action,
) -> Result<(), CliError> {
    let settings = load_settings(config, &overrides)?;
    // Hooks register the webhook URLs with other systems, and only `serve` learns the port.
    if settings.public_url_names_port_zero() {
        return Err(CliError::config(format!(
            "the webhook URLs would name port 0, because the address is {} and no public URL is set; set \
             server.public_url or FLOW_PUBLIC_URL, or use the running server's \
             POST /instances/{instance}/deploy or /delete",
            settings.addr
        )));
    }
    let prepared = PreparedRuntime::new(registry, &settings)?;
    // An unknown instance is named before the store opens, so it leaves no new store file.
    if !prepared.instances().iter().any(|configured| configured.id == instance) {
        return Err(CliError::config(LifecycleError::UnknownInstance(instance.to_owned()).to_string()));
    }
    let store = open_store(&settings).await?;
    let (runtime, _) = prepared.on(store.shared());

    let result = match action {
        Action::Deploy => runtime.deploy(instance).await,
        Action::Delete(force) => runtime.delete(instance, force).await,
    };
    let verb = match action {
        Action::Deploy => "deployed",
        Action::Delete(_) => "deleted",
    };
    match result {
        Ok(runs) => {
            print_runs(&runs);
            print_line!("instance \"{instance}\" {verb} ({} hooks ran)", runs.len());
            Ok(())
        }
        Err(LifecycleError::HookFailed { instance, runs }) => {
            print_runs(&runs);
            let failure = LifecycleError::HookFailed { instance, runs };
            Err(CliError::failed(failure.to_string()))
        }
        Err(
            error @ (LifecycleError::UnknownInstance(_)
            | LifecycleError::AlreadyDeployed(_)
            | LifecycleError::AlreadyDeleted(_)
            | LifecycleError::NeverDeployed(_)
            | LifecycleError::InProgress(_)),
        ) => {
            Err(CliError::config(error.to_string()))
        }
        Err(error @ LifecycleError::Store(_)) => Err(CliError::failed(error.to_string())),
    }
}

fn print_runs(runs: &[HookRun]) {
    for run in runs {
        match &run.error {
            None => print_line!("ok      {} {}", run.flow, run.hook.key()),
            Some(error) => print_line!("failed  {} {}: {error}", run.flow, run.hook.key()),
        }
    }
}
