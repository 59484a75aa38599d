//! Marketplace servers in OS processes of their own, for what one process cannot
//! show: a server killed with SIGKILL and restarted on its database (`crash.rs`),
//! two servers whose mail workers share one database (`email.rs`).
//!
//! The test binary runs itself again with only its ignored `server_process` test
//! selected. That test calls [`serve`], which reads its settings from the
//! environment exactly as the `marketplace-server` binary does
//! (`Settings::from_env`), so a test configures its processes with the
//! documented variables (`DATABASE_URL`, `MAIL`, `MARKETPLACE_OUTBOX_POLL_MS`...).
//! Each test file that starts processes declares that entry point:
//!
//! ```ignore
//! #[tokio::test]
//! #[ignore = "the server process the tests of this file start"]
//! async fn server_process() {
//!     marketplace_e2e::process::serve().await;
//! }
//! ```

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use marketplace_core::HashCost;

use crate::Api;

/// Set in a server process's environment; [`serve`] does nothing without it, so
/// `cargo test -- --ignored` does not start a server that never stops.
const CHILD: &str = "MARKETPLACE_E2E_SERVER_PROCESS";

/// The JWT secret every server process signs with (`JWT_SECRET`), for tests that
/// also work on the database through a `Marketplace` of their own.
pub const SECRET: &str = "process-test-secret-of-at-least-32-bytes";

/// The body of the `server_process` test: serves with the settings of the
/// environment (and cheap password hashing, which no variable sets) until the
/// process is killed; returns at once when not started by
/// [`ServerProcess::start`].
pub async fn serve() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let mut settings = server_warp::Settings::from_env().unwrap();
    settings.hash_cost = HashCost::FAST_INSECURE;
    server_warp::run(settings, std::future::pending())
        .await
        .unwrap();
}

/// Whether the variable `name` configures a server: the parent's own (a
/// developer's `DATABASE_URL` or `MAIL`) must not leak into a server process.
fn configures_a_server(name: &str) -> bool {
    name.starts_with("MARKETPLACE_")
        || name.starts_with("MAIL")
        || name.starts_with("DATABASE_")
        || name.starts_with("AWS_")
        || name.starts_with("STRIPE_")
        || name.starts_with("JWT_")
}

/// A free loopback port (free when asked: a test binds it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server in a process of its own; killed (SIGKILL) when dropped. Its HTTP
/// client is reached through `Deref` (`server.post(...)`, `server.base`).
pub struct ServerProcess {
    /// The server's HTTP client.
    pub api: Api,
    child: Child,
}

impl std::ops::Deref for ServerProcess {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl ServerProcess {
    /// Starts a server process listening on `127.0.0.1:port`, signing with
    /// [`SECRET`], configured by `vars` (the variables of the
    /// `marketplace-server` binary) and by no other server variable of this
    /// process's environment; returns once it answers `/readyz`.
    pub async fn start(port: u16, vars: &[(&str, String)]) -> ServerProcess {
        let mut vars = vars.to_vec();
        vars.insert(0, ("JWT_SECRET", SECRET.to_owned()));
        // Required with a shared database: by default a process names itself.
        if !vars.iter().any(|(k, _)| *k == "MARKETPLACE_PUBLIC_URL") {
            vars.insert(
                0,
                ("MARKETPLACE_PUBLIC_URL", format!("http://127.0.0.1:{port}")),
            );
        }
        ServerProcess::spawn(port, &vars, None).await
    }

    /// Starts a server process as a newcomer runs it: in `dir` as its working
    /// directory, with no configuration but the address to listen on
    /// (`127.0.0.1:port`); returns once it answers `/readyz`.
    pub async fn start_unconfigured(dir: &std::path::Path, port: u16) -> ServerProcess {
        ServerProcess::spawn(port, &[], Some(dir)).await
    }

    async fn spawn(
        port: u16,
        vars: &[(&str, String)],
        dir: Option<&std::path::Path>,
    ) -> ServerProcess {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        if let Some(dir) = dir {
            cmd.current_dir(dir);
        }
        cmd.args([
            "--ignored",
            "--exact",
            "server_process",
            "--nocapture",
            "--test-threads=1",
        ]);
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(configures_a_server) {
                cmd.env_remove(name);
            }
        }
        cmd.env(CHILD, "1")
            .env("MARKETPLACE_LISTEN", format!("127.0.0.1:{port}"));
        for (name, value) in vars {
            cmd.env(name, value);
        }
        // The test harness's chatter goes nowhere; a panic of the server (bad
        // settings) shows on stderr.
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the server process exited before it was ready: {status}");
            }
            if http
                .get(format!("{base}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return ServerProcess {
                    api: Api { base, http },
                    child,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the server process did not become ready");
    }

    /// SIGKILL: the process ends at once, wherever it is.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Already gone after `kill`; a second kill only fails.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
