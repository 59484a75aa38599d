//! The conformance suite against a real MongoDB-wire server (a replica set).
//!
//! Runs when `TEST_MONGODB_URL` is set (see `tests/support`; without it, the
//! runner reports every scenario ignored, see `build.rs`); every scenario
//! gets its own database ([`support::fresh`]), dropped when the scenario passes
//! (a failed one keeps it for inspection), and a run first drops the databases
//! earlier runs left.

mod support;

marketplace_conformance::conformance_suite!(
    support::fresh,
    #[cfg_attr(
        no_mongodb,
        ignore = "needs TEST_MONGODB_URL (a MongoDB replica set), see README"
    )]
);
