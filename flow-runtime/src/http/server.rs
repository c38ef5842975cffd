//! The accept loop that serves the router over HTTP/1.1, with a time limit on request heads and
//! a graceful stop.
//!
//! `axum::serve` installs no timer in hyper, so hyper's limit on the time to send a request
//! head does not apply there. A client could then hold a connection, and its file descriptor,
//! by sending its head slowly or sending nothing at all. This loop builds hyper's HTTP/1
//! connections itself with a timer and that limit. It serves HTTP/1.1 only: webhook senders,
//! MCP clients and reverse proxies speak it, and hyper's HTTP/2 detection reads the first bytes
//! of a connection with no time limit.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// Time a client has to send a whole request head, from the moment the server waits for it: at
/// the start of a connection and after each response on a kept-alive connection.
///
/// It is also how long an idle kept-alive connection stays open. nginx keeps idle connections
/// to an upstream server for 60 seconds by default (`keepalive_timeout` in its upstream
/// module). So with those defaults the proxy closes an idle connection first, instead of
/// sending a request on a connection that this server is closing.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(75);

/// Wait after a failed `accept`, such as when the process has run out of file descriptors,
/// before the next one.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Time that [`serve`] gives open connections to finish after the stop, by default.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Limits of the connections [`serve`] accepts.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Time a client has to send a request head; see [`HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// Time that connections get to finish their requests after the stop. Connections still
    /// open then, such as a client that sends its body slowly or reads no responses, are left
    /// to close with the process.
    pub drain_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: HEADER_READ_TIMEOUT,
            drain_timeout: DRAIN_TIMEOUT,
        }
    }
}

/// Serves `app` on every connection `listener` accepts, until `shutdown` resolves. Then it stops
/// accepting, lets each connection finish the request it is serving, closes idle ones, and
/// returns once every connection is closed or `limits.drain_timeout` has passed.
pub async fn serve(listener: TcpListener, app: Router, limits: ServerLimits, shutdown: impl Future<Output = ()>) {
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            // The client gave up before the connection was accepted; the next one is unaffected.
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                tracing::error!(%error, retry_in_ms = ACCEPT_RETRY_DELAY.as_millis(), "could not accept a connection");
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_RETRY_DELAY) => continue,
                    () = &mut shutdown => break,
                }
            }
        };

        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            match connection.await {
                Ok(()) => {}
                Err(error) if error.is_parse_version_h2() => tracing::info!(
                    %peer,
                    "closed an HTTP/2 connection without TLS: this server speaks HTTP/1.1 only; send HTTP/1.1, \
                     or put a proxy that speaks HTTP/2 in front"
                ),
                Err(error) => tracing::debug!(%error, %peer, "connection closed with an error"),
            }
        });
    }

    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            drain_timeout_seconds = limits.drain_timeout.as_secs(),
            "connections still open after the drain timeout are closed with the process"
        );
    }
}

fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(error.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset)
}
