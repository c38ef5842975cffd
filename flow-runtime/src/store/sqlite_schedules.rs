//! SQLite queries for schedule cursors, recorded ticks and instance deployments.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::records::InsertOutcome;
use super::schedules::{
    DeploymentRecord, DeploymentStatus, NewTick, ScheduleSummary, TickFilter, TickOutcome, TickRecord, TickRecorded,
};
use super::sqlite::{database, from_millis, insert_execution, write_state};
use super::{StoreError, StoreResult};

/// Ticks listed when a filter sets no limit.
const DEFAULT_TICK_LIMIT: usize = 100;

pub(super) fn schedule_cursor(tx: &Connection, flow: &str, instance: &str, start: DateTime<Utc>) -> StoreResult<DateTime<Utc>> {
    let start = start.timestamp_millis();
    tx.prepare_cached(
        "INSERT OR IGNORE INTO schedules (flow, instance, handled_until, updated_at) VALUES (?1, ?2, ?3, ?3)",
    )
    .and_then(|mut statement| statement.execute(params![flow, instance, start]))
    .map_err(database)?;
    let cursor: i64 = tx
        .prepare_cached("SELECT handled_until FROM schedules WHERE flow = ?1 AND instance = ?2")
        .and_then(|mut statement| statement.query_row(params![flow, instance], |row| row.get(0)))
        .map_err(database)?;
    Ok(from_millis(cursor))
}

pub(super) fn restart_schedules(tx: &Connection, instance: &str, at: DateTime<Utc>) -> StoreResult<usize> {
    let at = at.timestamp_millis();
    tx.prepare_cached(
        "UPDATE schedules SET handled_until = ?2, updated_at = ?2 WHERE instance = ?1 AND handled_until < ?2",
    )
    .and_then(|mut statement| statement.execute(params![instance, at]))
    .map_err(database)
}

pub(super) fn record_tick(tx: &Connection, tick: &NewTick) -> StoreResult<TickRecorded> {
    let scheduled_at = tick.scheduled_at.timestamp_millis();
    let recorded_at = tick.recorded_at.timestamp_millis();

    // Moving the cursor is the claim on the tick: a second process that handled the same tick
    // finds the cursor already there and records nothing.
    let moved = tx
        .prepare_cached(
            "UPDATE schedules SET handled_until = ?3, updated_at = ?4 \
             WHERE flow = ?1 AND instance = ?2 AND handled_until < ?3",
        )
        .and_then(|mut statement| statement.execute(params![tick.flow, tick.instance, scheduled_at, recorded_at]))
        .map_err(database)?;
    if moved == 0 {
        return Ok(TickRecorded::AlreadyHandled);
    }

    let mut outcome = tick.outcome;
    let mut detail = tick.detail.clone();
    let running = if tick.singleton && outcome == TickOutcome::Started {
        unfinished_execution(tx, &tick.flow, &tick.instance)?
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
        if let InsertOutcome::Deduplicated { existing_id } = insert_execution(tx, execution)? {
            detail = Some(format!("deduplicated into execution {existing_id}"));
        }
    }
    if outcome != TickOutcome::Skipped
        && let Some(state) = &tick.state
    {
        write_state(tx, state, recorded_at)?;
    }

    let mut insert = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO ticks (flow, instance, scheduled_at, outcome, execution_id, missed, detail, recorded_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(database)?;
    for missed in &tick.missed {
        insert
            .execute(params![
                tick.flow,
                tick.instance,
                missed.timestamp_millis(),
                TickOutcome::Missed.as_str(),
                Option::<String>::None,
                0,
                format!("fell in downtime; the tick at {} caught up for it", tick.scheduled_at.to_rfc3339()),
                recorded_at
            ])
            .map_err(database)?;
    }
    insert
        .execute(params![
            tick.flow,
            tick.instance,
            scheduled_at,
            outcome.as_str(),
            execution_id,
            i64::try_from(tick.missed_total).unwrap_or(i64::MAX),
            detail,
            recorded_at
        ])
        .map_err(database)?;
    Ok(TickRecorded::Recorded(outcome))
}

pub(super) fn unfinished_execution(connection: &Connection, flow: &str, instance: &str) -> StoreResult<Option<String>> {
    connection
        .prepare_cached(
            "SELECT id FROM executions WHERE flow = ?1 AND instance = ?2 AND status IN ('queued', 'running') \
             ORDER BY seq LIMIT 1",
        )
        .and_then(|mut statement| statement.query_row(params![flow, instance], |row| row.get(0)).optional())
        .map_err(database)
}

fn corrupt(column: usize, reason: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, reason.into())
}

