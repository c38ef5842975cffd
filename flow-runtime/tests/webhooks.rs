//! Webhook requests end to end: parsing, answers, limits and API keys, over real HTTP.

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{Options, config, echo, flow, error_of, json_of, start, synchronous};
use flow_runtime::config::InstanceSettings;
use flow_runtime::core::{EndpointSecurity, FlowError, HttpResponse, QueueConfig, TriggerError, TriggerResult};
use flow_runtime::store::ExecutionStatus;
use futures::StreamExt as _;
use serde_json::json;

#[tokio::test]
async fn async_webhook_answers_with_a_stored_execution_id() {
    let server = start(vec![flow(config("orders"), echo)], Options::default()).await;

    let response = server
        .client
        .post(server.url("/webhooks/acme/orders"))
        .json(&json!({ "id": 7 }))
        .send()
        .await
        .expect("sends");
    assert_eq!(response.status(), 200);
    let id = json_of(response).await["executionId"].as_str().expect("id").to_owned();

    let record = server.finished(&id).await;
    assert_eq!(record.summary.status, ExecutionStatus::Succeeded);
    assert_eq!(record.result.expect("result")["data"]["body"]["data"], json!({ "id": 7 }));
}

#[tokio::test]
async fn synchronous_flow_answers_with_its_result() {
    let server = start(vec![flow(synchronous("echo"), echo)], Options::default()).await;
    let response = server
        .client
        .post(server.url("/webhooks/acme/echo"))
        .json(&json!({ "n": 1 }))
        .send()
        .await
        .expect("sends");
    assert_eq!(response.status(), 200);
    assert_eq!(json_of(response).await["body"]["data"], json!({ "n": 1 }));
}

#[tokio::test]
async fn synchronous_flow_can_answer_a_full_http_response() {
    let respond = flow(synchronous("png"), |_, _| {
        Box::pin(async {
            Ok(HttpResponse::new(201)
                .header("X-Order", "7")
                .body("image/png", vec![0x89, 0x50, 0x4e, 0x47])
                .into())
        })
    });
    let server = start(vec![respond], Options::default()).await;
    let response = server.client.post(server.url("/webhooks/acme/png")).send().await.expect("sends");
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-order"], "7");
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(response.bytes().await.expect("body").as_ref(), &[0x89, 0x50, 0x4e, 0x47]);
}

#[tokio::test]
async fn failed_synchronous_execution_answers_500_with_its_id() {
    let failing = flow(synchronous("fails"), |_, _| Box::pin(async { Err(FlowError::new("ERP is down")) }));
    let server = start(vec![failing], Options::default()).await;
    let response = server.client.post(server.url("/webhooks/acme/fails")).send().await.expect("sends");
    assert_eq!(response.status(), 500);
    let body = json_of(response).await;
    assert_eq!(body["error"], json!("ERP is down"));
    let id = body["executionId"].as_str().expect("id");
    assert_eq!(server.finished(id).await.summary.status, ExecutionStatus::Failed);
}

#[tokio::test]
async fn slow_synchronous_execution_answers_504_and_goes_on() {
    let slow = flow(synchronous("slow"), |_, _| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            Ok(json!("done").into())
        })
    });
    let options = Options {
        sync_timeout: Duration::from_millis(50),
        ..Options::default()
    };
    let server = start(vec![slow], options).await;
    let response = server.client.post(server.url("/webhooks/acme/slow")).send().await.expect("sends");
    assert_eq!(response.status(), 504);
    let id = json_of(response).await["executionId"].as_str().expect("id").to_owned();
    let record = server.finished(&id).await;
    assert_eq!(record.summary.status, ExecutionStatus::Succeeded);
}

#[tokio::test]
async fn synchronous_header_makes_an_async_flow_answer_its_result() {
    let server = start(vec![flow(config("echo"), echo)], Options::default()).await;
    let response = server
        .client
        .post(server.url("/webhooks/acme/echo"))
        .header("Flow-Synchronous", "true")
        .json(&json!({ "n": 2 }))
        .send()
        .await
        .expect("sends");
    assert_eq!(json_of(response).await["body"]["data"], json!({ "n": 2 }));
}

/// Posts `{"n": 2}` to the echo flow with `Flow-Synchronous: value`.
async fn post_with_synchronous(server: &common::TestServer, value: &str) -> reqwest::Response {
    server
        .client
        .post(server.url("/webhooks/acme/echo"))
        .header("Flow-Synchronous", value)
        .json(&json!({ "n": 2 }))
        .send()
        .await
        .expect("sends")
}

#[tokio::test]
async fn unknown_synchronous_value_creates_nothing() {
    let server = start(vec![flow(config("echo"), echo)], Options::default()).await;

    let response = post_with_synchronous(&server, "yes").await;

    assert_eq!(response.status(), 400);
    assert!(error_of(response).await.starts_with("the Flow-Synchronous header is \"yes\""));
    assert_eq!(server.execution_count().await, 0);
}

#[tokio::test]
async fn synchronous_false_answers_an_execution_id() {
    let server = start(vec![flow(config("echo"), echo)], Options::default()).await;

    let response = post_with_synchronous(&server, "False").await;

    assert_eq!(response.status(), 200);
    assert!(json_of(response).await["executionId"].is_string());
}

