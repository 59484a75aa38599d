//! A real SMTP server for the email tests: aiosmtpd running
//! `tests/smtp/smtp_server.py` as a child process on a free loopback port, with a
//! throw-away CA and server certificate made at test time (STARTTLS) and a login
//! (AUTH, only over TLS). Every message it accepts lands as a JSON file in a
//! folder the tests read back ([`SmtpServer::received`]), and so does every
//! recipient it refuses ([`SmtpServer::refused`]).
//!
//! Without a Python that can import aiosmtpd when the tests are compiled, every
//! test that needs this server is reported `ignored` (`build.rs` sets `no_smtp`;
//! see [`crate::servers`]). When none is found at run time, [`SmtpServer::start`]
//! says so on the real stderr and returns `None` so the test can skip; under CI
//! (`CI` set) it panics instead, so CI never passes by skipping (`.ci/run`
//! installs aiosmtpd).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use marketplace_smtp::{SmtpConfig, TlsMode};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The login the server accepts.
pub const SMTP_USER: &str = "mailer@shop.test";
/// Its password.
pub const SMTP_PASSWORD: &str = "s3cret-app-password";
/// Another login, accepted with the same password when
/// [`SmtpOptions::other_logins`] names it: a second sender the server tells apart.
pub const SECOND_SMTP_USER: &str = "second-mailer@shop.test";

/// How the test server behaves.
#[derive(Clone, Debug)]
pub struct SmtpOptions {
    /// Offer and require STARTTLS (with the throw-away certificate).
    pub starttls: bool,
    /// With `starttls`: TLS from the first byte (SMTPS) instead.
    pub implicit_tls: bool,
    /// Require `AUTH` as [`SMTP_USER`] / [`SMTP_PASSWORD`].
    pub auth: bool,
    /// With `auth`: more logins accepted with [`SMTP_PASSWORD`], so that senders
    /// can be told apart by [`Received::auth_login`].
    pub other_logins: Vec<String>,
    /// Recipients starting with this get `550 5.1.1 User unknown`.
    pub reject_prefix: String,
    /// Recipients starting with this get `451 4.3.0` (try again later), every
    /// time: a message to them can never be delivered, only retried.
    pub tempfail_prefix: String,
    /// Seconds the server waits before accepting each message.
    pub delay: f64,
    /// With `auth`: hold every message, before accepting it, until this many
    /// different logins have each begun one (at most 10 s; 0: never hold). Two
    /// senders are then sending at the same time however the work fell to them.
    pub hold_until_senders: usize,
}

impl Default for SmtpOptions {
    /// STARTTLS and authentication required; `reject` addresses refused.
    fn default() -> Self {
        SmtpOptions {
            starttls: true,
            implicit_tls: false,
            auth: true,
            other_logins: Vec::new(),
            reject_prefix: "reject".to_owned(),
            tempfail_prefix: "tempfail".to_owned(),
            delay: 0.0,
            hold_until_senders: 0,
        }
    }
}

/// One message as the server received it.
#[derive(Clone, Debug, Deserialize)]
pub struct Received {
    /// Envelope sender.
    pub mail_from: String,
    /// Envelope recipients.
    pub rcpt_tos: Vec<String>,
    /// Whether the session was encrypted (STARTTLS) when the message came.
    pub tls: bool,
    /// Who was logged in, if anyone.
    pub auth_login: Option<String>,
    /// Decoded `Subject`.
    pub subject: String,
    /// `Message-ID`.
    pub message_id: String,
    /// `From` header.
    pub from: String,
    /// `To` header.
    pub to: String,
    /// Top-level content type (`multipart/alternative`).
    pub content_type: String,
    /// Decoded `text/plain` part.
    pub text: Option<String>,
    /// Decoded `text/html` part.
    pub html: Option<String>,
    /// When the server accepted it (seconds since the Unix epoch).
    pub received_at: f64,
}

/// One recipient the server refused (`550` or `451`): one delivery attempt that
/// failed.
#[derive(Clone, Debug, Deserialize)]
pub struct Refusal {
    /// The refused address.
    pub rcpt: String,
    /// The reply code (`550`, `451`).
    pub code: u16,
    /// Who was logged in, if anyone.
    pub login: Option<String>,
    /// When (seconds since the Unix epoch, the clock of [`Received::received_at`]).
    pub at: f64,
}

impl Received {
    /// The outbox id in the `Message-ID` (`<id@domain>`).
    pub fn outbox_id(&self) -> &str {
        self.message_id
            .trim_start_matches('<')
            .split('@')
            .next()
            .unwrap_or_default()
    }

    /// The text part (empty when missing).
    pub fn text(&self) -> &str {
        self.text.as_deref().unwrap_or_default()
    }

    /// The HTML part (empty when missing).
    pub fn html(&self) -> &str {
        self.html.as_deref().unwrap_or_default()
    }
}

/// A running (or stopped) aiosmtpd server.
pub struct SmtpServer {
    /// Its loopback port; stays the same across [`SmtpServer::stop`] and
    /// [`SmtpServer::start_again`].
    pub port: u16,
    /// The CA that signed its certificate (PEM).
    pub ca_pem: String,
    /// How it behaves; change it and call [`SmtpServer::start_again`].
    pub options: SmtpOptions,
    python: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("smtp/smtp_server.py")
}

/// A Python that can import aiosmtpd: `MARKETPLACE_TEST_PYTHON`, `python3`, or
/// the system's `/usr/bin/python3` (where Debian's `python3-aiosmtpd` installs).
fn python() -> Option<PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let candidates = std::env::var_os("MARKETPLACE_TEST_PYTHON")
                .map(PathBuf::from)
                .into_iter()
                .chain([PathBuf::from("python3"), PathBuf::from("/usr/bin/python3")]);
            for p in candidates {
                let ok = std::process::Command::new(&p)
                    .args(["-c", "import aiosmtpd"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if ok {
                    return Some(p);
                }
            }
            None
        })
        .clone()
}

