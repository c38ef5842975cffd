//! `serve`: the HTTP server over the engine, with graceful shutdown.

use std::path::PathBuf;

use super::{CliError, PreparedRuntime, load_settings, open_store};
use crate::config::Overrides;
use crate::http::{HttpSettings, ServerLimits, router, serve as serve_http};
use crate::registry::Registry;

pub(super) async fn serve(registry: Registry, config: Option<PathBuf>, overrides: Overrides) -> Result<(), CliError> {
    let mut settings = load_settings(config, &overrides)?;

    // Listen before the webhook URLs are built, because with port 0 the system picks the port
    // that a URL derived from the address must name. Listen and lock a SQLite store before
    // recovery, which requeues every running execution there: a second server started by
    // mistake must stop before it touches them. Recovery on PostgreSQL requeues only
    // executions whose lease ended, so servers share it unlocked.
    let listener = tokio::net::TcpListener::bind(settings.addr)
        .await
        .map_err(|error| CliError::config(format!("cannot listen on {}: {error}; choose another --addr", settings.addr)))?;
    let local = listener.local_addr().map_err(|error| CliError::config(error.to_string()))?;
    settings.listening_on(local);
    let prepared = PreparedRuntime::new(registry, &settings)?;
    let store = open_store(&settings).await?;
    let (runtime, organization_keys) = prepared.on(store.shared());
    let _lock = store.lock_for_serving()?;
    runtime
        .start()
        .await
        .map_err(|error| CliError::config(format!("cannot recover stored executions: {error}")))?;
    let failures = runtime
        .deploy_pending()
        .await
        .map_err(|error| CliError::config(format!("cannot read instance deployments: {error}")))?;
    for failure in &failures {
        tracing::error!(error = %failure, "instance not deployed; it serves nothing until `deploy` succeeds");
    }
    runtime.start_scheduler();
    tracing::info!(addr = %local, store = %settings.store, "serving flows");
    for instance in runtime.instances() {
        for (flow, url) in &instance.webhook_urls {
            tracing::info!(instance = %instance.id, flow = %flow, url = %url, "webhook");
        }
        for flow in runtime.registry().flows() {
            let next = runtime
                .schedule_of(flow.stable_key(), &instance.id)
                .and_then(|cron| cron.next_after(runtime.clock().now()));
            if let Some(next) = next {
                tracing::info!(instance = %instance.id, flow = flow.stable_key(), next_tick = %next, "schedule");
            }
        }
    }

    let app = router(
        runtime.clone(),
        HttpSettings {
            body_limit: settings.body_limit,
            sync_timeout: settings.sync_timeout,
            body_timeout: settings.body_timeout,
            admin_token: settings.admin_token.clone(),
        },
        organization_keys,
    );
    let limits = ServerLimits {
        drain_timeout: settings.shutdown_grace,
        ..ServerLimits::default()
    };
    serve_http(listener, app, limits, shutdown_signal()).await;
    tracing::info!("stopped accepting requests; finishing running executions");
    runtime.shutdown(settings.shutdown_grace).await;
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!(signal = "interrupt", "shutdown requested"),
        () = terminate => tracing::info!(signal = "terminate", "shutdown requested"),
    }
}
