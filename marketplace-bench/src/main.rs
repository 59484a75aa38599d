//! # marketplace-bench
//!
//! Starts `marketplace-server` in this process (release build) on one backend,
//! seeds a catalog through the library, drives it over loopback HTTP with
//! concurrent keep-alive clients, and measures in the same run the baselines that
//! bound it: a bare warp handler and the database doing the same work without the
//! marketplace (`pgbench -M prepared` on PostgreSQL, a minimal loop through the
//! store's own driver on SQLite and MongoDB). Every figure is printed with its
//! ratio to its baseline, and where the database has one, to the composed
//! ceiling `1/(1/warp + 1/database)` (HTTP and the database share the cores),
//! because the absolute numbers on a shared machine are noise.
//!
//! With `--external`, the server under test is the real `marketplace-server`
//! binary in a process of its own, with its default configuration and logging,
//! and this process is only the load generator: the figure a user gets.
//!
//! ```text
//! cargo run --release -p marketplace-bench -- --backend postgres
//! cargo build --release -p server-warp -p marketplace-bench
//! cargo run --release -p marketplace-bench -- --backend postgres --external
//! ```
#![forbid(unsafe_code)]

mod baseline;
mod contention;
mod external;
mod load;
mod report;
mod seed;
mod shop;
mod stores;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use serde_json::json;

use crate::load::OpResult;
use crate::report::{Report, Row};
use crate::shop::{buyer_step, check, checkout, deep_keyset, deep_keyset_sql, urlencode};
use crate::stores::{Schema, analyze, with_database};

/// The allocator of `marketplace-server`, so the server in this process
/// allocates as the binary does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The store under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Backend {
    Memory,
    Sqlite,
    Postgres,
    Mongo,
}

/// Load benchmark of the marketplace server.
#[derive(Parser, Debug)]
struct Args {
    /// The store under test.
    #[arg(long, value_enum, default_value = "memory")]
    backend: Backend,
    /// PostgreSQL server (a fresh schema is created and dropped).
    #[arg(
        long,
        env = "BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    postgres: String,
    /// MongoDB server, a replica set (a fresh database is created and dropped).
    #[arg(
        long,
        env = "BENCH_MONGODB_URL",
        default_value = "mongodb://127.0.0.1:27017/?directConnection=true"
    )]
    mongodb: String,
    /// Concurrent HTTP connections (and pgbench clients).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds measured per phase (after a one-second warm-up).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Products in the catalog.
    #[arg(long, default_value_t = 10_000)]
    products: usize,
    /// Verified sellers.
    #[arg(long, default_value_t = 50)]
    sellers: usize,
    /// Buyers (each checkout client and each contention buyer is one of them).
    #[arg(long, default_value_t = 400)]
    buyers: usize,
    /// Hot products of the contention phase.
    #[arg(long, default_value_t = 10)]
    hot: usize,
    /// Units of each hot product (default: two per contender in all, spread over
    /// the hot products). Whatever it is, the contenders together want twice the
    /// hot stock, so the phase always ends sold out.
    #[arg(long)]
    hot_stock: Option<u32>,
    /// Concurrent buyers of the contention phase.
    #[arg(long, default_value_t = 300)]
    contenders: usize,
    /// Most carts filled for the checkout-alone phase.
    #[arg(long, default_value_t = 20_000)]
    max_carts: usize,
    /// SQL pool size of the server (`DATABASE_MAX_CONNECTIONS`).
    #[arg(long, default_value_t = 10)]
    pool: u32,
    /// Run ANALYZE after seeding (`--analyze=false` shows the plans of a
    /// freshly loaded database without statistics).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    analyze: bool,
    /// Keep the PostgreSQL schema or MongoDB database after the run (its name is
    /// printed), to look at plans with the seeded data.
    #[arg(long)]
    keep_schema: bool,
    /// Drive the real `marketplace-server` binary in its own process (default
    /// configuration and logging, output to a file) instead of serving in this
    /// one; the bare warp baseline runs in a process of its own too.
    #[arg(long)]
    external: bool,
    /// The server binary of `--external` (default: `marketplace-server` beside
    /// this benchmark's binary).
    #[arg(long)]
    server_bin: Option<std::path::PathBuf>,
    /// A setting of the external server, `KEY=VALUE` (repeatable), such as
    /// `--server-env RUST_LOG=warn`.
    #[arg(long, value_parser = key_value)]
    server_env: Vec<(String, String)>,
    /// Where the markdown table is written.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    out: std::path::PathBuf,
}

fn key_value(s: &str) -> std::result::Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

