//! Decides, when the tests are compiled, whether they can reach a PostgreSQL
//! server, so that the test runner itself reports a test that needs one as
//! `ignored`, with the reason, and counts it in its "N ignored" summary (a test
//! that returned early would be reported `ok`). The same approach as
//! `tests/build.rs` (the `marketplace-e2e` package).
//!
//! | cfg | set when |
//! | --- | --- |
//! | `no_postgres` | `TEST_POSTGRES_URL` is unset or empty, and `CI` is not set |
//!
//! A test that needs PostgreSQL carries
//! `#[cfg_attr(no_postgres, ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README")]`.
//! Under CI (`CI` set) the cfg is never set: every test runs, and one whose
//! server is missing fails instead of being skipped. Cargo runs this again when
//! one of the variables changes.

/// The servers named by a URL variable: (cfg, variable).
const URL_SERVERS: [(&str, &str); 1] = [("no_postgres", "TEST_POSTGRES_URL")];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    // sqlx::migrate! embeds the migrations: a new file must rebuild the crate.
    println!("cargo::rerun-if-changed=migrations");
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
}
