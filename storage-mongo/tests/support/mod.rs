//! Where the tests find a MongoDB server: `TEST_MONGODB_URL` (a replica set)
//! and `TEST_MONGODB_STANDALONE_URL` (a standalone server), or, with the
//! `testcontainers` feature and `TEST_MONGODB_CONTAINER=1`, real MongoDB
//! containers started for the run: of the image `TEST_MONGODB_IMAGE` names
//! (`name[:tag]`, e.g. `mongo:7.0`; default `mongo:5.0.6`), started once per
//! test process and removed when it exits or is interrupted.
//!
//! Without them when the tests were compiled, `build.rs` sets `no_mongodb` /
//! `no_mongodb_standalone` and the tests that need them are reported `ignored`.
//! A test compiled with them and run without them skips after [`skipped`] said
//! so, or fails under CI (`CI` set).
#![allow(dead_code)]

use std::future::IntoFuture;

use storage_mongo::{MongoOptions, MongoStorage};
use tokio::sync::OnceCell;

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

/// Drops the test databases of earlier runs, once per test process.
async fn clean_earlier_runs(url: &str) {
    static CLEANED: OnceCell<()> = OnceCell::const_new();
    CLEANED
        .get_or_init(|| async {
            let client = mongodb::Client::with_uri_str(url)
                .await
                .unwrap_or_else(|e| panic!("TEST_MONGODB_URL: {e}"));
            let names = client
                .list_database_names()
                .await
                .unwrap_or_else(|e| panic!("listing databases: {e}"));
            for name in names.iter().filter(|n| n.starts_with(TEST_DB_PREFIX)) {
                client
                    .database(name)
                    .drop()
                    .await
                    .unwrap_or_else(|e| panic!("dropping {name}: {e}"));
            }
        })
        .await;
}

/// Drops a scenario's database once the scenario passed. When it failed (the
/// guard is dropped while panicking), the database stays for inspection; the
/// next run drops it.
pub struct DropDatabase(mongodb::Database);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        // `drop` cannot await: block this thread on the drop, which
        // `block_in_place` allows on the suite's multi-threaded runtime.
        let db = &self.0;
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(db.drop().into_future())
        })
        .unwrap_or_else(|e| panic!("dropping {}: {e}", db.name()));
    }
}

/// A store on a fresh database of the replica set, with the guard that drops
/// it; `None` (after saying why) when there is no server to test against.
pub async fn fresh() -> Option<(MongoStorage, DropDatabase)> {
    let url = replica_set_url()?;
    clean_earlier_runs(&url).await;
    let name = format!("{}{}", TEST_DB_PREFIX, uuid::Uuid::new_v4().simple());
    let storage = MongoStorage::connect(&url, MongoOptions::default().with_database(name))
        .await
        .unwrap_or_else(|e| panic!("connecting to TEST_MONGODB_URL: {e}"));
    let guard = DropDatabase(storage.database().clone());
    Some((storage, guard))
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
    //! The containers: started once per test process, on first use, and
    //! removed (forcibly, with their volumes) when the process exits. Rust
    //! never drops a `static`, and testcontainers removes a container only when
    //! its handle is dropped (it runs no reaper of its own), so the handles sit
    //! in [`STARTED`] and [`remove_all`] takes them out and removes them at
    //! exit; testcontainers' `watchdog` removes them when the run is
    //! interrupted (SIGINT, SIGTERM, SIGQUIT). A process killed outright
    //! (SIGKILL) leaves them running: `docker ps --filter ancestor=mongo`.

    use std::io::Write;
    use std::sync::{Mutex, OnceLock, PoisonError};

    use testcontainers_modules::mongo::Mongo;
    use testcontainers_modules::testcontainers::runners::SyncRunner;
    use testcontainers_modules::testcontainers::{Container, ContainerRequest, ImageExt};

    /// The variable naming the image to run, `name[:tag]`.
    const IMAGE_ENV: &str = "TEST_MONGODB_IMAGE";

    /// Every container this process started, for [`remove_all`].
    static STARTED: Mutex<Vec<Container<Mongo>>> = Mutex::new(Vec::new());
    static REPLICA_SET: OnceLock<String> = OnceLock::new();
    static STANDALONE: OnceLock<String> = OnceLock::new();

    /// Removes every container of [`STARTED`] when the process exits (after
    /// the test harness printed its summary).
    #[dtor::dtor(unsafe)]
    fn remove_all() {
        let started = std::mem::take(&mut *STARTED.lock().unwrap_or_else(PoisonError::into_inner));
        for node in started {
            let id = node.id().to_owned();
            // Never unwind out of an exit handler (that aborts the process).
            let removed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| node.rm()));
            if !matches!(removed, Ok(Ok(()))) {
                let _ = writeln!(
                    std::io::stderr(),
                    "storage-mongo tests: could not remove MongoDB container {id}; \
                     remove it with `docker rm -f {id}`"
                );
            }
        }
    }

    /// `image` as `TEST_MONGODB_IMAGE` names it: `mongo:7.0` (name and tag),
    /// `registry.example:5000/mongo:7.0` (a registry of its own), or a name
    /// alone, which keeps the module's tag (`5.0.6`), so a mirror of the
    /// default image needs only its name. Unset or empty: the module's image,
    /// `mongo:5.0.6`.
    fn configured(image: Mongo) -> ContainerRequest<Mongo> {
        let request = ContainerRequest::from(image);
        let Some(wanted) = std::env::var(IMAGE_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty())
        else {
            return request;
        };
        let (name, tag) = split_image(wanted.trim());
        let request = request.with_name(name);
        match tag {
            Some(tag) => request.with_tag(tag),
            None => request,
        }
    }

    /// `name[:tag]` split at the tag's colon, not a registry port's.
    fn split_image(image: &str) -> (&str, Option<&str>) {
        match image.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') && !name.is_empty() && !tag.is_empty() => {
                (name, Some(tag))
            }
            _ => (image, None),
        }
    }

    fn start(image: Mongo) -> String {
        let node = configured(image)
            .start()
            .unwrap_or_else(|e| panic!("cannot start a MongoDB container: {e}"));
        let host = node
            .get_host()
            .unwrap_or_else(|e| panic!("container host: {e}"));
        let port = node
            .get_host_port_ipv4(27017)
            .unwrap_or_else(|e| panic!("container port: {e}"));
        STARTED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(node);
        format!("mongodb://{host}:{port}/?directConnection=true")
    }

    /// Starts `image` on a thread of its own: the blocking runner drives its
    /// own runtime, which cannot start inside the test's.
    fn start_apart(image: fn() -> Mongo) -> String {
        std::thread::spawn(move || start(image()))
            .join()
            .unwrap_or_else(|_| panic!("container start panicked"))
    }

    pub fn replica_set() -> String {
        REPLICA_SET
            .get_or_init(|| start_apart(Mongo::repl_set))
            .clone()
    }

    pub fn standalone() -> String {
        STANDALONE
            .get_or_init(|| start_apart(Mongo::default))
            .clone()
    }

    #[test]
    fn an_image_is_a_name_and_maybe_a_tag() {
        assert_eq!(split_image("mongo:7.0"), ("mongo", Some("7.0")));
        assert_eq!(split_image("mongo"), ("mongo", None));
        assert_eq!(
            split_image("registry.example:5000/mongo:7.0"),
            ("registry.example:5000/mongo", Some("7.0"))
        );
        assert_eq!(
            split_image("registry.example:5000/mongo"),
            ("registry.example:5000/mongo", None)
        );
    }
}