#[tokio::main]
async fn main() -> Result<()> {
    if std::env::args().nth(1).as_deref() == Some(external::BARE_WARP_FLAG) {
        return external::serve_bare_warp().await;
    }
    let args = Args::parse();
    if args.external && args.backend == Backend::Memory {
        bail!(
            "the memory store lives inside one process, so it cannot be seeded from outside the server: --external needs sqlite, postgres or mongo"
        );
    }
    let server_bin = if args.external {
        Some(external::server_binary(args.server_bin.as_deref())?)
    } else {
        None
    };
    let started = Instant::now();
    let warmup = Duration::from_secs(1);
    let measure = Duration::from_secs(args.seconds);
    let dir = tempfile::tempdir()?;

    let schema = match args.backend {
        Backend::Postgres => Some(Schema::create(&args.postgres).await?),
        _ => None,
    };
    let mongo = (args.backend == Backend::Mongo).then(|| {
        with_database(
            &args.mongodb,
            &format!("mkt_bench_{}", uuid::Uuid::new_v4().simple()),
        )
    });
    let result = bench(
        &args,
        server_bin.as_deref(),
        schema.as_ref(),
        mongo.as_deref(),
        dir.path(),
        warmup,
        measure,
    )
    .await;
    if let Some(schema) = schema {
        if args.keep_schema {
            eprintln!("kept schema {}", schema.name);
        } else {
            schema.drop().await?;
        }
    }
    if let Some(url) = &mongo {
        let options = mongodb::options::ClientOptions::parse(url).await?;
        let name = options.default_database.clone().context("no database")?;
        if args.keep_schema {
            eprintln!("kept database {name}");
        } else {
            let client = mongodb::Client::with_options(options)?;
            client.database(&name).drop().await?;
        }
    }
    let report = result?;
    let md = report.markdown(&args_line(&args), started.elapsed());
    println!("{md}");
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    report::write_section(&args.out, &report.section_key(), &md)?;
    eprintln!("written to {}", args.out.display());
    let failed: Vec<String> = report
        .invariants
        .checks(&report.contention)
        .into_iter()
        .filter_map(|(check, ok)| (!ok).then_some(check))
        .collect();
    if !failed.is_empty() {
        bail!("the contention audit failed: {}", failed.join("; "));
    }
    Ok(())
}

fn args_line(args: &Args) -> String {
    format!(
        "cargo run --release -p marketplace-bench -- --backend {} --clients {} --seconds {} --contenders {} --hot {}{} --pool {} --analyze={}{}",
        format!("{:?}", args.backend).to_lowercase(),
        args.clients,
        args.seconds,
        args.contenders,
        args.hot,
        args.hot_stock
            .map(|n| format!(" --hot-stock {n}"))
            .unwrap_or_default(),
        args.pool,
        args.analyze,
        if args.external {
            " --external".to_owned()
                + &args
                    .server_env
                    .iter()
                    .map(|(k, v)| format!(" --server-env {k}={v}"))
                    .collect::<String>()
        } else {
            String::new()
        }
    )
}

