//! Versioned schema of the PostgreSQL store, applied in order on connect.
//!
//! The tables and their meaning match the SQLite store's migrations. Instants are
//! milliseconds since the Unix epoch (`BIGINT`), as in SQLite. State maps are `JSONB` so a
//! write can merge its keys into the stored map in one statement.
//!
//! `flow_schema_migrations` lists the applied versions. It is created, and each migration runs,
//! in its own transaction under a transaction-level advisory lock keyed by the current schema, so two
//! processes that connect at the same time apply each migration once: the second waits for the
//! first to commit, then finds the version recorded. A migration is never edited once
//! released; a change is a new entry at the end.

use sqlx::postgres::PgPool;

use super::postgres::{ADVISORY_MIGRATIONS, database};
use super::{StoreError, StoreResult};

/// Every migration, in order; version N is `MIGRATIONS[N - 1]`.
const MIGRATIONS: &[&str] = &[
    // 1: executions, attempts, step journal and state.
    r"
    CREATE TABLE executions (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        flow TEXT NOT NULL,
        instance TEXT NOT NULL,
        status TEXT NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        due_at BIGINT NOT NULL,
        lease_owner TEXT,
        lease_until BIGINT,
        dedupe_key TEXT,
        unique_request_id TEXT,
        parent_id TEXT,
        related_id TEXT,
        source TEXT NOT NULL,
        payload TEXT NOT NULL,
        result TEXT,
        error TEXT
    );
    CREATE INDEX executions_due ON executions (due_at, seq) WHERE status = 'queued';
    CREATE INDEX executions_running ON executions (lease_until) WHERE status = 'running';
    CREATE INDEX executions_flow ON executions (flow, instance, seq);
    CREATE INDEX executions_unfinished ON executions (flow, instance, seq) WHERE status IN ('queued', 'running');
    CREATE INDEX executions_status ON executions (status, seq);
    CREATE INDEX executions_dedupe ON executions (flow, instance, dedupe_key) WHERE dedupe_key IS NOT NULL;
    CREATE INDEX executions_unique_request ON executions (flow, instance, unique_request_id)
        WHERE unique_request_id IS NOT NULL;

    CREATE TABLE attempts (
        execution_id TEXT NOT NULL,
        number INTEGER NOT NULL,
        status TEXT NOT NULL,
        started_at BIGINT NOT NULL,
        finished_at BIGINT NOT NULL,
        error TEXT,
        logs TEXT NOT NULL,
        PRIMARY KEY (execution_id, number)
    );

    CREATE TABLE steps (
        execution_id TEXT NOT NULL,
        name TEXT NOT NULL,
        result TEXT NOT NULL,
        recorded_at BIGINT NOT NULL,
        PRIMARY KEY (execution_id, name)
    );

    CREATE TABLE state (
        scope TEXT PRIMARY KEY,
        value JSONB NOT NULL,
        updated_at BIGINT NOT NULL
    );
    ",
    // 2: schedule cursors, recorded ticks and instance deployments.
    r"
    CREATE TABLE schedules (
        flow TEXT NOT NULL,
        instance TEXT NOT NULL,
        handled_until BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (flow, instance)
    );

    CREATE TABLE ticks (
        flow TEXT NOT NULL,
        instance TEXT NOT NULL,
        scheduled_at BIGINT NOT NULL,
        outcome TEXT NOT NULL,
        execution_id TEXT,
        missed BIGINT NOT NULL DEFAULT 0,
        detail TEXT,
        recorded_at BIGINT NOT NULL,
        PRIMARY KEY (flow, instance, scheduled_at)
    );

    CREATE TABLE deployments (
        instance TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        error TEXT,
        updated_at BIGINT NOT NULL,
        deployed_at BIGINT
    );
    ",
    // 3: payload texts may be in the compact form. The schema does not change; the version
    // keeps binaries that cannot read that form from serving this store.
    r#"
    COMMENT ON COLUMN executions.payload IS
        'trigger payload: its public JSON form, or the compact form starting with {"compact":1';
    "#,
    // 4: a payload text may be the public form wrapped with its body's kind. The schema does
    // not change; the version keeps binaries that cannot read that wrapper from serving this
    // store.
    r#"
    COMMENT ON COLUMN executions.payload IS
        'trigger payload: its public JSON form, or a form starting with {"compact":1 that keeps the body text or the body kind';
    "#,
    // 5: the executions that one execution started, for listings filtered by parent.
    r"
    CREATE INDEX executions_parent ON executions (parent_id, seq) WHERE parent_id IS NOT NULL;
    ",
    // 6: one deploy or delete of an instance at a time, across processes. A row is the lock
    // of one instance, held by `owner` until `locked_until`, in milliseconds since the Unix
    // epoch. The lock of a process that ended without releasing it is free from then on.
    r"
    CREATE TABLE lifecycle_locks (
        instance TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        locked_until BIGINT NOT NULL
    );
    ",
];