/// The name of the running test: the test harness names each test's thread after it.
fn current_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("an SMTP test")
        .to_owned()
}

/// A throw-away CA and a server certificate it signed for `127.0.0.1` and
/// `localhost`: (CA PEM, server certificate PEM, server key PEM).
fn certificates() -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Marketplace test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "smtp.shop.test");
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

impl SmtpServer {
    /// Starts a server with `options` on a free port; `None` (after saying so
    /// loudly) when Python or aiosmtpd is missing outside CI.
    pub async fn start(options: SmtpOptions) -> Option<SmtpServer> {
        let Some(python) = python() else {
            crate::servers::skipped(
                &current_test(),
                "no Python with aiosmtpd found (tried $MARKETPLACE_TEST_PYTHON, python3, /usr/bin/python3); \
                 install it with `apt-get install python3-aiosmtpd` or `pip install aiosmtpd` to run the SMTP tests",
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, cert, key) = certificates();
        std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
        std::fs::write(dir.path().join("key.pem"), key).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = SmtpServer {
            port,
            ca_pem,
            options,
            python,
            dir,
            child: None,
        };
        server.spawn().await;
        Some(server)
    }

    fn maildir(&self) -> PathBuf {
        self.dir.path().join("received")
    }

    fn refused_dir(&self) -> PathBuf {
        self.dir.path().join("refused")
    }

    async fn spawn(&mut self) {
        let mut cmd = Command::new(&self.python);
        cmd.arg(script())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--maildir")
            .arg(self.maildir())
            .arg("--refused-dir")
            .arg(self.refused_dir())
            .args(["--reject-prefix", &self.options.reject_prefix])
            .args(["--tempfail-prefix", &self.options.tempfail_prefix])
            .args(["--delay", &self.options.delay.to_string()])
            .args([
                "--hold-until-senders",
                &self.options.hold_until_senders.to_string(),
            ]);
        if self.options.starttls {
            cmd.arg("--cert")
                .arg(self.dir.path().join("cert.pem"))
                .arg("--key")
                .arg(self.dir.path().join("key.pem"));
            if self.options.implicit_tls {
                cmd.arg("--implicit-tls");
            }
        }
        if self.options.auth {
            cmd.args(["--user", SMTP_USER, "--password", SMTP_PASSWORD]);
            for login in &self.options.other_logins {
                cmd.args(["--user", login]);
            }
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await;
        match ready {
            Ok(Ok(Some(line))) if line.starts_with("READY") => {}
            other => panic!("the SMTP test server did not start: {other:?}"),
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
    }

    /// Stops the server (an outage): connections are refused until
    /// [`SmtpServer::start_again`]. What it received stays readable.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    /// Starts the server again on the same port, with the current options.
    pub async fn start_again(&mut self) {
        self.stop().await;
        self.spawn().await;
    }

    /// Every message received so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        read_records(&self.maildir())
    }

    /// Every recipient refused so far, oldest first.
    pub fn refused(&self) -> Vec<Refusal> {
        read_records(&self.refused_dir())
    }

    /// Waits until at least `n` messages arrived (panics after `within`).
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {n} messages at the SMTP server within {within:?}, got {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The `MAIL*` variables that point a `marketplace-server` process at this
    /// server, logged in as `login` (also the sender) when it requires a login:
    /// `MAIL_SERVER` and `MAIL_PORT` on loopback, STARTTLS or TLS from the first
    /// byte as the server speaks, and the throw-away CA as `MAIL_CA_CERT`.
    pub fn mail_env(&self, login: &str) -> Vec<(&'static str, String)> {
        let ca = self.dir.path().join("ca.pem");
        std::fs::write(&ca, &self.ca_pem).unwrap();
        let mut vars = vec![
            ("MAIL", login.to_owned()),
            ("MAIL_SERVER", "127.0.0.1".to_owned()),
            ("MAIL_PORT", self.port.to_string()),
            (
                "MAIL_STARTTLS",
                (self.options.starttls && !self.options.implicit_tls).to_string(),
            ),
            (
                "MAIL_SSL_TLS",
                (self.options.starttls && self.options.implicit_tls).to_string(),
            ),
            ("MAIL_CA_CERT", ca.display().to_string()),
        ];
        if self.options.auth {
            vars.push(("MAIL_PASSWORD", SMTP_PASSWORD.to_owned()));
        }
        vars
    }

    /// How a mailer reaches it: `127.0.0.1:<port>`, STARTTLS required when the
    /// server offers it, logged in when it requires it, trusting the throw-away
    /// CA (verification stays on).
    pub fn config(&self) -> SmtpConfig {
        let base = if self.options.auth {
            SmtpConfig::new(SMTP_USER, SMTP_PASSWORD).unwrap()
        } else {
            SmtpConfig::relay("127.0.0.1", self.port, SMTP_USER).unwrap()
        };
        base.with_server("127.0.0.1", self.port)
            .with_tls(match (self.options.starttls, self.options.implicit_tls) {
                (true, true) => TlsMode::Implicit,
                (true, false) => TlsMode::StartTls,
                (false, _) => TlsMode::None,
            })
            .trusting_pem(self.ca_pem.clone())
            .with_timeout(Duration::from_secs(10))
    }
}

/// The JSON records in `dir`, oldest first (their names start with the time).
fn read_records<T: serde::de::DeserializeOwned>(dir: &Path) -> Vec<T> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}
