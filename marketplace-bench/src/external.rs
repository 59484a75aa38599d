//! External mode: the server under test is the real `marketplace-server` binary in
//! a process of its own, started with its default configuration and logging, and
//! the bare warp baseline is a process of its own too, so both sides of every
//! ratio pay for crossing processes as a user's deployment does.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::AsyncBufReadExt;

/// The hidden flag that turns this binary into the bare warp baseline process.
pub const BARE_WARP_FLAG: &str = "--serve-bare-warp";

/// A child process, killed when dropped.
pub struct Child {
    child: tokio::process::Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where its standard output and error go.
    pub log: Option<PathBuf>,
}

impl Child {
    /// Peak resident set of the process, KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        peak_rss_kib(&self.child.id()?.to_string())
    }

    /// Stops the process as an operator does (SIGTERM, so the server drains and
    /// reports its dropped log lines), killing it after 10 s.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = tokio::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            self.child.start_kill()?;
            self.child.wait().await?;
        }
        Ok(())
    }
}

/// Peak resident set (`VmHWM`) of the process `pid` (`self` for this one), KiB.
pub fn peak_rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The `marketplace-server` binary: `explicit`, or the one built beside this
/// benchmark (`cargo build --release -p server-warp`).
pub fn server_binary(explicit: Option<&Path>) -> Result<PathBuf> {
    let path = match explicit {
        Some(p) => p.to_owned(),
        None => std::env::current_exe()?
            .parent()
            .context("the benchmark binary has no folder")?
            .join("marketplace-server"),
    };
    if !path.is_file() {
        bail!(
            "no server binary at {}: build it first with `cargo build --release -p server-warp`, or name one with --server-bin",
            path.display()
        );
    }
    Ok(path)
}

/// A loopback port free right now.
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Starts `binary` on `database_url` with nothing but the settings a deployment
/// must give (where to listen, the database, the signing secret, the public URL
/// a shared database requires) and `extra` (`KEY=VALUE`), its output written to
/// `dir/server.log`; returns once `/healthz` answers.
pub async fn start_server(
    binary: &Path,
    dir: &Path,
    database_url: &str,
    jwt_secret: &str,
    pool: u32,
    extra: &[(String, String)],
) -> Result<Child> {
    let port = free_port()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let log_path = dir.join("server.log");
    let log = std::fs::File::create(&log_path)?;
    let mut cmd = tokio::process::Command::new(binary);
    // A clean environment: the server's defaults, not this shell's settings.
    cmd.env_clear()
        .envs(std::env::vars().filter(|(k, _)| k == "PATH" || k == "HOME"))
        .env("MARKETPLACE_LISTEN", addr.to_string())
        .env("DATABASE_URL", database_url)
        .env("DATABASE_MAX_CONNECTIONS", pool.to_string())
        .env("JWT_SECRET", jwt_secret)
        .env("MARKETPLACE_PUBLIC_URL", "http://marketplace.bench")
        .envs(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            bail!("the server exited ({status}) before answering; its log:\n{log}");
        }
        if let Ok(r) = http.get(format!("http://{addr}/healthz")).send().await
            && r.status().is_success()
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("the server did not answer /healthz within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Child {
        child,
        addr,
        log: Some(log_path),
    })
}

/// Starts this binary as the bare warp baseline, in a process of its own.
pub async fn start_bare_warp() -> Result<Child> {
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg(BARE_WARP_FLAG)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    tokio::io::BufReader::new(stdout)
        .read_line(&mut line)
        .await?;
    let addr = line
        .trim()
        .parse()
        .with_context(|| format!("the bare warp process said {line:?}"))?;
    Ok(Child {
        child,
        addr,
        log: None,
    })
}

/// The bare warp process: serves until killed, after printing its address.
pub async fn serve_bare_warp() -> Result<()> {
    let addr = crate::baseline::bare_warp().await?;
    println!("{addr}");
    std::future::pending::<()>().await;
    Ok(())
}
