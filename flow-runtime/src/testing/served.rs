//! A built integration binary serving on a local port, for end-to-end tests.
//!
//! ```ignore
//! use flow_runtime::testing::ServedBinary;
//!
//! #[tokio::test]
//! async fn health_answers() {
//!     let folder = tempfile::tempdir().unwrap();
//!     let server = ServedBinary::builder(env!("CARGO_BIN_EXE_orders"))
//!         .config("flows.toml")
//!         .log(folder.path().join("serve.log"))
//!         .start()
//!         .await;
//!     let health = reqwest::get(server.url("/health")).await.unwrap();
//!     assert_eq!(health.status(), 200);
//! }
//! ```

use std::ffi::OsString;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::processes;

/// Maximum wait for `/health` to respond with 200 after the binary starts.
const HEALTH_DEADLINE: Duration = Duration::from_secs(20);

/// Maximum wait for one `/health` response.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Pause between two `/health` requests.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Times a server is started on a new free port when it could not listen on the last one.
const PORT_ATTEMPTS: usize = 3;

/// Returns a port on 127.0.0.1 that was free a moment ago. Another process may take it
/// before the server binds it.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds an ephemeral port on 127.0.0.1");
    listener.local_addr().expect("has a local address").port()
}

/// Settings for starting a [`ServedBinary`].
#[derive(Debug, Clone)]
pub struct ServedBinaryBuilder {
    binary: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    current_dir: Option<PathBuf>,
    port: Option<u16>,
    log: Option<PathBuf>,
}

impl ServedBinaryBuilder {
    /// Adds arguments after `serve --addr 127.0.0.1:PORT`, such as `["--config", PATH]`.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Passes `--config PATH`, the server's config file.
    #[must_use]
    pub fn config(self, path: impl AsRef<Path>) -> Self {
        self.args([OsString::from("--config"), path.as_ref().as_os_str().to_owned()])
    }

    /// Sets an environment variable of the server. The server does not inherit the test's
    /// `FLOW_*` variables, so they cannot override the test's settings.
    #[must_use]
    pub fn env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((name.into(), value.into()));
        self
    }

    /// Runs the server in `folder`, against which relative paths in its arguments resolve.
    #[must_use]
    pub fn current_dir(mut self, folder: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(folder.into());
        self
    }

    /// Serves on `port` instead of a free port picked at start, such as to restart a server
    /// where its clients expect it.
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Writes the server's standard error, its log, to `path` instead of discarding it.
    #[must_use]
    pub fn log(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = Some(path.into());
        self
    }

    /// Starts the binary and waits until `/health` responds with 200. On a picked port, a
    /// server that exits during startup, such as one whose port was taken meanwhile, is
    /// started again on another free port, up to three times.
    ///
    /// # Panics
    ///
    /// Panics, with the server's log when there is one, when the binary cannot start, exits
    /// during startup on every attempt, or does not respond within 20 seconds.
    pub async fn start(self) -> ServedBinary {
        let attempts = if self.port.is_some() { 1 } else { PORT_ATTEMPTS };
        for _ in 0..attempts {
            let port = self.port.unwrap_or_else(free_port);
            let mut server = self.spawn(port);
            if server.wait_until_healthy().await {
                return server;
            }
        }
        let noun = if attempts == 1 { "attempt" } else { "attempts" };
        panic!(
            "{} stopped during startup on {attempts} {noun}; log:\n{}",
            self.binary.display(),
            self.log.as_deref().map(read_text).unwrap_or_default()
        );
    }

    fn spawn(&self, port: u16) -> ServedBinary {
        let stderr = match &self.log {
            Some(path) => Stdio::from(File::create(path).unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()))),
            None => Stdio::null(),
        };
        let addr = format!("127.0.0.1:{port}");
        let mut command = Command::new(&self.binary);
        command
            .args(["serve", "--addr", &addr])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("FLOW_") {
                command.env_remove(name);
            }
        }
        command.envs(self.envs.iter().map(|(name, value)| (name, value)));
        if let Some(folder) = &self.current_dir {
            command.current_dir(folder);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", self.binary.display()));
        ServedBinary {
            child,
            port,
            log: self.log.clone(),
        }
    }
}

