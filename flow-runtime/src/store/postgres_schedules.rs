//! PostgreSQL queries for schedule cursors, recorded ticks and instance deployments.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgConnection;

use super::postgres::{QueryError, corrupt, insert_execution, write_state};
use super::records::InsertOutcome;
use super::schedules::{
    DeploymentRecord, DeploymentStatus, NewTick, ScheduleSummary, TickFilter, TickOutcome, TickRecord, TickRecorded,
};
use super::sqlite::from_millis;

/// Ticks listed when a filter sets no limit.
const DEFAULT_TICK_LIMIT: usize = 100;

pub(super) async fn schedule_cursor(
    connection: &mut PgConnection,
    flow: &str,
    instance: &str,
    start: DateTime<Utc>,
) -> Result<DateTime<Utc>, QueryError> {
    let start = start.timestamp_millis();
    sqlx::query(
        "INSERT INTO schedules (flow, instance, handled_until, updated_at) VALUES ($1, $2, $3, $3) \
         ON CONFLICT (flow, instance) DO NOTHING",
    )
    .bind(flow)
    .bind(instance)
    .bind(start)
    .execute(&mut *connection)
    .await?;
    let cursor: i64 = sqlx::query_scalar("SELECT handled_until FROM schedules WHERE flow = $1 AND instance = $2")
        .bind(flow)
        .bind(instance)
        .fetch_one(&mut *connection)
        .await?;
    Ok(from_millis(cursor))
}

pub(super) async fn restart_schedules(
    connection: &mut PgConnection,
    instance: &str,
    at: DateTime<Utc>,
) -> Result<usize, QueryError> {
    let moved = sqlx::query(
        "UPDATE schedules SET handled_until = $2, updated_at = $2 WHERE instance = $1 AND handled_until < $2",
    )
    .bind(instance)
    .bind(at.timestamp_millis())
    .execute(&mut *connection)
    .await?;
    Ok(usize::try_from(moved.rows_affected()).unwrap_or(usize::MAX))
}

pub(super) async fn record_tick(connection: &mut PgConnection, tick: &NewTick) -> Result<TickRecorded, QueryError> {
    let scheduled_at = tick.scheduled_at.timestamp_millis();
    let recorded_at = tick.recorded_at.timestamp_millis();

    // Moving the cursor is the claim on the tick. A second node handling the same tick waits
    // for the first's row lock, then finds the cursor already there and records nothing.
    let moved = sqlx::query(
        "UPDATE schedules SET handled_until = $3, updated_at = $4 \
         WHERE flow = $1 AND instance = $2 AND handled_until < $3",
    )
    .bind(&tick.flow)
    .bind(&tick.instance)
    .bind(scheduled_at)
    .bind(recorded_at)
    .execute(&mut *connection)
    .await?;
    if moved.rows_affected() == 0 {
        return Ok(TickRecorded::AlreadyHandled);
    }

    let mut outcome = tick.outcome;
    let mut detail = tick.detail.clone();
    let running = if tick.singleton && outcome == TickOutcome::Started {
        unfinished_execution(connection, &tick.flow, &tick.instance).await?
    } else {
        None
    };
    if let Some(running) = running {
        outcome = TickOutcome::Skipped;
        detail = Some(format!("execution {running} of the previous tick is still queued or running"));
    }

    let mut execution_id = None;
    if outcome == TickOutcome::Started
        && let Some(execution) = &tick.execution
    {
        execution_id = Some(execution.id.clone());
        if let InsertOutcome::Deduplicated { existing_id } = insert_execution(connection, execution).await? {
            detail = Some(format!("deduplicated into execution {existing_id}"));
        }
    }
    if outcome != TickOutcome::Skipped
        && let Some(state) = &tick.state
    {
        write_state(connection, state, recorded_at).await?;
    }

    const INSERT_TICK: &str = "INSERT INTO ticks (flow, instance, scheduled_at, outcome, execution_id, missed, detail, \
                               recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                               ON CONFLICT (flow, instance, scheduled_at) DO NOTHING";
    for missed in &tick.missed {
        sqlx::query(INSERT_TICK)
            .bind(&tick.flow)
            .bind(&tick.instance)
            .bind(missed.timestamp_millis())
            .bind(TickOutcome::Missed.as_str())
            .bind(Option::<String>::None)
            .bind(0_i64)
            .bind(format!("fell in downtime; the tick at {} caught up for it", tick.scheduled_at.to_rfc3339()))
            .bind(recorded_at)
            .execute(&mut *connection)
            .await?;
    }
    sqlx::query(INSERT_TICK)
        .bind(&tick.flow)
        .bind(&tick.instance)
        .bind(scheduled_at)
        .bind(outcome.as_str())
        .bind(execution_id)
        .bind(i64::try_from(tick.missed_total).unwrap_or(i64::MAX))
        .bind(detail)
        .bind(recorded_at)
        .execute(&mut *connection)
        .await?;
    Ok(TickRecorded::Recorded(outcome))
}

