//! A baseline between the bare handler and the runtime: the bare handler's JSON parse plus a
//! durable insert of the body, and nothing else.
//!
//! One writer thread commits every queued insert in one transaction to a one-table SQLite file
//! (WAL, `synchronous = FULL`, 16 KiB pages as in the runtime's store), and each request gets its
//! row id in the response after the commit.
//! This is the group commit that makes durable acknowledgement cheap, without flows, payload,
//! queue, attempt records or indexes. Its rate bounds what any acknowledgement path built on a
//! single SQLite writer can reach on the machine.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;

use anyhow::Context as _;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rusqlite::Connection;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// Path of the insert-only handler.
pub(crate) const INSERT_PATH: &str = "/insert";

/// Most inserts committed in one transaction, as in the runtime's SQLite store.
const MAX_BATCH: usize = 2048;

/// A body to insert and the channel that receives its row id, or the failure, after the commit.
type Insert = (String, oneshot::Sender<Result<i64, String>>);

/// The running handler; its SQLite file lives in `folder`, deleted on drop.
pub(crate) struct InsertOnlyServer {
    /// URL of the handler.
    pub(crate) url: String,
    _folder: tempfile::TempDir,
}

/// Creates the SQLite file in a temporary folder under `data_dir`, starts its writer thread and
/// serves the handler on 127.0.0.1.
///
/// # Errors
///
/// Returns an error when the folder or file cannot be created, the writer cannot start, or no
/// port can be bound.
pub(crate) async fn start(data_dir: &Path) -> anyhow::Result<InsertOnlyServer> {
    let folder = tempfile::Builder::new()
        .prefix("insert-only-")
        .tempdir_in(data_dir)
        .with_context(|| format!("cannot create a temporary folder in {}", data_dir.display()))?;
    let path = folder.path().join("inserts.db");
    let connection = Connection::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    connection
        .execute_batch(
            "PRAGMA page_size = 16384; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
             CREATE TABLE requests (id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
        )
        .with_context(|| format!("cannot set up {}", path.display()))?;

    let (sender, receiver) = mpsc::channel::<Insert>();
    std::thread::Builder::new()
        .name("insert-only-writer".to_owned())
        .spawn(move || write_batches(connection, &receiver))
        .context("cannot start the insert-only writer thread")?;

    let app = axum::Router::new().route(INSERT_PATH, post(insert)).with_state(sender);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("cannot bind a port on 127.0.0.1")?;
    let addr: SocketAddr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("insert-only server on {addr} stopped: {error}");
        }
    });
    Ok(InsertOnlyServer {
        url: format!("http://{addr}{INSERT_PATH}"),
        _folder: folder,
    })
}

/// Parses the body as JSON, as the bare handler does, queues its text for the writer and
/// responds with the row id once the insert is committed.
async fn insert(State(writer): State<mpsc::Sender<Insert>>, body: Bytes) -> Response {
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(parsed) => parsed,
        Err(error) => return (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
    };
    // The parse checked that the body is UTF-8.
    let text = String::from_utf8_lossy(&body).into_owned();

    let (reply, committed) = oneshot::channel();
    if writer.send((text, reply)).is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the writer thread stopped").into_response();
    }
    match committed.await {
        Ok(Ok(id)) => Json(json!({ "executionId": id.to_string(), "object": parsed.is_object() })).into_response(),
        Ok(Err(error)) => (StatusCode::SERVICE_UNAVAILABLE, error).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the writer thread stopped").into_response(),
    }
}

/// Commits every queued insert in one transaction, then replies to each, until every sender
/// is gone.
fn write_batches(mut connection: Connection, receiver: &mpsc::Receiver<Insert>) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }

        let outcome = insert_batch(&mut connection, &batch);
        for (index, (_, reply)) in batch.into_iter().enumerate() {
            let result = outcome.as_ref().map(|ids| ids[index]).map_err(Clone::clone);
            let _ = reply.send(result);
        }
    }
}

/// Inserts the batch's bodies in one transaction and returns their row ids after the commit.
fn insert_batch(connection: &mut Connection, batch: &[Insert]) -> Result<Vec<i64>, String> {
    let transaction = connection.transaction().map_err(|error| error.to_string())?;
    let mut ids = Vec::with_capacity(batch.len());
    {
        let mut statement = transaction
            .prepare_cached("INSERT INTO requests (body) VALUES (?1)")
            .map_err(|error| error.to_string())?;
        for (body, _) in batch {
            statement.execute([body]).map_err(|error| error.to_string())?;
            ids.push(transaction.last_insert_rowid());
        }
    }
    transaction.commit().map_err(|error| format!("commit failed: {error}"))?;
    Ok(ids)
}