/// A built integration binary running `serve` on 127.0.0.1, stopped with SIGKILL when dropped.
///
/// The binary may be a wrapper, such as a script that starts the server without `exec`: on
/// Linux the server may then be any process the binary started, and stopping the binary
/// stops those processes too.
#[derive(Debug)]
pub struct ServedBinary {
    child: Child,
    port: u16,
    log: Option<PathBuf>,
}

impl ServedBinary {
    /// Creates the settings to start `binary`, such as `env!("CARGO_BIN_EXE_orders")`.
    pub fn builder(binary: impl AsRef<Path>) -> ServedBinaryBuilder {
        ServedBinaryBuilder {
            binary: binary.as_ref().to_path_buf(),
            args: Vec::new(),
            envs: Vec::new(),
            current_dir: None,
            port: None,
            log: None,
        }
    }

    /// Returns the base URL, `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Returns the URL of `path`, which starts with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// Returns the port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns the process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Returns the server's log so far, or an empty text when it is discarded.
    pub fn log(&self) -> String {
        self.log.as_deref().map(read_text).unwrap_or_default()
    }

    /// Sends SIGKILL and waits for the exit.
    ///
    /// # Panics
    ///
    /// Panics when the signal cannot be sent or the exit cannot be read.
    pub fn kill(&mut self) -> ExitStatus {
        processes::signal("KILL", &processes::descendants(self.child.id()));
        self.child.kill().expect("sends SIGKILL to the server");
        self.child.wait().expect("waits for the killed server")
    }