pub(super) async fn unfinished_execution(
    connection: &mut PgConnection,
    flow: &str,
    instance: &str,
) -> Result<Option<String>, QueryError> {
    let id = sqlx::query_scalar(
        "SELECT id FROM executions WHERE flow = $1 AND instance = $2 AND status IN ('queued', 'running') \
         ORDER BY seq LIMIT 1",
    )
    .bind(flow)
    .bind(instance)
    .fetch_optional(&mut *connection)
    .await?;
    Ok(id)
}

pub(super) async fn list_ticks(connection: &mut PgConnection, filter: &TickFilter) -> Result<Vec<TickRecord>, QueryError> {
    let limit = if filter.limit == 0 { DEFAULT_TICK_LIMIT } else { filter.limit };
    let rows = sqlx::query(
        "SELECT flow, instance, scheduled_at, outcome, execution_id, missed, detail, recorded_at FROM ticks \
         WHERE ($1::text IS NULL OR flow = $1) AND ($2::text IS NULL OR instance = $2) \
         ORDER BY scheduled_at DESC, instance COLLATE \"C\", flow COLLATE \"C\" LIMIT $3",
    )
    .bind(&filter.flow)
    .bind(&filter.instance)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut *connection)
    .await?;

    let mut ticks = Vec::with_capacity(rows.len());
    for row in &rows {
        let outcome: String = row.try_get("outcome")?;
        let missed: i64 = row.try_get("missed")?;
        ticks.push(TickRecord {
            flow: row.try_get("flow")?,
            instance: row.try_get("instance")?,
            scheduled_at: from_millis(row.try_get("scheduled_at")?),
            outcome: outcome.parse().map_err(|reason| corrupt("tick outcome", reason))?,
            execution_id: row.try_get("execution_id")?,
            missed: u64::try_from(missed).unwrap_or_default(),
            detail: row.try_get("detail")?,
            recorded_at: from_millis(row.try_get("recorded_at")?),
        });
    }
    Ok(ticks)
}

pub(super) async fn schedule_summaries(connection: &mut PgConnection) -> Result<Vec<ScheduleSummary>, QueryError> {
    let mut summaries: BTreeMap<(String, String), ScheduleSummary> = BTreeMap::new();
    let cursors: Vec<(String, String, i64)> = sqlx::query_as("SELECT flow, instance, handled_until FROM schedules")
        .fetch_all(&mut *connection)
        .await?;
    for (flow, instance, handled_until) in cursors {
        summaries.insert(
            (instance.clone(), flow.clone()),
            ScheduleSummary {
                flow,
                instance,
                handled_until: from_millis(handled_until),
                counts: BTreeMap::new(),
            },
        );
    }

    let counts: Vec<(String, String, String, i64)> =
        sqlx::query_as("SELECT flow, instance, outcome, COUNT(*) FROM ticks GROUP BY flow, instance, outcome")
            .fetch_all(&mut *connection)
            .await?;
    for (flow, instance, outcome, count) in counts {
        let outcome: TickOutcome = outcome.parse().map_err(|reason| corrupt("tick outcome", reason))?;
        if let Some(summary) = summaries.get_mut(&(instance, flow)) {
            summary.counts.insert(outcome, u64::try_from(count).unwrap_or_default());
        }
    }
    Ok(summaries.into_values().collect())
}