pub(super) fn list_ticks(connection: &Connection, filter: &TickFilter) -> StoreResult<Vec<TickRecord>> {
    let limit = if filter.limit == 0 { DEFAULT_TICK_LIMIT } else { filter.limit };
    let mut statement = connection
        .prepare_cached(
            "SELECT flow, instance, scheduled_at, outcome, execution_id, missed, detail, recorded_at FROM ticks \
             WHERE (?1 IS NULL OR flow = ?1) AND (?2 IS NULL OR instance = ?2) \
             ORDER BY scheduled_at DESC, instance, flow LIMIT ?3",
        )
        .map_err(database)?;
    let rows = statement
        .query_map(
            params![filter.flow, filter.instance, i64::try_from(limit).unwrap_or(i64::MAX)],
            |row| {
                let outcome: String = row.get(3)?;
                Ok(TickRecord {
                    flow: row.get(0)?,
                    instance: row.get(1)?,
                    scheduled_at: from_millis(row.get(2)?),
                    outcome: outcome.parse().map_err(|reason| corrupt(3, reason))?,
                    execution_id: row.get(4)?,
                    missed: u64::try_from(row.get::<_, i64>(5)?).unwrap_or_default(),
                    detail: row.get(6)?,
                    recorded_at: from_millis(row.get(7)?),
                })
            },
        )
        .map_err(database)?;
    rows.collect::<Result<_, _>>().map_err(database)
}

pub(super) fn schedule_summaries(connection: &Connection) -> StoreResult<Vec<ScheduleSummary>> {
    let mut summaries: BTreeMap<(String, String), ScheduleSummary> = BTreeMap::new();
    let mut cursors = connection
        .prepare_cached("SELECT flow, instance, handled_until FROM schedules")
        .map_err(database)?;
    let rows = cursors
        .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?)))
        .map_err(database)?;
    for row in rows {
        let (flow, instance, handled_until) = row.map_err(database)?;
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

    let mut counts = connection
        .prepare_cached("SELECT flow, instance, outcome, COUNT(*) FROM ticks GROUP BY flow, instance, outcome")
        .map_err(database)?;
    let rows = counts
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?, row.get::<_, i64>(3)?))
        })
        .map_err(database)?;
    for row in rows {
        let (flow, instance, outcome, count) = row.map_err(database)?;
        let outcome: TickOutcome = outcome.parse().map_err(StoreError::Corrupt)?;
        if let Some(summary) = summaries.get_mut(&(instance, flow)) {
            summary.counts.insert(outcome, u64::try_from(count).unwrap_or_default());
        }
    }
    Ok(summaries.into_values().collect())
}

pub(super) fn save_deployment(tx: &Connection, record: &DeploymentRecord) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO deployments (instance, status, error, updated_at, deployed_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut statement| {
        statement.execute(params![
            record.instance,
            record.status.as_str(),
            record.error,
            record.updated_at.timestamp_millis(),
            record.deployed_at.map(|at| at.timestamp_millis()),
        ])
    })
    .map(|_| ())
    .map_err(database)
}

pub(super) fn lock_lifecycle(tx: &Connection, instance: &str, owner: &str, now: i64, until: i64) -> StoreResult<bool> {
    let changed = tx
        .prepare_cached(
            "INSERT INTO lifecycle_locks (instance, owner, locked_until) VALUES (?1, ?2, ?3) \
             ON CONFLICT (instance) DO UPDATE SET owner = excluded.owner, locked_until = excluded.locked_until \
             WHERE lifecycle_locks.locked_until <= ?4 OR lifecycle_locks.owner = excluded.owner",
        )
        .and_then(|mut statement| statement.execute(params![instance, owner, until, now]))
        .map_err(database)?;
    Ok(changed == 1)
}

pub(super) fn unlock_lifecycle(tx: &Connection, instance: &str, owner: &str) -> StoreResult<()> {
    tx.prepare_cached("DELETE FROM lifecycle_locks WHERE instance = ?1 AND owner = ?2")
        .and_then(|mut statement| statement.execute(params![instance, owner]))
        .map(|_| ())
        .map_err(database)
}

pub(super) fn deployments(connection: &Connection) -> StoreResult<Vec<DeploymentRecord>> {
    let mut statement = connection
        .prepare_cached("SELECT instance, status, error, updated_at, deployed_at FROM deployments ORDER BY instance")
        .map_err(database)?;
    let rows = statement.query_map([], deployment_from_row).map_err(database)?;
    rows.collect::<Result<_, _>>().map_err(database)
}

pub(super) fn deployment(connection: &Connection, instance: &str) -> StoreResult<Option<DeploymentRecord>> {
    connection
        .prepare_cached("SELECT instance, status, error, updated_at, deployed_at FROM deployments WHERE instance = ?1")
        .and_then(|mut statement| statement.query_row([instance], deployment_from_row).optional())
        .map_err(database)
}

fn deployment_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeploymentRecord> {
    let status: String = row.get(1)?;
    Ok(DeploymentRecord {
        instance: row.get(0)?,
        status: status.parse::<DeploymentStatus>().map_err(|reason| corrupt(1, reason))?,
        error: row.get(2)?,
        updated_at: from_millis(row.get(3)?),
        deployed_at: row.get::<_, Option<i64>>(4)?.map(from_millis),
    })
}