async fn bench(
    args: &Args,
    server_bin: Option<&std::path::Path>,
    schema: Option<&Schema>,
    mongo: Option<&str>,
    dir: &std::path::Path,
    warmup: Duration,
    measure: Duration,
) -> Result<Report> {
    let url = match (args.backend, schema) {
        (Backend::Memory, _) => "memory:".to_owned(),
        (Backend::Sqlite, _) => format!("sqlite://{}", dir.join("bench.db").display()),
        (Backend::Postgres, Some(s)) => s.url.clone(),
        (Backend::Postgres, None) => bail!("no schema"),
        (Backend::Mongo, _) => mongo.context("no MongoDB database")?.to_owned(),
    };
    const JWT_SECRET: &str = "benchmark-secret-of-at-least-32-bytes-long";
    let mut settings = server_warp::Settings::default();
    settings.listen = "127.0.0.1:0".parse()?;
    settings.database_url = url;
    settings.sql.max_connections = args.pool;
    settings.jwt_secret = Some(JWT_SECRET.into());
    settings.media_dir = dir.join("media");
    // A shared database needs the public address every instance names.
    settings.public_url = Some("http://marketplace.bench".into());
    // Seeded accounts are hashed at the cheapest cost: seeding measures nothing.
    settings.hash_cost = marketplace_core::HashCost::FAST_INSECURE;
    settings.outbox_poll = Duration::ZERO;
    // In external mode this instance of the library only seeds and audits; the
    // server under test is another process on the same database.
    let (app, _mailer) = server_warp::build(&settings).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut base = String::new();
    if server_bin.is_none() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        base = format!("http://{}/api/v1", listener.local_addr()?);
        tokio::spawn(server_warp::serve::serve(
            listener,
            app.clone(),
            settings.cors.clone(),
            settings.trusted_proxies.clone(),
            async move {
                let _ = stop_rx.await;
            },
        ));
    }
    let bare_process = match server_bin {
        Some(_) => Some(external::start_bare_warp().await?),
        None => None,
    };
    let bare = match &bare_process {
        Some(p) => p.addr,
        None => baseline::bare_warp().await?,
    };

    let t = Instant::now();
    eprintln!(
        "seeding {} products, {} sellers, {} buyers...",
        args.products, args.sellers, args.buyers
    );
    let seeded = Arc::new(
        seed::seed(
            &app.market,
            args.sellers,
            args.products,
            args.buyers.max(args.clients).max(args.contenders),
            args.hot,
            args.hot_stock
                .unwrap_or_else(|| contention::default_hot_stock(args.contenders, args.hot)),
        )
        .await?,
    );
    // Planner statistics after the bulk load, as an operator runs ANALYZE after
    // an import: without them both databases plan the catalog page as a scan and
    // sort of the whole table (PostgreSQL until autovacuum gets to it; SQLite never).
    if args.analyze {
        analyze(args.backend, schema, &settings.database_url).await?;
    }
    let seed_secs = t.elapsed().as_secs_f64();
    eprintln!("seeded in {seed_secs:.1} s");
    let server = match server_bin {
        Some(bin) => {
            let child = external::start_server(
                bin,
                dir,
                &settings.database_url,
                JWT_SECRET,
                args.pool,
                &args.server_env,
            )
            .await?;
            base = format!("http://{}/api/v1", child.addr);
            eprintln!(
                "server: {} on {}, its output in {}",
                bin.display(),
                child.addr,
                child.log.as_deref().unwrap_or(dir).display()
            );
            Some(child)
        }
        None => None,
    };

    // The cursor of a deep page: past half the catalog.
    let mut cursor = None;
    for _ in 0..(args.products / 2 / 100) {
        let q: marketplace_core::CatalogQuery =
            serde_json::from_value(json!({"limit": 100, "cursor": cursor}))?;
        cursor = app.market.browse(q).await?.next_cursor;
    }
    let deep_cursor = cursor.context("the catalog has no deep page")?;

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.contenders.max(args.clients))
        .build()?;
    let mut rows = Vec::new();
    let n = args.clients;

    // HTTP limit of this machine.
    eprintln!("phase: bare warp");
    let bare_stats = {
        let (http, url) = (http.clone(), format!("http://{bare}/items"));
        load::run(n, warmup, measure, move |_, _| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                check(http.get(&url).send().await?, "bare")?.bytes().await?;
                OpResult::Ok(None)
            }
        })
        .await
    };

    let get_phase = |path: String| {
        let http = http.clone();
        async move {
            load::run(n, warmup, measure, move |_, _| {
                let (http, url) = (http.clone(), path.clone());
                async move {
                    check(http.get(&url).send().await?, "catalog")?
                        .bytes()
                        .await?;
                    OpResult::Ok(None)
                }
            })
            .await
        }
    };
    eprintln!("phase: catalog");
    let first = get_phase(format!("{base}/products?limit=20")).await;
    let deep = get_phase(format!(
        "{base}/products?limit=20&cursor={}",
        urlencode(&deep_cursor)
    ))
    .await;
    let search = get_phase(format!(
        "{base}/products?limit=20&q=lamp&min_price=1000&max_price=8000&in_stock=true"
    ))
    .await;

    // The database doing the same work without us: its catalog pages right after
    // ours, on the same data (before the checkout phases grow the tables and, on
    // SQLite, the write-ahead log), its checkout right after ours.
    let db_name = match args.backend {
        Backend::Postgres => "pgbench",
        Backend::Mongo => "driver loop",
        _ => "sqlx loop",
    };
    let driver = match args.backend {
        Backend::Sqlite => Some(Arc::new(baseline::DriverBaseline::Sqlite(
            baseline::SqliteBaseline::open(&settings.database_url, args.pool).await?,
        ))),
        Backend::Mongo => Some(Arc::new(baseline::DriverBaseline::Mongo(
            baseline::MongoBaseline::open(&settings.database_url).await?,
        ))),
        _ => None,
    };
    let db_pages = match (&driver, schema) {
        (Some(d), _) => {
            eprintln!("phase: {db_name} catalog pages (the store's query, without us)");
            let deep_key = deep_keyset(&app, &deep_cursor).await?;
            let page = |after: Option<(i64, uuid::Uuid)>| {
                let d = Arc::clone(d);
                load::run(n, warmup, measure, move |_, _| {
                    let d = Arc::clone(&d);
                    async move {
                        d.page(after).await?;
                        OpResult::Ok(None)
                    }
                })
            };
            let first = page(None).await;
            let deep = page(Some(deep_key)).await;
            Some((baseline::DbRun::of(&first), baseline::DbRun::of(&deep)))
        }
        (None, Some(schema)) => {
            eprintln!("phase: pgbench catalog pages");
            schema.execute(baseline::NUMBERING_SQL).await?;
            let after = deep_keyset_sql(&app, &deep_cursor).await?;
            let (url, dir, secs) = (schema.url.clone(), dir.to_owned(), args.seconds);
            Some(
                tokio::task::spawn_blocking(move || -> Result<_> {
                    let first = baseline::pgbench(
                        &url,
                        &dir,
                        "first_page",
                        &baseline::keyset_page_sql(None),
                        n,
                        secs,
                    )?;
                    let deep = baseline::pgbench(
                        &url,
                        &dir,
                        "deep_page",
                        &baseline::keyset_page_sql(Some(&after)),
                        n,
                        secs,
                    )?;
                    Ok((first, deep))
                })
                .await??,
            )
        }
        _ => None,
    };

    eprintln!("phase: buyer step (3 items from 2 sellers, checkout)");
    let step = {
        let (http, base, seeded) = (http.clone(), base.clone(), Arc::clone(&seeded));
        load::run(n, warmup, measure, move |client, i| {
            let (http, base, seeded) = (http.clone(), base.clone(), Arc::clone(&seeded));
            async move { buyer_step(&http, &base, &seeded, client, i).await }
        })
        .await
    };

    // The checkout call alone: every client checks out carts filled beforehand,
    // so nothing but checkouts runs at 64 connections (the figure to hold against
    // the database's own checkout transaction). Enough carts for twice the rate
    // the buyer step's checkout latency suggests (Little's law), within bounds.
    let carts = {
        let mean_s = step.inner_micros.iter().sum::<u64>() as f64
            / step.inner_micros.len().max(1) as f64
            / 1e6;
        let rate = n as f64 / mean_s.max(1e-4);
        ((2.0 * rate * (warmup + measure).as_secs_f64()) as usize).clamp(4 * n, args.max_carts)
    };
    eprintln!("phase: checkout alone ({carts} carts filled beforehand)");
    let ready = Arc::new(seed::buyers_with_carts(&app.market, &seeded, carts).await?);
    // Statistics as autovacuum leaves them once that many carts were written:
    // planned while the carts were empty, the checkout's reads scan the table.
    if args.analyze {
        analyze(args.backend, schema, &settings.database_url).await?;
    }
    let alone = {
        let (http, base) = (http.clone(), base.clone());
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        load::run(n, warmup, measure, move |client, i| {
            let (http, base, ready) = (http.clone(), base.clone(), Arc::clone(&ready));
            let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move {
                let Some(buyer) = ready.get(k) else {
                    return Err(load::Exhausted.into());
                };
                checkout(&http, &base, buyer, &format!("alone-{client}-{i}")).await?;
                OpResult::Ok(None)
            }
        })
        .await
    };

    // The database's own checkout transaction, right after ours.
    let db_checkout = match (&driver, schema) {
        (Some(d), _) => {
            eprintln!("phase: {db_name} checkout");
            let d = Arc::clone(d);
            let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let run = load::run(n, warmup, measure, move |_, _| {
                let d = Arc::clone(&d);
                let k = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                async move {
                    d.checkout(k).await?;
                    OpResult::Ok(None)
                }
            })
            .await;
            Some(baseline::DbRun::of(&run))
        }
        (None, Some(schema)) => {
            eprintln!("phase: pgbench checkout");
            let (url, dir) = (schema.url.clone(), dir.to_owned());
            let (secs, buyers, products) = (args.seconds, seeded.buyers.len(), args.products);
            Some(
                tokio::task::spawn_blocking(move || {
                    baseline::pgbench(
                        &url,
                        &dir,
                        "checkout",
                        &baseline::checkout_sql(buyers, products),
                        n,
                        secs,
                    )
                })
                .await??,
            )
        }
        _ => None,
    };
    if let Some(d) = &driver {
        d.cleanup().await?;
    }
    if let Some(schema) = schema {
        schema.execute(baseline::CLEANUP_SQL).await?;
    }
    let db = db_pages
        .zip(db_checkout)
        .map(|((first, deep), checkout)| (first, deep, checkout));

    eprintln!(
        "phase: contention ({} buyers on {} hot products)",
        args.contenders, args.hot
    );
    let contention = contention::run(&http, &base, &seeded, args.contenders).await?;
    let stored = match args.backend {
        Backend::Memory => contention::Stored::Memory,
        Backend::Sqlite | Backend::Postgres => contention::Stored::Sql(&settings.database_url),
        Backend::Mongo => contention::Stored::Mongo(&settings.database_url),
    };
    let invariants = contention::audit(&app, &stored, &seeded).await?;

    let _ = stop_tx.send(());
    let server_rss_kib = server.as_ref().and_then(external::Child::peak_rss_kib);
    let server_log = server.as_ref().and_then(|c| c.log.clone());
    if let Some(child) = server {
        child.stop().await?;
    }
    if let Some(child) = bare_process {
        child.stop().await?;
    }
    let log_lines = server_log
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|l| l.lines().count());
    let bare_rate = bare_stats.rate();
    // HTTP and the database share the cores: at best, each request costs what
    // the bare handler costs plus what the database's own transaction costs.
    let ceiling = |db: Option<f64>| db.map(|d| 1.0 / (1.0 / bare_rate + 1.0 / d));
    let ceiling_name = |r: f64| format!("the composed ceiling 1/(1/warp + 1/{db_name}) = {r:.0}/s");
    rows.push(Row::new(
        "bare warp handler, 20-item JSON list",
        &bare_stats,
        None,
    ));
    let db_first = db.map(|p| (format!("{db_name} first page"), p.0.tps));
    let db_deep = db.map(|p| (format!("{db_name} deep page"), p.1.tps));
    let db_checkout = db.map(|p| (format!("{db_name} checkout"), p.2.tps));
    let with_ceiling =
        |row: Row, db: &Option<(String, f64)>| match ceiling(db.as_ref().map(|d| d.1)) {
            Some(c) => row.also(Some((&ceiling_name(c), c))),
            None => row,
        };
    rows.push(with_ceiling(
        Row::new("catalog first page", &first, Some(("bare warp", bare_rate)))
            .also(db_first.as_ref().map(|(n, r)| (n.as_str(), *r))),
        &db_first,
    ));
    rows.push(with_ceiling(
        Row::new(
            "catalog deep keyset page",
            &deep,
            Some(("bare warp", bare_rate)),
        )
        .also(db_deep.as_ref().map(|(n, r)| (n.as_str(), *r))),
        &db_deep,
    ));
    rows.push(Row::new(
        "catalog search + filters",
        &search,
        Some(("bare warp", bare_rate)),
    ));
    // The buyer step against the checkout it ends with, too.
    rows.push(
        Row::new(
            "buyer step: 3 adds + checkout",
            &step,
            db_checkout.as_ref().map(|(n, r)| (n.as_str(), *r)),
        )
        .also(Some(("checkout alone", alone.rate()))),
    );
    let mut in_step = step.clone();
    in_step.micros = step.inner_micros.clone();
    rows.push(Row::new(
        "checkout call inside the step (rate is the step's)",
        &in_step,
        None,
    ));
    rows.push(with_ceiling(
        Row::new(
            &format!(
                "checkout call alone (carts filled beforehand{})",
                if alone.exhausted {
                    "; carts ran out"
                } else {
                    ""
                }
            ),
            &alone,
            db_checkout.as_ref().map(|(n, r)| (n.as_str(), *r)),
        ),
        &db_checkout,
    ));
    if let Some((f, d, c)) = db {
        rows.push(Row::db(&format!("{db_name}: keyset first page"), f));
        rows.push(Row::db(&format!("{db_name}: keyset deep page"), d));
        rows.push(Row::db(&format!("{db_name}: checkout transaction"), c));
    }
    Ok(Report {
        backend: format!("{:?}", args.backend).to_lowercase(),
        external: server_bin.is_some(),
        server_env: args.server_env.clone(),
        server_rss_kib,
        log_lines,
        clients: n,
        seconds: args.seconds,
        pool: args.pool,
        seed_secs,
        products: args.products,
        sellers: args.sellers,
        buyers: seeded.buyers.len(),
        rows,
        // This process: server (in-process mode), load generator and seeding.
        peak_rss_kib: external::peak_rss_kib("self"),
        contention,
        invariants,
    })
}
