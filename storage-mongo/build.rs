//! Decides, when the tests are compiled, which MongoDB servers they can reach, so
//! that the test runner itself reports a test that needs a missing one as
//! `ignored`, with the reason, and counts it in its "N ignored" summary (a test
//! that returned early would be reported `ok`). The same approach as
//! `tests/build.rs` (the `marketplace-e2e` package).
//!
//! | cfg | set when |
//! | --- | --- |
//! | `no_mongodb` | `TEST_MONGODB_URL` (a replica set) is unset or empty |
//! | `no_mongodb_standalone` | `TEST_MONGODB_STANDALONE_URL` (a standalone server) is unset or empty |
//!
//! Neither is set under CI (`CI` set: every test runs, and one whose server is
//! missing fails instead of being skipped), nor when the tests start their own
//! containers (the `testcontainers` feature with `TEST_MONGODB_CONTAINER=1`).
//! A test that needs the replica set carries
//! `#[cfg_attr(no_mongodb, ignore = "needs TEST_MONGODB_URL (a MongoDB replica set), see README")]`.
//! Cargo runs this again when one of the variables changes.

/// The servers named by a URL variable: (cfg, variable).
const URL_SERVERS: [(&str, &str); 2] = [
    ("no_mongodb", "TEST_MONGODB_URL"),
    ("no_mongodb_standalone", "TEST_MONGODB_STANDALONE_URL"),
];

/// With the `testcontainers` feature, this variable set to `1` or `true` has the
/// tests start MongoDB containers (see `tests/support/mod.rs`).
const CONTAINER_ENV: &str = "TEST_MONGODB_CONTAINER";

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed={CONTAINER_ENV}");
    let ci = std::env::var_os("CI").is_some();
    let containers = std::env::var_os("CARGO_FEATURE_TESTCONTAINERS").is_some()
        && std::env::var(CONTAINER_ENV).is_ok_and(|v| v == "1" || v == "true");
    for (cfg, var) in URL_SERVERS {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo::rerun-if-env-changed={var}");
        let set = std::env::var_os(var).is_some_and(|v| !v.is_empty());
        if !set && !ci && !containers {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