#[tokio::test]
async fn unknown_instance_answers_404_naming_it() {
    let server = start(vec![flow(config("orders"), echo)], Options::default()).await;
    let response = server.client.post(server.url("/webhooks/nobody/orders")).send().await.expect("sends");
    assert_eq!(response.status(), 404);
    assert_eq!(json_of(response).await["error"], json!("instance \"nobody\" not found"));
}

#[tokio::test]
async fn percent_encoded_path_segments_are_decoded() {
    let server = start(vec![flow(config("orders"), echo)], Options::default()).await;

    let response = server.client.post(server.url("/webhooks/ac%6De/or%64ers")).send().await.expect("sends");

    assert_eq!(response.status(), 200, "the decoded segments name instance acme and flow orders");
}

#[tokio::test]
async fn non_utf8_path_segment_answers_400() {
    let server = start(vec![flow(config("orders"), echo)], Options::default()).await;

    let response = server.client.post(server.url("/webhooks/%FF/orders")).send().await.expect("sends");

    assert_eq!(response.status(), 400);
    let error = error_of(response).await;
    assert!(error.ends_with("percent-encode every segment of the webhook URL's path as UTF-8"), "{error}");
}

#[tokio::test]
async fn unknown_flow_answers_404_naming_it() {
    let server = start(vec![flow(config("orders"), echo)], Options::default()).await;
    let response = server.client.post(server.url("/webhooks/acme/nothing")).send().await.expect("sends");
    assert_eq!(response.status(), 404);
    assert!(json_of(response).await["error"].as_str().expect("text").contains("\"nothing\""));
}

#[tokio::test]
async fn json_body_with_byte_order_mark_parses_and_keeps_raw_bytes() {
    let server = start(vec![flow(synchronous("echo"), echo)], Options::default()).await;
    let bytes = BASE64.decode("77u/eyJhIjoxLCJuYW1lIjoiWm/DqyJ9").expect("base64");
    let response = server
        .client
        .post(server.url("/webhooks/acme/echo"))
        .header("Content-Type", "application/json")
        .body(bytes.clone())
        .send()
        .await
        .expect("sends");
    let payload = json_of(response).await;
    assert_eq!(payload["body"]["data"], json!({ "a": 1, "name": "Zoë" }));
    assert_eq!(payload["rawBody"]["data"], json!(BASE64.encode(&bytes)));
}

/// A JSON body with a byte order mark, whitespace around it and escapes in it.
const PADDED_JSON: &[u8] = b"\xEF\xBB\xBF \n{\"total\": 12345678901234567890, \"note\": \"caf\\u00e9\"}\r\n";

/// Posts [`PADDED_JSON`] as `application/json` to `path`.
async fn send_padded_json(server: &common::TestServer, path: &str) -> reqwest::Response {
    server
        .client
        .post(server.url(path))
        .header("Content-Type", "application/json")
        .body(PADDED_JSON)
        .send()
        .await
        .expect("sends")
}

#[tokio::test]
async fn queued_execution_gets_exact_request() {
    // A sequential flow's executions are always queued, so the worker reads the stored payload.
    let mut queued = synchronous("ledger");
    queued.queue = Some(QueueConfig {
        mode: flow_runtime::core::QueueMode::Sequential,
        ..QueueConfig::default()
    });
    let server = start(vec![flow(queued, echo)], Options::default()).await;

    let response = send_padded_json(&server, "/webhooks/acme/ledger").await;

    let payload = json_of(response).await;
    assert_eq!(payload["rawBody"]["data"], json!(BASE64.encode(PADDED_JSON)));
    assert_eq!(payload["body"]["data"], json!({ "total": 12345678901234567890_u64, "note": "café" }));
}

#[tokio::test]
async fn executions_api_shows_json_bodies() {
    let server = start(vec![flow(config("orders"), echo)], Options::default()).await;
    let response = send_padded_json(&server, "/webhooks/acme/orders").await;
    let id = json_of(response).await["executionId"].as_str().expect("id").to_owned();
    server.finished(&id).await;

    let execution = json_of(server.client.get(server.url(&format!("/executions/{id}"))).send().await.expect("sends")).await;

    assert_eq!(execution["payload"]["rawBody"]["data"], json!(BASE64.encode(PADDED_JSON)));
    assert_eq!(execution["payload"]["body"]["data"], json!({ "total": 12345678901234567890_u64, "note": "café" }));
}