    /// Sends SIGTERM, through the `kill` command, and waits up to `deadline` for the exit.
    ///
    /// # Panics
    ///
    /// Panics when `kill` fails or the server is still running after `deadline`.
    pub async fn terminate(&mut self, deadline: Duration) -> ExitStatus {
        let pid = self.child.id();
        let mut pids = processes::descendants(pid);
        pids.push(pid);
        assert!(processes::signal("TERM", &pids), "kill -s TERM {pids:?} failed");

        let started = Instant::now();
        while started.elapsed() < deadline {
            if let Some(status) = self.child.try_wait().expect("polls the server") {
                return status;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        panic!("the server did not exit within {deadline:?} of SIGTERM; log:\n{}", self.log());
    }

    /// Polls `/health` until it responds with 200. Returns `false` when the process exits
    /// first, and panics when it still has not responded after [`HEALTH_DEADLINE`].
    async fn wait_until_healthy(&mut self) -> bool {
        let started = Instant::now();
        loop {
            if self.child.try_wait().expect("polls the server").is_some() {
                return false;
            }
            if let Some(pid) = health_pid(self.port).await
                && (pid == self.child.id() || processes::descendants(self.child.id()).contains(&pid))
            {
                return true;
            }
            assert!(
                started.elapsed() < HEALTH_DEADLINE,
                "no 200 from {} within {HEALTH_DEADLINE:?}; log:\n{}",
                self.url("/health"),
                self.log()
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for ServedBinary {
    /// Kills the server. During a failing test's panic, prints the server's log first, which
    /// its temporary folder may not keep.
    fn drop(&mut self) {
        processes::signal("KILL", &processes::descendants(self.child.id()));
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking()
            && let Some(path) = &self.log
        {
            eprintln!("log of the server at {} ({}):\n{}", self.base_url(), path.display(), read_text(path));
        }
    }
}

/// Sends `GET /health` over HTTP/1.1 and returns the process id of a 200 response within
/// [`PROBE_TIMEOUT`]. The caller checks that the id is its server's, because another process
/// may respond on the port where the server could not bind. A server that has bound its port
/// but does not accept yet, such as one that is still recovering its store, leaves the probe
/// unanswered.
async fn health_pid(port: u16) -> Option<u32> {
    tokio::time::timeout(PROBE_TIMEOUT, probe_health(port)).await.ok().flatten()
}

async fn probe_health(port: u16) -> Option<u32> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let request = format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;

    // The response is small, and the limit keeps a stranger on the port from sending without end.
    let mut response = Vec::new();
    stream.take(HEALTH_RESPONSE_LIMIT).read_to_end(&mut response).await.ok()?;
    if !response.starts_with(b"HTTP/1.1 200") {
        return None;
    }
    let body = response.windows(4).position(|window| window == b"\r\n\r\n").map_or(&[][..], |end| &response[end + 4..]);
    let health: serde_json::Value = serde_json::from_slice(body).ok()?;
    health["pid"].as_u64().and_then(|pid| u32::try_from(pid).ok())
}

/// Maximum bytes read of a `/health` response.
const HEALTH_RESPONSE_LIMIT: u64 = 16 * 1024;

fn read_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::ServedBinary;

    #[tokio::test]
    #[should_panic(expected = "stopped during startup on 3 attempts")]
    async fn exiting_binary_fails_the_start() {
        ServedBinary::builder("/bin/false").start().await;
    }

    /// Writes an executable shell script `fake-serve` with `body` into `folder`.
    fn fake_binary(folder: &std::path::Path, body: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt as _;

        let path = folder.join("fake-serve");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("writes the script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("makes the script executable");
        path
    }

    #[tokio::test]
    #[should_panic(expected = "no 200 from")]
    async fn silent_listener_times_out_the_start() {
        let folder = tempfile::tempdir().expect("temp dir");
        // A bound port whose connections are never accepted, like a server still recovering
        // its store between binding and serving.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        let port = listener.local_addr().expect("address").port();
        let binary = fake_binary(folder.path(), "exec sleep 120");

        let start = ServedBinary::builder(binary).port(port).start();
        let started = tokio::time::timeout(std::time::Duration::from_secs(60), start).await;

        assert!(started.is_ok(), "start was still waiting for /health 60 s after its 20 s deadline");
    }

    #[tokio::test]
    #[should_panic(expected = "stopped during startup on 1 attempt;")]
    async fn other_process_on_the_port_is_not_the_server() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        let folder = tempfile::tempdir().expect("temp dir");
        // Another process serves /health on the port, so the binary cannot bind it and exits.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = [0_u8; 1024];
                let _ = stream.read(&mut request).await;
                let body = r#"{"status":"ok","pid":1}"#;
                let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        let binary = fake_binary(folder.path(), "exec sleep 1");

        ServedBinary::builder(binary).port(port).start().await;
    }

    #[tokio::test]
    async fn server_behind_a_wrapper_is_accepted_and_stopped() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        let folder = tempfile::tempdir().expect("temp dir");
        let pid_file = folder.path().join("server.pid");
        // The wrapper starts the stand-in server as its child and waits for it, as a script
        // without `exec` does. The test's listener serves /health with that child's id.
        let binary = fake_binary(folder.path(), &format!("sleep 60 &\necho $! > '{}'\nwait", pid_file.display()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let port = listener.local_addr().expect("address").port();
        let served_pid_file = pid_file.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = [0_u8; 1024];
                let _ = stream.read(&mut request).await;
                let Some(pid) = std::fs::read_to_string(&served_pid_file).ok().and_then(|text| text.trim().parse::<u32>().ok()) else {
                    let _ = stream.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                    continue;
                };
                let body = format!(r#"{{"status":"ok","pid":{pid}}}"#);
                let response = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                let _ = stream.write_all(response.as_bytes()).await;
            }
        });

        let server = ServedBinary::builder(binary).port(port).start().await;
        let server_pid = std::fs::read_to_string(&pid_file).expect("reads the pid").trim().to_owned();
        drop(server);

        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while is_alive(&server_pid) && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(!is_alive(&server_pid), "process {server_pid} outlived its ServedBinary");
    }

    /// Reports whether process `pid` exists and has not exited. An exited process that its
    /// parent has not reaped yet shows state `Z` in `/proc/PID/stat`.
    fn is_alive(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| stat.rsplit(')').next().map(|fields| !fields.trim_start().starts_with('Z')))
            .unwrap_or(false)
    }

    #[tokio::test]
    #[should_panic(expected = "serve: No such file")]
    async fn start_failure_shows_the_log() {
        let folder = tempfile::tempdir().expect("temp dir");

        // `sh serve --addr ...` reports on standard error that it cannot open a script `serve`.
        ServedBinary::builder("/bin/sh").log(folder.path().join("serve.log")).start().await;
    }
}
