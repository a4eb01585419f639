//! A fresh PostgreSQL database per test, on the server named by
//! `TEST_POSTGRES_URL` (scripts/test starts one and sets it).

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor};

/// An empty database that is dropped with this value.
#[derive(Debug)]
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates `test_<uuid>` on the server of `TEST_POSTGRES_URL`.
    pub async fn create() -> Self {
        let admin_url = std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| {
            panic!(
                "TEST_POSTGRES_URL is not set: these tests need a real PostgreSQL. \
                 Run scripts/test, which starts one, or set it to \
                 postgres://USER:PASSWORD@127.0.0.1:5432/postgres"
            )
        });
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = connect(&admin_url).await;
        admin
            .execute(AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
            .await
            .unwrap_or_else(|error| panic!("cannot create database {name}: {error}"));
        let options = PgConnectOptions::from_str(&admin_url)
            .unwrap_or_else(|error| panic!("TEST_POSTGRES_URL is not a valid URL: {error}"))
            .database(&name);
        let url = options.to_url_lossy().to_string();
        Self {
            admin_url,
            name,
            url,
        }
    }

    /// `postgres://...` of the new database.
    pub fn url(&self) -> &str {
        &self.url
    }
}

async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to TEST_POSTGRES_URL: {error}"))
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on:
        // use a runtime of its own on another thread.
        let admin_url = self.admin_url.clone();
        let statement = format!(r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#, self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| error.to_string())?;
            runtime.block_on(async move {
                let mut admin = PgConnection::connect(&admin_url)
                    .await
                    .map_err(|error| error.to_string())?;
                admin
                    .execute(AssertSqlSafe(statement))
                    .await
                    .map_err(|error| error.to_string())?;
                Ok::<_, String>(())
            })
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("could not drop test database {}: {error}", self.name);
        }
    }
}