#[tokio::test]
async fn form_body_with_byte_order_mark_parses() {
    let server = start(vec![flow(synchronous("echo"), echo)], Options::default()).await;
    let response = server
        .client
        .post(server.url("/webhooks/acme/echo"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(BASE64.decode("77u/YT0xJmI9Mg==").expect("base64"))
        .send()
        .await
        .expect("sends");
    assert_eq!(json_of(response).await["body"]["data"], json!({ "a": "1", "b": "2" }));
}

#[tokio::test]
async fn empty_json_body_is_accepted_as_null() {
    let server = start(vec![flow(synchronous("echo"), echo)], Options::default()).await;
    let response = server
        .client
        .post(server.url("/webhooks/acme/echo"))
        .header("Content-Type", "application/json")
        .header("Content-Length", "0")
        .send()
        .await
        .expect("sends");
    assert_eq!(response.status(), 200);
    let payload = json_of(response).await;
    assert_eq!(payload["body"]["data"], json!(null));
    assert_eq!(payload["rawBody"]["data"], json!(""));
}

#[tokio::test]
async fn oversized_form_creates_nothing() {
    let server = start(vec![flow(config("orders"), echo)], Options::default()).await;
    let body = vec!["f=1"; 10_001].join("&");

    let response = server
        .client
        .post(server.url("/webhooks/acme/orders"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("sends");

    assert_eq!(response.status(), 400);
    assert!(json_of(response).await["error"].as_str().expect("text").contains("more than 10000 fields"));
    assert_eq!(server.execution_count().await, 0);
}

#[tokio::test]
async fn truncated_json_answers_400_and_creates_nothing() {
    let server = start(vec![flow(config("orders"), echo)], Options::default()).await;
    let response = server
        .client
        .post(server.url("/webhooks/acme/orders"))
        .header("Content-Type", "application/json")
        .body(BASE64.decode("eyJhIjo=").expect("base64"))
        .send()
        .await
        .expect("sends");
    assert_eq!(response.status(), 400);
    assert!(json_of(response).await["error"].as_str().expect("text").contains("JSON"));
    assert_eq!(server.execution_count().await, 0);
}

#[tokio::test]
async fn json_nested_past_the_parser_limit_answers_400() {
    let server = start(vec![flow(config("orders"), echo)], Options::default()).await;
    let body = format!("{}{}", "[".repeat(128), "]".repeat(128));

    let response = server
        .client
        .post(server.url("/webhooks/acme/orders"))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("sends");

    assert_eq!(response.status(), 400);
    assert!(json_of(response).await["error"].as_str().expect("text").contains("recursion limit exceeded"));
    assert_eq!(server.execution_count().await, 0);
}

#[tokio::test]
async fn form_body_keeps_plus_percent_and_repeated_keys() {
    let server = start(vec![flow(synchronous("echo"), echo)], Options::default()).await;
    let body = BASE64
        .decode("bWVzc2FnZT1oZWxsbyt3b3JsZCZleHByPVRoaXMrJTJCK2lzK2ErcGx1cyZ0YWc9YSZ0YWc9YiZlbXB0eT0mZmxhZw==")
        .expect("base64");
    let response = server
        .client
        .post(server.url("/webhooks/acme/echo"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("sends");
    assert_eq!(
        json_of(response).await["body"]["data"],
        json!({ "message": "hello world", "expr": "This + is a plus", "tag": ["a", "b"], "empty": "", "flag": "" })
    );
}

const TWO_MIB: usize = 2_097_152;

fn oversized_body() -> Vec<u8> {
    let mut body = b"{\"pad\":\"".to_vec();
    body.extend(std::iter::repeat_n(b'a', 3_000_000));
    body.extend(b"\"}");
    body
}

#[tokio::test]
async fn body_over_the_limit_with_content_length_answers_413() {
    let options = Options {
        body_limit: TWO_MIB,
        ..Options::default()
    };
    let server = start(vec![flow(config("orders"), echo)], options).await;
    let body = oversized_body();
    assert_eq!(body.len(), 3_000_010);
    let response = server
        .client
        .post(server.url("/webhooks/acme/orders"))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("sends");
    assert_eq!(response.status(), 413);
    assert_eq!(server.execution_count().await, 0);
}

#[tokio::test]
async fn chunked_body_over_the_limit_answers_413() {
    let options = Options {
        body_limit: TWO_MIB,
        ..Options::default()
    };
    let server = start(vec![flow(config("orders"), echo)], options).await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        oversized_body().chunks(64 * 1024).map(|chunk| Ok(chunk.to_vec())).collect();
    let response = server
        .client
        .post(server.url("/webhooks/acme/orders"))
        .header("Content-Type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .expect("sends");
    assert_eq!(response.status(), 413);
    assert_eq!(server.execution_count().await, 0);
}

#[tokio::test]
async fn slow_body_times_out() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let options = Options {
        body_timeout: Duration::from_secs(1),
        ..Options::default()
    };
    let server = start(vec![flow(config("orders"), echo)], options).await;
    let address = server.base.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&address).await.expect("connects");
    let (mut reader, mut writer) = stream.into_split();

    // One byte every 200 ms keeps each gap far below the 60 s limit between parts, while
    // the whole 40-byte body would take 8 s.
    let head = format!(
        "POST /webhooks/acme/orders HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n"
    );
    writer.write_all(head.as_bytes()).await.expect("sends the head");
    let dribble = tokio::spawn(async move {
        for _ in 0..40 {
            if writer.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let started = std::time::Instant::now();
    let mut answer = vec![0_u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), reader.read(&mut answer))
        .await
        .expect("responds before the body would be complete")
        .expect("reads");
    dribble.abort();

    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("server.body_timeout_seconds"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(4), "answered after {:?}", started.elapsed());
    assert_eq!(server.execution_count().await, 0);
}

#[tokio::test]
async fn body_exactly_at_the_limit_is_accepted() {
    let options = Options {
        body_limit: TWO_MIB,
        ..Options::default()
    };
    let server = start(vec![flow(config("orders"), echo)], options).await;
    let response = server
        .client
        .post(server.url("/webhooks/acme/orders"))
        .header("Content-Type", "application/octet-stream")
        .body(vec![7_u8; TWO_MIB])
        .send()
        .await
        .expect("sends");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn gzip_body_is_limited_by_its_decoded_size() {
    let options = Options {
        body_limit: TWO_MIB,
        ..Options::default()
    };
    let server = start(vec![flow(config("orders"), echo)], options).await;
    let compressed = gzip(&oversized_body());
    assert!(compressed.len() < TWO_MIB);
    let response = server
        .client
        .post(server.url("/webhooks/acme/orders"))
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .body(compressed)
        .send()
        .await
        .expect("sends");
    assert_eq!(response.status(), 413);
    assert_eq!(server.execution_count().await, 0);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("compresses");
    encoder.finish().expect("compresses")
}

/// Posts `{"a":1}` gzipped once to the echo flow, with one `Content-Encoding` line per coding.
async fn post_gzipped(server: &common::TestServer, codings: &[&str]) -> reqwest::Response {
    let mut headers = reqwest::header::HeaderMap::new();
    for coding in codings {
        headers.append("Content-Encoding", coding.parse().expect("valid value"));
    }
    server
        .client
        .post(server.url("/webhooks/acme/echo"))
        .header("Content-Type", "application/json")
        .headers(headers)
        .body(gzip(br#"{"a":1}"#))
        .send()
        .await
        .expect("sends")
}

/// Posts `chunks` to the echo flow as one chunked body with `coding`, 50 ms apart.
async fn post_encoded_chunks(server: &common::TestServer, coding: &str, chunks: Vec<Vec<u8>>) -> reqwest::Response {
    let stream = futures::stream::iter(chunks).then(|chunk| async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok::<_, std::io::Error>(chunk)
    });
    server
        .client
        .post(server.url("/webhooks/acme/echo"))
        .header("Content-Type", "application/json")
        .header("Content-Encoding", coding)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("sends")
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("compresses");
    encoder.finish().expect("compresses")
}

#[tokio::test]
async fn empty_gzip_request_has_an_empty_body() {
    let server = start(vec![flow(synchronous("echo"), echo)], Options::default()).await;

    let response = server
        .client
        .post(server.url("/webhooks/acme/echo"))
        .header("Content-Encoding", "gzip")
        .header("Content-Length", "0")
        .send()
        .await
        .expect("sends");

    assert_eq!(response.status(), 200);
    assert_eq!(json_of(response).await["body"]["data"], json!(null));
}

#[tokio::test]
async fn every_gzip_member_is_decoded() {
    let server = start(vec![flow(synchronous("echo"), echo)], Options::default()).await;
    let members = [gzip(br#"{"a":"#), gzip(b"1}")].concat();

    let response = post_encoded_chunks(&server, "gzip", vec![members]).await;

    assert_eq!(response.status(), 200);
    assert_eq!(json_of(response).await["body"]["data"], json!({ "a": 1 }));
}

#[tokio::test]
async fn bytes_after_gzip_are_rejected() {
    let server = start(vec![flow(synchronous("echo"), echo)], Options::default()).await;
    let body = [gzip(br#"{"a":1}"#), b"trailing".to_vec()].concat();

    let response = post_encoded_chunks(&server, "gzip", vec![body]).await;

    assert_eq!(response.status(), 400);
    assert!(error_of(response).await.contains("Content-Encoding \"gzip\""));
}

#[tokio::test]
async fn late_bytes_after_gzip_are_rejected() {
    let server = start(vec![flow(synchronous("echo"), echo)], Options::default()).await;

    let response = post_encoded_chunks(&server, "gzip", vec![gzip(br#"{"a":1}"#), b"trailing".to_vec()]).await;

    assert_eq!(response.status(), 400);
    assert!(error_of(response).await.contains("Content-Encoding \"gzip\""));
}

#[tokio::test]
async fn bytes_after_deflate_are_rejected() {
    let server = start(vec![flow(synchronous("echo"), echo)], Options::default()).await;

    let response = post_encoded_chunks(&server, "deflate", vec![zlib(br#"{"a":1}"#), b"trailing".to_vec()]).await;

    assert_eq!(response.status(), 400);
    assert!(error_of(response).await.contains("8 or more bytes follow the compressed data"));
}

#[tokio::test]
async fn chunked_deflate_body_is_decoded() {
    let server = start(vec![flow(synchronous("echo"), echo)], Options::default()).await;
    let compressed = zlib(br#"{"a":1}"#);
    let (head, tail) = compressed.split_at(4);

    let response = post_encoded_chunks(&server, "deflate", vec![head.to_vec(), tail.to_vec()]).await;

    assert_eq!(response.status(), 200);
    assert_eq!(json_of(response).await["body"]["data"], json!({ "a": 1 }));
}

#[tokio::test]
async fn content_coding_is_read_without_regard_to_case() {
    let server = start(vec![flow(synchronous("echo"), echo)], Options::default()).await;

    let response = post_gzipped(&server, &["GZIP"]).await;

    assert_eq!(response.status(), 200);
    assert_eq!(json_of(response).await["body"]["data"], json!({ "a": 1 }));
}

#[tokio::test]
async fn identity_in_a_coding_list_is_ignored() {
    let server = start(vec![flow(synchronous("echo"), echo)], Options::default()).await;

    let response = post_gzipped(&server, &["gzip, Identity"]).await;

    assert_eq!(response.status(), 200);
    assert_eq!(json_of(response).await["body"]["data"], json!({ "a": 1 }));
}

#[tokio::test]
async fn repeated_content_encoding_lines_are_one_list() {
    let server = start(vec![flow(synchronous("echo"), echo)], Options::default()).await;

    let response = post_gzipped(&server, &["gzip", "gzip"]).await;

    assert_eq!(response.status(), 415, "two codings on a body gzipped once");
    let error = error_of(response).await;
    assert!(error.starts_with("unsupported Content-Encoding \"gzip, gzip\"; send the body uncompressed, or compressed once"), "{error}");
}

fn keyed_instance() -> Vec<InstanceSettings> {
    vec![InstanceSettings {
        id: "acme".into(),
        api_keys: [("orders".to_owned(), vec!["k_test_abc123".to_owned()])].into_iter().collect(),
        ..InstanceSettings::default()
    }]
}

async fn keyed_server() -> common::TestServer {
    let mut secured = synchronous("orders");
    secured.endpoint_security = EndpointSecurity::CustomerRequired;
    let options = Options {
        instances: keyed_instance(),
        ..Options::default()
    };
    start(vec![flow(secured, echo)], options).await
}

#[tokio::test]
async fn api_key_rejections_answer_401_and_queue_nothing() {
    let server = keyed_server().await;
    let cases: [&[&str]; 4] = [&[], &["k_test_abc124"], &["wrong"], &["wrong", "k_test_abc123"]];
    for keys in cases {
        let mut request = server.client.post(server.url("/webhooks/acme/orders"));
        for key in keys {
            request = request.header("Api-Key", *key);
        }
        let response = request.send().await.expect("sends");
        assert_eq!(response.status(), 401, "keys {keys:?}");
    }
    assert_eq!(server.execution_count().await, 0);
}

#[tokio::test]
async fn api_key_in_lowercase_header_is_accepted_and_hidden_from_the_flow() {
    let server = keyed_server().await;
    for name in ["api-key", "Api-Key"] {
        let response = server
            .client
            .post(server.url("/webhooks/acme/orders"))
            .header(name, "k_test_abc123")
            .send()
            .await
            .expect("sends");
        assert_eq!(response.status(), 200);
        let payload = json_of(response).await;
        assert!(payload["headers"].get("api-key").is_none());
    }
}

#[tokio::test]
async fn flow_receives_the_instance_api_keys() {
    let server = keyed_server().await;

    let response = server
        .client
        .post(server.url("/webhooks/acme/orders"))
        .header("Api-Key", "k_test_abc123")
        .send()
        .await
        .expect("sends");

    assert_eq!(response.status(), 200);
    assert_eq!(json_of(response).await["webhookApiKeys"], json!({ "orders": ["k_test_abc123"] }));
}

#[tokio::test]
async fn latin1_text_body_is_stored_decoded() {
    let server = start(vec![flow(config("orders"), echo)], Options::default()).await;
    let response = server
        .client
        .post(server.url("/webhooks/acme/orders"))
        .header("Content-Type", "text/plain; charset=iso-8859-1")
        .body(b"caf\xE9".to_vec())
        .send()
        .await
        .expect("sends");
    let id = json_of(response).await["executionId"].as_str().expect("id").to_owned();

    let stored = server.finished(&id).await;

    assert_eq!(stored.payload["body"]["data"], json!("café"));
}

#[tokio::test]
async fn api_key_is_not_stored_with_the_execution() {
    let server = keyed_server().await;
    server
        .client
        .post(server.url("/webhooks/acme/orders"))
        .header("Api-Key", "k_test_abc123")
        .send()
        .await
        .expect("sends");
    let stored = server.executions(ExecutionStatus::Succeeded).await;
    let text = serde_json::to_string(&stored[0].payload).expect("serializes");
    assert!(!text.contains("k_test_abc123"));
}

#[tokio::test]
async fn custom_trigger_response_is_returned_and_the_execution_runs() {
    let mut triggered = flow(config("challenge"), echo);
    triggered.config.handlers.on_trigger = true;
    triggered.handlers.on_trigger = Some(|_, payload| {
        Box::pin(async move {
            let challenge = payload.body.to_value()["challenge"].clone();
            Ok(TriggerResult::new(payload).with_response(HttpResponse::json(200, &json!({ "challenge": challenge }))))
        })
    });
    let server = start(vec![triggered], Options::default()).await;
    let response = server
        .client
        .post(server.url("/webhooks/acme/challenge"))
        .json(&json!({ "challenge": "abc" }))
        .send()
        .await
        .expect("sends");
    assert_eq!(json_of(response).await, json!({ "challenge": "abc" }));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let succeeded = server.executions(ExecutionStatus::Succeeded).await;
    let queued_or_done = succeeded.len() + server.executions(ExecutionStatus::Running).await.len();
    assert_eq!(queued_or_done + server.executions(ExecutionStatus::Queued).await.len(), 1);
}

#[tokio::test]
async fn trigger_rejection_answers_its_status_and_runs_nothing() {
    let mut triggered = flow(config("signed"), echo);
    triggered.handlers.on_trigger = Some(|_, _| Box::pin(async { Err(TriggerError::unauthorized("bad signature")) }));
    let server = start(vec![triggered], Options::default()).await;
    let response = server.client.post(server.url("/webhooks/acme/signed")).send().await.expect("sends");
    assert_eq!(response.status(), 401);
    assert_eq!(json_of(response).await["error"], json!("bad signature"));
    assert_eq!(server.execution_count().await, 0);
}

#[tokio::test]
async fn duplicate_requests_are_acknowledged_with_the_matched_execution() {
    let mut deduped = config("orders");
    deduped.queue = Some(QueueConfig {
        dedupe_id_field: Some("body.data.requestId".parse().expect("valid path")),
        ..QueueConfig::default()
    });
    let slow = flow(deduped, |_, params| {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(params.trigger.body.to_value().into())
        })
    });
    let server = start(vec![slow], Options::default()).await;

    let mut answers = Vec::new();
    for body in [
        json!({ "data": { "requestId": "req-42", "n": 1 } }),
        json!({ "data": { "requestId": "req-42", "n": 2 } }),
        json!({ "data": { "requestId": "req-42", "n": 3 } }),
        json!({ "data": { "requestId": "req-43", "n": 4 } }),
        json!({ "data": {} }),
    ] {
        let response = server.client.post(server.url("/webhooks/acme/orders")).json(&body).send().await.expect("sends");
        assert_eq!(response.status(), 200);
        answers.push(json_of(response).await);
    }

    let first = answers[0]["executionId"].clone();
    assert_eq!(answers[1]["executionId"], first);
    assert_eq!(answers[1]["deduplicated"], json!(true));
    assert_eq!(answers[2]["executionId"], first);
    assert!(answers[3].get("deduplicated").is_none());
    assert!(answers[4].get("deduplicated").is_none());

    for answer in [&answers[0], &answers[3], &answers[4]] {
        server.finished(answer["executionId"].as_str().expect("id")).await;
    }
    let ran: Vec<serde_json::Value> = server
        .executions(ExecutionStatus::Succeeded)
        .await
        .into_iter()
        .map(|record| record.result.expect("result")["data"]["data"]["n"].clone())
        .collect();
    assert_eq!(ran.len(), 3);
    assert!(ran.contains(&json!(1)));
    assert!(ran.contains(&json!(4)));
    assert_eq!(server.executions(ExecutionStatus::Cancelled).await.len(), 2);
}

#[tokio::test]
async fn dedupe_ids_beyond_64_bits_are_not_duplicates() {
    let mut deduped = config("orders");
    deduped.queue = Some(QueueConfig {
        dedupe_id_field: Some("body.data.paymentId".parse().expect("valid path")),
        ..QueueConfig::default()
    });
    let slow = flow(deduped, |_, _| {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(serde_json::Value::Null.into())
        })
    });
    let server = start(vec![slow], Options::default()).await;

    let mut answers = Vec::new();
    for body in [r#"{"data":{"paymentId":100000000000000000001}}"#, r#"{"data":{"paymentId":100000000000000000000}}"#] {
        let response = server
            .client
            .post(server.url("/webhooks/acme/orders"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("sends");
        answers.push(json_of(response).await);
    }

    assert_ne!(answers[0]["executionId"], answers[1]["executionId"]);
    assert!(answers[1].get("deduplicated").is_none(), "{}", answers[1]);
}

#[tokio::test]
async fn path_fragment_and_repeated_query_parameters_reach_the_flow() {
    let server = start(vec![flow(synchronous("echo"), echo)], Options::default()).await;
    let response = server
        .client
        .get(server.url("/webhooks/acme/echo/orders/7?tag=a&tag=b&page=2"))
        .send()
        .await
        .expect("sends");
    let payload = json_of(response).await;
    assert_eq!(payload["pathFragment"], json!("orders/7"));
    assert_eq!(payload["queryParameters"], json!({ "tag": ["a", "b"], "page": "2" }));
}

#[tokio::test]
async fn payload_describes_instance_flow_and_webhook_urls() {
    let mut named = synchronous("echo");
    named.name = "Event Listener".into();
    let server = start(vec![flow(named, echo)], Options::default()).await;
    let response = server.client.post(server.url("/webhooks/acme/echo")).send().await.expect("sends");
    let payload = json_of(response).await;
    assert_eq!(payload["instance"]["id"], json!("acme"));
    assert_eq!(payload["flow"]["name"], json!("Event Listener"));
    assert!(payload["webhookUrls"]["Event Listener"].as_str().expect("url").ends_with("/webhooks/acme/echo"));
    assert!(payload["executionId"].as_str().is_some_and(|id| !id.is_empty()));
}

#[tokio::test]
async fn panicking_flow_fails_its_attempt_and_the_server_keeps_serving() {
    let panicking = flow(synchronous("panics"), |_, _| Box::pin(async { panic!("unexpected order shape") }));
    let server = start(vec![panicking, flow(synchronous("echo"), echo)], Options::default()).await;
    let response = server.client.post(server.url("/webhooks/acme/panics")).send().await.expect("sends");
    assert_eq!(response.status(), 500);
    assert!(json_of(response).await["error"].as_str().expect("text").contains("unexpected order shape"));
    let response = server.client.post(server.url("/webhooks/acme/echo")).send().await.expect("sends");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn executions_api_requires_the_admin_token_when_set() {
    let options = Options {
        admin_token: Some("admin-secret".into()),
        ..Options::default()
    };
    let server = start(vec![flow(config("orders"), echo)], options).await;
    let denied = server.client.get(server.url("/executions")).send().await.expect("sends");
    assert_eq!(denied.status(), 401);
    let allowed = server
        .client
        .get(server.url("/executions"))
        .bearer_auth("admin-secret")
        .send()
        .await
        .expect("sends");
    assert_eq!(allowed.status(), 200);
}

#[tokio::test]
async fn executions_api_shows_status_attempts_and_logs() {
    let logging = flow(config("logs"), |ctx, _| {
        Box::pin(async move {
            ctx.logger().info("sending order 7");
            Ok(json!({ "ok": true }).into())
        })
    });
    let server = start(vec![logging], Options::default()).await;
    let response = server.client.post(server.url("/webhooks/acme/logs")).send().await.expect("sends");
    let id = json_of(response).await["executionId"].as_str().expect("id").to_owned();
    server.finished(&id).await;

    let shown = json_of(server.client.get(server.url(&format!("/executions/{id}"))).send().await.expect("sends")).await;
    assert_eq!(shown["status"], json!("succeeded"));
    assert_eq!(shown["attemptHistory"][0]["number"], json!(1));
    assert_eq!(shown["logs"][0]["message"], json!("sending order 7"));
    assert_eq!(shown["result"], json!({ "data": { "ok": true } }));

    let listed = json_of(
        server
            .client
            .get(server.url("/executions?flow=logs&status=succeeded"))
            .send()
            .await
            .expect("sends"),
    )
    .await;
    assert_eq!(listed["executions"][0]["id"], json!(id));
}

#[tokio::test]
async fn unknown_execution_answers_404() {
    let server = start(vec![flow(config("orders"), echo)], Options::default()).await;
    let response = server.client.get(server.url("/executions/nope")).send().await.expect("sends");
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn non_utf8_execution_id_answers_json_400() {
    let server = start(vec![flow(config("orders"), echo)], Options::default()).await;

    let response = server.client.get(server.url("/executions/%FF")).send().await.expect("sends");

    assert_eq!(response.status(), 400);
    let error = error_of(response).await;
    assert!(error.ends_with("percent-encode the path as UTF-8"), "{error}");
}

#[tokio::test]
async fn framing_headers_from_a_flow_are_dropped() {
    let respond = flow(synchronous("framed"), |_, _| {
        Box::pin(async { Ok(HttpResponse::new(200).header("Content-Length", "1").body("text/plain", "hello").into()) })
    });
    let server = start(vec![respond], Options::default()).await;
    let response = server.client.post(server.url("/webhooks/acme/framed")).send().await.expect("sends");
    assert_eq!(response.text().await.expect("body"), "hello");
}

#[tokio::test]
async fn unknown_route_answers_json_404() {
    let server = start(vec![flow(config("orders"), echo)], Options::default()).await;
    let response = server.client.get(server.url("/webhooks/acme")).send().await.expect("sends");
    assert_eq!(response.status(), 404);
    assert!(json_of(response).await["error"].as_str().expect("text").contains("/webhooks/{instance}/{stable_key}"));
}

#[tokio::test]
async fn unsupported_content_encoding_answers_json_415() {
    let server = start(vec![flow(config("orders"), echo)], Options::default()).await;
    let response = server
        .client
        .post(server.url("/webhooks/acme/orders"))
        .header("Content-Encoding", "zstd")
        .body("x")
        .send()
        .await
        .expect("sends");
    assert_eq!(response.status(), 415);
    assert!(json_of(response).await["error"].as_str().expect("text").contains("Content-Encoding"));
}

#[tokio::test]
async fn invalid_list_query_answers_json_400() {
    let server = start(vec![flow(config("orders"), echo)], Options::default()).await;
    let response = server.client.get(server.url("/executions?limit=abc")).send().await.expect("sends");
    assert_eq!(response.status(), 400);
    assert!(json_of(response).await["error"].as_str().expect("text").contains("limit=N"));
}

#[tokio::test]
async fn list_limit_outside_its_range_answers_400() {
    let server = start(vec![flow(config("orders"), echo)], Options::default()).await;

    for limit in ["0", "1001"] {
        let response = server.client.get(server.url(&format!("/executions?limit={limit}"))).send().await.expect("sends");

        assert_eq!(response.status(), 400, "limit={limit}");
        let error = error_of(response).await;
        assert!(error.starts_with(&format!("limit \"{limit}\" is invalid")), "{error}");
    }
}

#[tokio::test]
async fn empty_list_filters_filter_nothing() {
    let server = start(vec![flow(config("orders"), echo)], Options::default()).await;
    let response = server.client.post(server.url("/webhooks/acme/orders")).send().await.expect("sends");
    let id = json_of(response).await["executionId"].clone();

    let response = server.client.get(server.url("/executions?flow=&status=&limit=")).send().await.expect("sends");

    assert_eq!(response.status(), 200);
    assert_eq!(json_of(response).await["executions"][0]["id"], id);
}

/// Posts `count` webhooks to the `orders` flow and returns their execution ids, oldest first.
async fn post_orders(server: &common::TestServer, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..count {
        let response = server.client.post(server.url("/webhooks/acme/orders")).send().await.expect("sends");
        ids.push(json_of(response).await["executionId"].as_str().expect("id").to_owned());
    }
    ids
}

async fn list_executions(server: &common::TestServer, query: &str) -> serde_json::Value {
    json_of(server.client.get(server.url(&format!("/executions{query}"))).send().await.expect("sends")).await
}

#[tokio::test]
async fn next_cursor_is_last_listed_id() {
    let server = start(vec![flow(config("orders"), echo)], Options::default()).await;
    let ids = post_orders(&server, 3).await;

    let page = list_executions(&server, "?limit=2").await;

    assert_eq!(page["nextCursor"], json!(ids[1]));
}

#[tokio::test]
async fn cursor_lists_the_next_page() {
    let server = start(vec![flow(config("orders"), echo)], Options::default()).await;
    let ids = post_orders(&server, 3).await;

    let page = list_executions(&server, &format!("?limit=2&cursor={}", ids[1])).await;

    assert_eq!(page["executions"].as_array().expect("array").len(), 1);
    assert_eq!(page["executions"][0]["id"], json!(ids[0]));
}

#[tokio::test]
async fn full_last_page_has_null_cursor() {
    let server = start(vec![flow(config("orders"), echo)], Options::default()).await;
    post_orders(&server, 2).await;

    let page = list_executions(&server, "?limit=2").await;

    assert_eq!(page["executions"].as_array().expect("array").len(), 2);
    assert_eq!(page["nextCursor"], serde_json::Value::Null);
}

#[tokio::test]
async fn unknown_cursor_answers_400() {
    let server = start(vec![flow(config("orders"), echo)], Options::default()).await;
    post_orders(&server, 1).await;

    let response = server.client.get(server.url("/executions?cursor=nope")).send().await.expect("sends");

    assert_eq!(response.status(), 400);
    let error = error_of(response).await;
    assert!(error.starts_with("cursor \"nope\" is not an execution id; pass the nextCursor"), "{error}");
}

#[tokio::test]
async fn unknown_list_parameter_answers_400() {
    let server = start(vec![flow(config("orders"), echo)], Options::default()).await;

    let response = server.client.get(server.url("/executions?stauts=failed")).send().await.expect("sends");

    assert_eq!(response.status(), 400);
    let error = error_of(response).await;
    assert!(error.starts_with("invalid query string: stauts: unknown field `stauts`"), "{error}");
}

#[tokio::test]
async fn unsupported_content_encoding_is_named() {
    let server = start(vec![flow(synchronous("orders"), echo)], Options::default()).await;

    let response = server
        .client
        .post(server.url("/webhooks/acme/orders"))
        .header("Content-Encoding", "br")
        .body("{}")
        .send()
        .await
        .expect("sends");

    let error = error_of(response).await;
    assert!(error.contains("Content-Encoding \"br\""), "{error}");
}

#[tokio::test]
async fn raw_deflate_body_error_names_zlib() {
    use std::io::Write as _;
    let server = start(vec![flow(synchronous("orders"), echo)], Options::default()).await;
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(b"{\"a\":1}").expect("compresses");
    let raw = encoder.finish().expect("compresses");

    let response = server
        .client
        .post(server.url("/webhooks/acme/orders"))
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "deflate")
        .body(raw)
        .send()
        .await
        .expect("sends");

    assert_eq!(response.status(), 400);
    let error = error_of(response).await;
    assert!(error.contains("Content-Encoding \"deflate\""), "{error}");
    assert!(error.contains("deflate means zlib-wrapped data"), "{error}");
}

#[tokio::test]
async fn trailing_slash_reaches_the_flow() {
    let server = start(vec![flow(synchronous("orders"), echo)], Options::default()).await;

    let response = server.client.post(server.url("/webhooks/acme/orders/")).json(&json!({})).send().await.expect("sends");

    assert_eq!(response.status(), 200);
    assert_eq!(json_of(response).await["pathFragment"], json!(""));
}
