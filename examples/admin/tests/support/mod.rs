//! A marketplace on a temporary SQLite file, driven both by the built
//! `marketplace-admin` binary (as an operator runs it) and by the library on
//! the same file (to set up what the command line has no command for, and to
//! check what the commands did).
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Output;

use marketplace_core::{
    AddressInput, CheckoutRequest, HashCost, IdempotencyKey, NewAccount, NewProduct, Order,
    OrderId, OrderStatus, Principal, ProductId, ProductView, Role,
};
use marketplace_host::{Host, Market, Settings};
use serde_json::Value;
use tempfile::TempDir;

/// One marketplace: a folder with its database, media and CSV files.
pub struct Shop {
    dir: TempDir,
    host: Host,
    /// Settings every host of this shop reads from its environment, the
    /// binary included.
    env: Vec<(String, String)>,
}

/// What one run of the binary did.
pub struct Run {
    /// Its exit status (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    fn of(o: Output) -> Run {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Standard output parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }

    /// The one line the binary wrote to standard error.
    pub fn error_line(&self) -> &str {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line on stderr: {:?}", self.stderr);
        assert!(lines[0].starts_with("error: "), "{:?}", lines[0]);
        lines[0]
    }
}

impl Shop {
    /// A fresh marketplace, its schema made by the library.
    pub async fn new() -> Shop {
        Shop::with_env(&[]).await
    }

    /// A fresh marketplace whose hosts (the library here and every run of the
    /// binary) read these environment variables too, such as
    /// `MARKETPLACE_RETURN_WINDOW=0s`.
    pub async fn with_env(env: &[(&str, &str)]) -> Shop {
        let dir = tempfile::tempdir().unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let host = marketplace_host::build(&settings(&dir, &env))
            .await
            .unwrap();
        Shop { dir, host, env }
    }

    /// The marketplace, through the library.
    pub fn market(&self) -> &Market {
        &self.host.market
    }

    /// The settings every host of this shop runs with.
    pub fn settings(&self) -> Settings {
        settings(&self.dir, &self.env)
    }

    /// A file in the shop's folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file in the shop's folder and returns its path.
    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    /// Runs `marketplace-admin` with `args` on this shop (the environment holds
    /// nothing else), waiting for it to finish.
    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[]).await
    }

    /// [`Shop::run`] with extra environment variables.
    pub async fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_marketplace-admin"));
        cmd.args(args)
            .env_clear()
            .env("DATABASE_URL", database_url(&self.dir))
            .env("MARKETPLACE_MEDIA_DIR", self.dir.path().join("media"))
            .env("RUST_LOG", "error");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run::of(cmd.output().await.unwrap())
    }

    /// Runs `marketplace-admin` and insists that it succeeded.
    pub async fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args).await;
        assert_eq!(
            run.code,
            Some(0),
            "{args:?} failed:\nstdout: {}\nstderr: {}",
            run.stdout,
            run.stderr
        );
        run
    }

    /// Registers an account through the library.
    pub async fn register(&self, role: Role, email: &str) -> Principal {
        let user = self
            .market()
            .register(NewAccount {
                email: email.to_owned(),
                password: "correct horse".to_owned(),
                role,
                name: None,
                store_name: (role == Role::Seller).then(|| format!("Store of {email}")),
            })
            .await
            .unwrap();
        Principal {
            user_id: user.id,
            role,
        }
    }

    /// A seller verified through the library.
    pub async fn seller(&self, email: &str) -> Principal {
        let p = self.register(Role::Seller, email).await;
        self.market().verify_seller_by_email(email).await.unwrap();
        p
    }

    /// A buyer with a delivery address.
    pub async fn buyer(&self, email: &str) -> Principal {
        let p = self.register(Role::Buyer, email).await;
        let address = AddressInput {
            name: Some("Ada Buyer".into()),
            line1: Some("1 Main Street".into()),
            city: Some("Springfield".into()),
            postal_code: Some("12345".into()),
            country: Some("US".into()),
            ..AddressInput::default()
        };
        self.market().add_address(&p, address).await.unwrap();
        p
    }

    /// A product of `seller`, through the library.
    pub async fn product(&self, seller: &Principal, title: &str, cents: i64) -> ProductView {
        let new = NewProduct {
            sku: None,
            title: title.to_owned(),
            description: String::new(),
            price: marketplace_core::Money::new(cents, marketplace_core::Currency::USD),
            stock: 50,
            category_id: None,
            images: Vec::new(),
            discount: None,
            active: None,
        };
        self.market().create_product(seller, new).await.unwrap()
    }

    /// A checkout of `lines` (product, quantity) by `buyer`: one order per
    /// seller.
    pub async fn sale(
        &self,
        buyer: &Principal,
        lines: &[(ProductId, u32)],
        key: &str,
    ) -> Vec<Order> {
        for (product, quantity) in lines {
            self.market()
                .add_to_cart(buyer, *product, *quantity)
                .await
                .unwrap();
        }
        self.market()
            .checkout(
                buyer,
                &IdempotencyKey::parse(key).unwrap(),
                CheckoutRequest::default(),
            )
            .await
            .unwrap()
            .orders
    }

    /// Moves `seller`'s order from pending to delivered, one step at a time.
    pub async fn deliver(&self, seller: &Principal, order: OrderId) -> Order {
        let mut last = None;
        for to in [
            OrderStatus::Accepted,
            OrderStatus::Packed,
            OrderStatus::Shipped,
            OrderStatus::Delivered,
        ] {
            last = Some(
                self.market()
                    .set_order_status(seller, order, to)
                    .await
                    .unwrap(),
            );
        }
        last.unwrap()
    }

    /// Every product of `seller` that is not archived.
    pub async fn products_of(&self, seller: &Principal) -> Vec<ProductView> {
        let query = marketplace_core::CatalogQuery {
            limit: Some(100),
            ..Default::default()
        };
        self.market()
            .my_products(seller, query, false)
            .await
            .unwrap()
            .items
    }
}

fn database_url(dir: &TempDir) -> String {
    format!("sqlite://{}", dir.path().join("m.db").display())
}

fn settings(dir: &TempDir, env: &[(String, String)]) -> Settings {
    let mut s =
        Settings::from_lookup(|name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
            .unwrap();
    s.database_url = database_url(dir);
    s.media_dir = dir.path().join("media");
    // The library's own accounts hash fast; the binary hashes at the
    // recommended cost (it reads no cost from the environment).
    s.hash_cost = HashCost::FAST_INSECURE;
    s
}