/// Applies every migration the schema has not seen yet, each in its own transaction.
///
/// # Errors
///
/// Returns [`StoreError::Database`] when a statement fails, naming the migration, or when the
/// schema is newer than this binary.
pub(super) async fn migrate(pool: &PgPool) -> StoreResult<()> {
    loop {
        let mut transaction = pool.begin().await.map_err(database)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))")
            .bind(ADVISORY_MIGRATIONS)
            .execute(&mut *transaction)
            .await
            .map_err(database)?;
        // Every start after the first would otherwise get the notice that the table exists,
        // which sqlx logs at `info`.
        sqlx::raw_sql("SET LOCAL client_min_messages = warning")
            .execute(&mut *transaction)
            .await
            .map_err(database)?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS flow_schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *transaction)
        .await
        .map_err(database)?;

        let applied: i32 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM flow_schema_migrations")
            .fetch_one(&mut *transaction)
            .await
            .map_err(database)?;
        let applied = usize::try_from(applied).map_err(|_| StoreError::Corrupt(format!("negative schema version {applied}")))?;
        if applied > MIGRATIONS.len() {
            transaction.rollback().await.map_err(database)?;
            return Err(StoreError::Database(format!(
                "the database schema has version {applied}, newer than this binary's {}; upgrade the binary",
                MIGRATIONS.len()
            )));
        }
        let Some(sql) = MIGRATIONS.get(applied) else {
            // Committing, not dropping, the transaction ends it now: a dropped transaction's
            // rollback waits until its connection is next used, holding its locks until then.
            transaction.commit().await.map_err(database)?;
            return Ok(());
        };

        let version = applied + 1;
        sqlx::raw_sql(*sql)
            .execute(&mut *transaction)
            .await
            .map_err(|error| StoreError::Database(format!("migration {version}: {error}")))?;
        sqlx::query("INSERT INTO flow_schema_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(i32::try_from(version).unwrap_or(i32::MAX))
            .bind(chrono::Utc::now().timestamp_millis())
            .execute(&mut *transaction)
            .await
            .map_err(database)?;
        transaction.commit().await.map_err(database)?;
        tracing::info!(version, "applied PostgreSQL store migration");
    }
}

#[cfg(test)]
mod tests {
    use super::super::postgres_tests::TestSchema;
    use super::*;

    #[tokio::test]
    async fn migrate_is_idempotent() {
        let Some(schema) = TestSchema::create("migrate_is_idempotent").await else {
            return;
        };
        let store = schema.open_store().await;

        migrate(store.pool()).await.expect("second run");

        let version: i32 = sqlx::query_scalar("SELECT MAX(version) FROM flow_schema_migrations")
            .fetch_one(store.pool())
            .await
            .expect("reads");
        assert_eq!(version, MIGRATIONS.len() as i32);
    }

    #[tokio::test]
    async fn concurrent_connects_apply_each_migration_once() {
        let Some(schema) = TestSchema::create("concurrent_connects_apply_each_migration_once").await else {
            return;
        };

        let stores = futures::future::join_all((0..4).map(|_| schema.try_open_store())).await;

        for store in &stores {
            assert!(store.is_ok(), "{:?}", store.as_ref().err());
        }
        let store = stores.into_iter().next().expect("four stores").expect("opens");
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM flow_schema_migrations")
            .fetch_one(store.pool())
            .await
            .expect("reads");
        assert_eq!(rows, MIGRATIONS.len() as i64);
    }

    #[tokio::test]
    async fn newer_schema_is_rejected() {
        let Some(schema) = TestSchema::create("newer_schema_is_rejected").await else {
            return;
        };
        let store = schema.open_store().await;
        sqlx::query("INSERT INTO flow_schema_migrations (version, applied_at) VALUES (99, 0)")
            .execute(store.pool())
            .await
            .expect("inserts");

        let error = schema.try_open_store().await.expect_err("too new");

        assert!(error.to_string().contains("schema has version 99"), "{error}");
    }
}
