//! The `marketplace-server` binary as an operator runs a deploy that migrates
//! as a step of its own: with `DATABASE_RUN_MIGRATIONS=off` a server refuses a
//! database it would have to migrate and says what to run; `migrate` brings
//! the schema up to the build and says what it did; the server then starts.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_marketplace-server");

/// A directory of its own under the system's temporary directory, removed at
/// the end.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary, run in `dir` with `vars` and no other server setting of this
/// process's environment.
fn server(dir: &Path, vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    for (name, _) in std::env::vars() {
        if name.starts_with("DATABASE_")
            || name.starts_with("MARKETPLACE_")
            || name.starts_with("JWT_")
            || name.starts_with("MAIL")
        {
            cmd.env_remove(name);
        }
    }
    cmd.env("RUST_LOG", "warn").envs(vars.iter().copied());
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Whether `GET /readyz` on `port` answers 200.
fn ready(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

#[test]
fn a_server_that_may_not_migrate_waits_for_the_migrate_command() {
    let dir = Dir(std::env::temp_dir().join(format!(
        "marketplace-migrate-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )));
    std::fs::create_dir_all(&dir.0).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let vars = [
        ("DATABASE_URL", "sqlite://shop.db"),
        ("DATABASE_RUN_MIGRATIONS", "off"),
        ("MARKETPLACE_LISTEN", listen.as_str()),
    ];

    // Refused, with the command to run, and nothing served.
    let refused = server(&dir.0, &vars).output().unwrap();
    assert!(!refused.status.success(), "{}", text(&refused));
    let said = text(&refused);
    assert!(said.contains("marketplace-server migrate"), "{said}");
    assert!(said.contains("the database's schema is empty"), "{said}");

    // The deploy step.
    let migrated = server(&dir.0, &vars).arg("migrate").output().unwrap();
    assert!(migrated.status.success(), "{}", text(&migrated));
    let said = String::from_utf8_lossy(&migrated.stdout);
    assert!(
        said.starts_with("the schema was empty, and is now at migration "),
        "{said}"
    );
    let again = server(&dir.0, &vars).arg("migrate").output().unwrap();
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("up to date"),
        "{}",
        text(&again)
    );

    // Now the server starts, still not migrating.
    let mut child = server(&dir.0, &vars)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut up = false;
    while Instant::now() < deadline {
        if ready(port) {
            up = true;
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the server exited: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(up, "the server did not answer /readyz within 30 s");
}
