//! Decides, when the tests are compiled, which outside servers they can reach, so
//! that the test runner itself reports a test that needs a missing one as
//! `ignored`, with the reason, and counts it in its "N ignored" summary (a test
//! that returned early would be reported `ok`).
//!
//! For each server it declares a cfg and sets it when the server is missing and
//! `CI` is not set:
//!
//! | cfg | set when |
//! | --- | --- |
//! | `no_postgres` | `TEST_POSTGRES_URL` is unset or empty |
//! | `no_mongodb` | `TEST_MONGODB_URL` is unset or empty |
//! | `no_stripe` | `TEST_STRIPE_URL` (localstripe) is unset or empty |
//! | `no_s3` | `TEST_S3_URL` (an S3-compatible server, e.g. moto) is unset or empty |
//! | `no_haproxy` | no `haproxy` on `PATH` (Debian's package `haproxy`) |
//! | `no_smtp` | no Python with aiosmtpd: `$MARKETPLACE_TEST_PYTHON`, `python3`, `/usr/bin/python3` |
//!
//! A test that needs one carries, for example,
//! `#[cfg_attr(no_postgres, ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README")]`.
//! Under CI (`CI` set) no cfg is set: every test runs, and one whose server is
//! missing fails instead of being skipped. Cargo runs this again when one of the
//! variables changes; after installing aiosmtpd, `touch tests/build.rs`.
//!
//! The same file serves any package of the workspace whose tests need these
//! servers: copy it and keep the rows its tests use.

use std::process::{Command, Stdio};

/// The servers named by a URL variable: (cfg, variable).
const URL_SERVERS: [(&str, &str); 4] = [
    ("no_postgres", "TEST_POSTGRES_URL"),
    ("no_mongodb", "TEST_MONGODB_URL"),
    ("no_stripe", "TEST_STRIPE_URL"),
    ("no_s3", "TEST_S3_URL"),
];

/// The variable naming a Python to run the SMTP test server with.
const PYTHON_ENV: &str = "MARKETPLACE_TEST_PYTHON";

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CI");
    let ci = std::env::var_os("CI").is_some();
    for (cfg, var) in URL_SERVERS {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo::rerun-if-env-changed={var}");
        let set = std::env::var_os(var).is_some_and(|v| !v.is_empty());
        if !set && !ci {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
    println!("cargo::rustc-check-cfg=cfg(no_smtp)");
    println!("cargo::rerun-if-env-changed={PYTHON_ENV}");
    if !ci && !python_with_aiosmtpd() {
        println!("cargo::rustc-cfg=no_smtp");
    }
    println!("cargo::rustc-check-cfg=cfg(no_haproxy)");
    println!("cargo::rerun-if-env-changed=PATH");
    let haproxy = Command::new("haproxy")
        .arg("-v")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ci && !haproxy {
        println!("cargo::rustc-cfg=no_haproxy");
    }
}

/// Whether one of the Pythons the SMTP tests try can import aiosmtpd (the same
/// candidates, in the same order, as `tests/src/smtp.rs`).
fn python_with_aiosmtpd() -> bool {
    let mut candidates = std::env::var_os(PYTHON_ENV)
        .into_iter()
        .chain(["python3".into(), "/usr/bin/python3".into()]);
    candidates.any(|python| {
        Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}
