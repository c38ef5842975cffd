//! Versioned schema of the SQLite store, applied in order on open.
//!
//! `PRAGMA user_version` holds the number of applied migrations. A migration is never edited
//! once released; a change is a new entry at the end.

use rusqlite::Connection;

/// Every migration, in order.
const MIGRATIONS: &[&str] = &[
    // 1: executions, attempts, step journal and state.
    r"
    CREATE TABLE executions (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        flow TEXT NOT NULL,
        instance TEXT NOT NULL,
        status TEXT NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        due_at INTEGER NOT NULL,
        lease_owner TEXT,
        lease_until INTEGER,
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
        started_at INTEGER NOT NULL,
        finished_at INTEGER NOT NULL,
        error TEXT,
        logs TEXT NOT NULL,
        PRIMARY KEY (execution_id, number)
    ) WITHOUT ROWID;

    CREATE TABLE steps (
        execution_id TEXT NOT NULL,
        name TEXT NOT NULL,
        result TEXT NOT NULL,
        recorded_at INTEGER NOT NULL,
        PRIMARY KEY (execution_id, name)
    ) WITHOUT ROWID;

    CREATE TABLE state (
        scope TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    ",
    // 2: schedule cursors, recorded ticks and instance deployments.
    r"
    CREATE TABLE schedules (
        flow TEXT NOT NULL,
        instance TEXT NOT NULL,
        handled_until INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (flow, instance)
    ) WITHOUT ROWID;

    CREATE TABLE ticks (
        flow TEXT NOT NULL,
        instance TEXT NOT NULL,
        scheduled_at INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        execution_id TEXT,
        missed INTEGER NOT NULL DEFAULT 0,
        detail TEXT,
        recorded_at INTEGER NOT NULL,
        PRIMARY KEY (flow, instance, scheduled_at)
    ) WITHOUT ROWID;

    CREATE TABLE deployments (
        instance TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        error TEXT,
        updated_at INTEGER NOT NULL,
        deployed_at INTEGER
    ) WITHOUT ROWID;
    ",
    // 3: trigger payloads in a table of their own, written once. An execution's row is
    // rewritten when it is claimed and when an attempt finishes. Without the payload, many
    // rows share a page, so a batch of such writes touches far fewer pages.
    r"
    CREATE TABLE payloads (
        seq INTEGER PRIMARY KEY,
        payload TEXT NOT NULL
    );
    INSERT INTO payloads (seq, payload) SELECT seq, payload FROM executions;
    ALTER TABLE executions DROP COLUMN payload;

    -- Queued and running executions are found through executions_unfinished, and listing
    -- reads rows newest first by seq. Each of these indexes cost an insert when an execution
    -- was stored and more writes when it finished.
    DROP INDEX executions_running;
    DROP INDEX executions_status;
    DROP INDEX executions_flow;
    ",
    // 4: a payload text may be the public form wrapped with its body's kind (see
    // `store::payload`). The schema does not change; the version keeps binaries that cannot
    // read that wrapper from opening this store.
    "",
    // 5: failed and cancelled executions, newest first, for listings filtered by those
    // statuses. A successful execution never enters this index, so it costs nothing on the
    // path that stores and finishes most executions.
    r"
    CREATE INDEX executions_failed_or_cancelled ON executions (seq) WHERE status IN ('failed', 'cancelled');
    ",
    // 6: the executions that one execution started, for listings filtered by parent. An
    // execution started by a webhook, a schedule or the CLI has no parent and no entry here.
    r"
    CREATE INDEX executions_parent ON executions (parent_id, seq) WHERE parent_id IS NOT NULL;
    ",
    // 7: the attempt that succeeded stays in its execution's row: `attempt` is its number,
    // `updated_at` when it finished (a succeeded row is never written again),
    // `attempt_started_at` when it started and `attempt_logs` its logs, NULL for none. Failed
    // attempts keep their rows in `attempts`. The most common finish thus writes one row and
    // no index entry of `attempts`.
    r"
    ALTER TABLE executions ADD COLUMN attempt_started_at INTEGER;
    ALTER TABLE executions ADD COLUMN attempt_logs TEXT;
    ",
    // 8: one deploy or delete of an instance at a time, across processes. A row is the lock
    // of one instance, held by `owner` until `locked_until`, in milliseconds since the Unix
    // epoch. The lock of a process that ended without releasing it is free from then on.
    r"
    CREATE TABLE lifecycle_locks (
        instance TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        locked_until INTEGER NOT NULL
    );
    ",
];

/// Applies every migration the database has not seen yet, each in its own transaction.
///
/// # Errors
///
/// Returns SQLite's error, or a message when the database is newer than this binary.
pub(super) fn migrate(connection: &mut Connection) -> Result<(), String> {
    let applied: usize = connection
        .query_row("PRAGMA user_version", [], |row| row.get::<_, i64>(0))
        .map_err(|error| error.to_string())?
        .try_into()
        .map_err(|_| "negative schema version".to_owned())?;
    if applied > MIGRATIONS.len() {
        return Err(format!(
            "the database has schema version {applied}, newer than this binary's {}; upgrade the binary",
            MIGRATIONS.len()
        ));
    }

    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let transaction = connection.transaction().map_err(|error| error.to_string())?;
        transaction.execute_batch(sql).map_err(|error| format!("migration {}: {error}", index + 1))?;
        transaction
            .pragma_update(None, "user_version", (index + 1) as i64)
            .map_err(|error| error.to_string())?;
        transaction.commit().map_err(|error| error.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrate_is_idempotent() {
        let mut connection = Connection::open_in_memory().expect("opens");
        migrate(&mut connection).expect("first run");
        migrate(&mut connection).expect("second run");
        let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0)).expect("reads");
        assert_eq!(version, MIGRATIONS.len() as i64);
    }

    #[test]
    fn payloads_move_to_their_own_table() {
        let mut connection = Connection::open_in_memory().expect("opens");
        for sql in &MIGRATIONS[..2] {
            connection.execute_batch(sql).expect("applies");
        }
        connection.pragma_update(None, "user_version", 2).expect("sets");
        connection
            .execute(
                "INSERT INTO executions (id, flow, instance, status, created_at, updated_at, due_at, source, payload) \
                 VALUES ('e1', 'orders', 'acme', 'queued', 0, 0, 0, 'webhook', '{\"a\":1}')",
                [],
            )
            .expect("inserts");

        migrate(&mut connection).expect("migrates");

        let payload: String = connection
            .query_row("SELECT payload FROM payloads JOIN executions USING (seq) WHERE id = 'e1'", [], |row| row.get(0))
            .expect("reads");
        assert_eq!(payload, r#"{"a":1}"#);
    }

    /// Creates the database file `path` with the first `version` migrations applied, as a
    /// binary of that schema version left it.
    fn database_at_version(path: &std::path::Path, version: usize) -> Connection {
        let connection = Connection::open(path).expect("opens");
        for sql in &MIGRATIONS[..version] {
            connection.execute_batch(sql).expect("applies");
        }
        connection.pragma_update(None, "user_version", version as i64).expect("sets");
        connection
    }

    /// Serializes a payload in the public form, as version 2 databases store it.
    fn public_payload(n: i64) -> String {
        serde_json::to_string(&flow_core::TriggerPayload::from_json(serde_json::json!({ "n": n }))).expect("serializes")
    }

    #[tokio::test]
    async fn version_2_executions_survive_migration_3() {
        use std::sync::Arc;

        use crate::store::{
            Durability, ExecutionFilter, ExecutionStatus, InsertOutcome, NewExecution, QueuePolicies, SqliteStore, Store,
        };

        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("flows.db");
        {
            let connection = database_at_version(&path, 2);
            let rows = [
                ("queued", "queued", 0, None, Some("k1"), None, None, "webhook", 1),
                ("running", "running", 1, Some("old-worker"), None, None, None, "webhook", 2),
                ("done", "succeeded", 1, None, None, None, Some("queued"), "invoke", 3),
                ("dup", "cancelled", 0, None, None, Some("queued"), None, "webhook", 4),
                ("tick", "queued", 0, None, None, None, None, "schedule", 5),
            ];
            for (id, status, attempt, lease_owner, dedupe_key, related_id, parent_id, source, n) in rows {
                connection
                    .execute(
                        "INSERT INTO executions (id, flow, instance, status, attempt, lease_owner, lease_until, \
                         created_at, updated_at, due_at, dedupe_key, related_id, parent_id, source, payload) \
                         VALUES (?1, 'orders', 'acme', ?2, ?3, ?4, CASE WHEN ?4 IS NULL THEN NULL ELSE 0 END, \
                         ?5, ?5, ?5, ?6, ?7, ?8, ?9, ?10)",
                        rusqlite::params![id, status, attempt, lease_owner, n, dedupe_key, related_id, parent_id, source, public_payload(n)],
                    )
                    .expect("inserts");
            }
        }

        let store = SqliteStore::open(&path, Durability::Normal).expect("opens and migrates");

        for (id, n) in [("queued", 1), ("running", 2), ("done", 3), ("dup", 4), ("tick", 5)] {
            let record = store.get(id).await.expect("reads").expect("exists");
            assert_eq!(record.payload["body"]["data"]["n"], serde_json::json!(n), "{id}");
        }
        let listed = store.list(ExecutionFilter::default()).await.expect("lists");
        assert_eq!(listed.len(), 5);

        assert_eq!(store.recover(chrono::Utc::now()).await.expect("recovers"), 1);
        let now = chrono::Utc::now();
        let claimed = store
            .claim("w1", 10, now, now + chrono::Duration::minutes(1), Arc::new(QueuePolicies::default()))
            .await
            .expect("claims");
        let mut claimed: Vec<(String, String)> =
            claimed.into_iter().map(|execution| (execution.id, execution.payload)).collect();
        claimed.sort();
        assert_eq!(
            claimed,
            [
                ("queued".to_owned(), public_payload(1)),
                ("running".to_owned(), public_payload(2)),
                ("tick".to_owned(), public_payload(5)),
            ]
        );

        let duplicate = NewExecution {
            id: "again".to_owned(),
            flow: "orders".to_owned(),
            instance: "acme".to_owned(),
            payload: public_payload(6),
            created_at: now,
            dedupe_key: Some("k1".to_owned()),
            unique_request_id: None,
            parent_id: None,
            source: "webhook".to_owned(),
            claimed_by: None,
        };
        assert_eq!(
            store.insert(duplicate.clone()).await.expect("inserts"),
            InsertOutcome::Deduplicated { existing_id: "queued".to_owned() }
        );
        let fresh = NewExecution {
            id: "fresh".to_owned(),
            dedupe_key: None,
            payload: public_payload(7),
            ..duplicate
        };
        assert_eq!(store.insert(fresh).await.expect("inserts"), InsertOutcome::Inserted);
        let record = store.get("fresh").await.expect("reads").expect("exists");
        assert_eq!(record.summary.status, ExecutionStatus::Queued);
        assert_eq!(record.payload["body"]["data"]["n"], serde_json::json!(7));
        let record = store.get("again").await.expect("reads").expect("exists");
        assert_eq!(record.payload["body"]["data"]["n"], serde_json::json!(6));
    }

    #[tokio::test]
    async fn version_6_attempts_read_back_after_migration_7() {
        use crate::store::{Durability, SqliteStore, Store};

        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("flows.db");
        {
            let connection = database_at_version(&path, 6);
            connection
                .execute_batch(
                    "INSERT INTO executions (id, flow, instance, status, attempt, created_at, updated_at, due_at, source) \
                     VALUES ('done', 'orders', 'acme', 'succeeded', 2, 0, 4000, 4000, 'webhook'); \
                     INSERT INTO payloads (seq, payload) VALUES (last_insert_rowid(), '{}'); \
                     INSERT INTO attempts VALUES ('done', 1, 'failed', 1000, 2000, 'erp down', '[]'); \
                     INSERT INTO attempts VALUES ('done', 2, 'succeeded', 3000, 4000, NULL, \
                     '[{\"at\":\"1970-01-01T00:00:03Z\",\"level\":\"info\",\"message\":\"pushed\"}]');",
                )
                .expect("inserts");
        }

        let store = SqliteStore::open(&path, Durability::Normal).expect("opens and migrates");
        let record = store.get("done").await.expect("reads").expect("exists");

        let statuses: Vec<(u32, &str)> =
            record.attempt_history.iter().map(|attempt| (attempt.number, attempt.status.as_str())).collect();
        assert_eq!(statuses, vec![(1, "failed"), (2, "succeeded")]);
        assert_eq!(record.logs.len(), 1);
        assert_eq!(record.logs[0].message, "pushed");
    }

    #[test]
    fn newer_database_is_rejected() {
        let mut connection = Connection::open_in_memory().expect("opens");
        connection.pragma_update(None, "user_version", 99).expect("sets");
        let error = migrate(&mut connection).expect_err("too new");
        assert!(error.contains("schema version 99"), "{error}");
    }
}
