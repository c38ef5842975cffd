//! A supplier stock API on 127.0.0.1 for tests, with the routes `supplier.rs` calls.

#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Value, json};

/// The supplier's data and the requests it received.
#[derive(Debug, Default)]
pub struct SupplierData {
    /// Stock changes as `(sku, quantity)`, with sequence numbers from 1 in order.
    pub changes: Vec<(String, u64)>,
    /// URLs of live subscriptions, by id.
    pub subscriptions: Vec<(String, String)>,
    /// Every subscription ever created.
    pub subscriptions_created: usize,
    /// Stock requests received, by their `after` value.
    pub stock_requests: Vec<u64>,
    /// When set, `GET /stock` returns 503.
    pub unavailable: bool,
}

/// A running mock supplier; it stops when the test's runtime ends.
#[derive(Clone)]
pub struct MockSupplier {
    /// Base URL, such as `http://127.0.0.1:41234`.
    pub base: String,
    /// Shared data.
    pub data: Arc<Mutex<SupplierData>>,
}

impl MockSupplier {
    /// Starts the mock on a free port of 127.0.0.1.
    pub async fn start() -> Self {
        let data = Arc::new(Mutex::new(SupplierData::default()));
        let app = Router::new()
            .route("/stock", get(stock))
            .route("/subscriptions", post(subscribe))
            .route("/subscriptions/{id}", delete(unsubscribe))
            .with_state(Arc::clone(&data));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, data }
    }

    /// Adds a stock change.
    pub fn change(&self, sku: &str, quantity: u64) {
        self.lock().changes.push((sku.to_owned(), quantity));
    }

    /// Locks the data.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, SupplierData> {
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Deserialize)]
struct StockQuery {
    after: u64,
}

async fn stock(State(data): State<Arc<Mutex<SupplierData>>>, Query(query): Query<StockQuery>) -> (StatusCode, Json<Value>) {
    let mut data = data.lock().unwrap_or_else(PoisonError::into_inner);
    data.stock_requests.push(query.after);
    if data.unavailable {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "error": "maintenance" })));
    }
    let changes: Vec<Value> = data
        .changes
        .iter()
        .enumerate()
        .map(|(index, (sku, quantity))| json!({ "sku": sku, "quantity": quantity, "seq": index as u64 + 1 }))
        .filter(|change| change["seq"].as_u64().unwrap_or_default() > query.after)
        .collect();
    (StatusCode::OK, Json(json!({ "changes": changes, "cursor": data.changes.len() })))
}

async fn subscribe(State(data): State<Arc<Mutex<SupplierData>>>, Json(body): Json<Value>) -> Json<Value> {
    let mut data = data.lock().unwrap_or_else(PoisonError::into_inner);
    data.subscriptions_created += 1;
    let id = format!("sub_{}", data.subscriptions_created);
    let url = body["url"].as_str().unwrap_or_default().to_owned();
    data.subscriptions.push((id.clone(), url));
    Json(json!({ "id": id }))
}

async fn unsubscribe(State(data): State<Arc<Mutex<SupplierData>>>, Path(id): Path<String>) -> StatusCode {
    let mut data = data.lock().unwrap_or_else(PoisonError::into_inner);
    let before = data.subscriptions.len();
    data.subscriptions.retain(|(existing, _)| *existing != id);
    if data.subscriptions.len() < before { StatusCode::NO_CONTENT } else { StatusCode::NOT_FOUND }
}