pub(super) async fn save_deployment(connection: &mut PgConnection, record: &DeploymentRecord) -> Result<(), QueryError> {
    sqlx::query(
        "INSERT INTO deployments (instance, status, error, updated_at, deployed_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (instance) DO UPDATE SET status = EXCLUDED.status, error = EXCLUDED.error, \
         updated_at = EXCLUDED.updated_at, deployed_at = EXCLUDED.deployed_at",
    )
    .bind(&record.instance)
    .bind(record.status.as_str())
    .bind(&record.error)
    .bind(record.updated_at.timestamp_millis())
    .bind(record.deployed_at.map(|at| at.timestamp_millis()))
    .execute(&mut *connection)
    .await?;
    Ok(())
}

pub(super) async fn lock_lifecycle(
    connection: &mut PgConnection,
    instance: &str,
    owner: &str,
    times: (i64, i64),
) -> Result<bool, QueryError> {
    let (now, until) = times;
    let changed = sqlx::query(
        "INSERT INTO lifecycle_locks (instance, owner, locked_until) VALUES ($1, $2, $3) \
         ON CONFLICT (instance) DO UPDATE SET owner = EXCLUDED.owner, locked_until = EXCLUDED.locked_until \
         WHERE lifecycle_locks.locked_until <= $4 OR lifecycle_locks.owner = EXCLUDED.owner",
    )
    .bind(instance)
    .bind(owner)
    .bind(until)
    .bind(now)
    .execute(&mut *connection)
    .await?
    .rows_affected();
    Ok(changed == 1)
}

pub(super) async fn unlock_lifecycle(connection: &mut PgConnection, instance: &str, owner: &str) -> Result<(), QueryError> {
    sqlx::query("DELETE FROM lifecycle_locks WHERE instance = $1 AND owner = $2")
        .bind(instance)
        .bind(owner)
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// A `deployments` row: instance, status, error, and the times of the last update and deploy.
type DeploymentRow = (String, String, Option<String>, i64, Option<i64>);

pub(super) async fn deployments(connection: &mut PgConnection) -> Result<Vec<DeploymentRecord>, QueryError> {
    let rows: Vec<DeploymentRow> = sqlx::query_as(
        "SELECT instance, status, error, updated_at, deployed_at FROM deployments ORDER BY instance COLLATE \"C\"",
    )
    .fetch_all(&mut *connection)
    .await?;
    rows.into_iter().map(deployment_from_row).collect()
}

pub(super) async fn deployment(connection: &mut PgConnection, instance: &str) -> Result<Option<DeploymentRecord>, QueryError> {
    let row: Option<DeploymentRow> =
        sqlx::query_as("SELECT instance, status, error, updated_at, deployed_at FROM deployments WHERE instance = $1")
            .bind(instance)
            .fetch_optional(&mut *connection)
            .await?;
    row.map(deployment_from_row).transpose()
}

fn deployment_from_row(row: DeploymentRow) -> Result<DeploymentRecord, QueryError> {
    let (instance, status, error, updated_at, deployed_at) = row;
    Ok(DeploymentRecord {
        instance,
        status: status.parse::<DeploymentStatus>().map_err(|reason| corrupt("deployment status", reason))?,
        error,
        updated_at: from_millis(updated_at),
        deployed_at: deployed_at.map(from_millis),
    })
}
