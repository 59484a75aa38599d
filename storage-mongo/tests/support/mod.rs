//! Where the tests find a MongoDB server: `TEST_MONGODB_URL` (a replica set)
//! and `TEST_MONGODB_STANDALONE_URL` (a standalone server), or, with the
//! `testcontainers` feature and `TEST_MONGODB_CONTAINER=1`, real MongoDB
//! containers started for the run.
//!
//! Without them when the tests were compiled, `build.rs` sets `no_mongodb` /
//! `no_mongodb_standalone` and the tests that need them are reported `ignored`.
//! A test compiled with them and run without them skips after [`skipped`] said
//! so, or fails under CI (`CI` set).
#![allow(dead_code)]

/// Prefix of every database the tests create; a run drops the leftovers of
/// earlier runs that match it before it starts.
pub const TEST_DB_PREFIX: &str = "mkt_conformance_";

/// The URL of a replica set to test against, or `None` (after saying why) to
/// skip.
pub fn replica_set_url() -> Option<String> {
    if let Some(url) = url_from("TEST_MONGODB_URL") {
        return Some(url);
    }
    #[cfg(feature = "testcontainers")]
    if container_requested() {
        return Some(containers::replica_set());
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    skipped(
        &ONCE,
        "TEST_MONGODB_URL is not set, so there is no MongoDB replica set to test against. \
         Set it (e.g. TEST_MONGODB_URL=mongodb://127.0.0.1:27017/?directConnection=true), \
         or build with --features testcontainers and set TEST_MONGODB_CONTAINER=1 on a \
         machine with Docker. `.ci/run` starts a server and sets it.",
    );
    None
}

/// The URL of a standalone (non-replica-set) server, or `None` (after saying
/// why) to skip.
pub fn standalone_url() -> Option<String> {
    if let Some(url) = url_from("TEST_MONGODB_STANDALONE_URL") {
        return Some(url);
    }
    #[cfg(feature = "testcontainers")]
    if container_requested() {
        return Some(containers::standalone());
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    skipped(
        &ONCE,
        "TEST_MONGODB_STANDALONE_URL is not set, so there is no standalone server to check \
         the refusal against (the decision itself is unit-tested on real `hello` replies). \
         `.ci/run` starts one and sets it.",
    );
    None
}

/// The URL in `var`, when it is set and not empty (as `build.rs` decides).
fn url_from(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|url| !url.is_empty())
}

/// Says loudly that a test was skipped: through `eprintln!` (shown with
/// `--nocapture`), and once per test process straight to stderr, which the test
/// harness does not capture, so a plain `cargo test` shows it too. Under CI (`CI`
/// set) it panics instead: CI never passes by skipping.
fn skipped(once: &std::sync::Once, why: &str) {
    use std::io::Write;
    assert!(
        std::env::var_os("CI").is_none(),
        "{why} CI is set, so a missing server fails the test instead of skipping it"
    );
    eprintln!("storage-mongo test SKIPPED: {why}");
    once.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "\n==== storage-mongo: tests SKIPPED: {why} ====\n"
        );
    });
}

#[cfg(feature = "testcontainers")]
fn container_requested() -> bool {
    std::env::var("TEST_MONGODB_CONTAINER").is_ok_and(|v| v == "1" || v == "true")
}

#[cfg(feature = "testcontainers")]
mod containers {
    use std::sync::OnceLock;

    use testcontainers_modules::mongo::Mongo;
    use testcontainers_modules::testcontainers::Container;
    use testcontainers_modules::testcontainers::runners::SyncRunner;

    // Kept for the whole test process; the container reaper removes them when
    // it exits.
    static REPLICA_SET: OnceLock<(Container<Mongo>, String)> = OnceLock::new();
    static STANDALONE: OnceLock<(Container<Mongo>, String)> = OnceLock::new();

    fn start(image: Mongo) -> (Container<Mongo>, String) {
        let node = image
            .start()
            .unwrap_or_else(|e| panic!("cannot start a MongoDB container: {e}"));
        let host = node
            .get_host()
            .unwrap_or_else(|e| panic!("container host: {e}"));
        let port = node
            .get_host_port_ipv4(27017)
            .unwrap_or_else(|e| panic!("container port: {e}"));
        let url = format!("mongodb://{host}:{port}/?directConnection=true");
        (node, url)
    }

    pub fn replica_set() -> String {
        // The blocking runner drives its own runtime: start it off the test's.
        REPLICA_SET
            .get_or_init(|| {
                std::thread::spawn(|| start(Mongo::repl_set()))
                    .join()
                    .unwrap_or_else(|_| panic!("container start panicked"))
            })
            .1
            .clone()
    }

    pub fn standalone() -> String {
        STANDALONE
            .get_or_init(|| {
                std::thread::spawn(|| start(Mongo::default()))
                    .join()
                    .unwrap_or_else(|_| panic!("container start panicked"))
            })
            .1
            .clone()
    }
}
