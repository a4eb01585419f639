//! An empty store database for either engine: an SQLite file in a temporary
//! directory or a fresh PostgreSQL database (see [`crate::TestDatabase`]).

use crate::TestDatabase;

/// Which SQL engine a test runs against. The programs tell the engines apart
/// by the URL's scheme, so this is all a test has to choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A database URL no one has used yet, and what must live as long as it:
/// the SQLite file's directory, or the PostgreSQL database (dropped with
/// this value).
#[derive(Debug)]
pub struct EmptyDatabase {
    url: String,
    _sqlite_dir: Option<tempfile::TempDir>,
    _postgres: Option<TestDatabase>,
}

impl EmptyDatabase {
    pub async fn create(engine: Engine) -> Self {
        match engine {
            Engine::Sqlite => {
                let dir = tempfile::tempdir()
                    .unwrap_or_else(|error| panic!("cannot create a temporary directory: {error}"));
                Self {
                    url: format!("sqlite://{}", dir.path().join("store.db").display()),
                    _sqlite_dir: Some(dir),
                    _postgres: None,
                }
            }
            Engine::Postgres => {
                let database = TestDatabase::create().await;
                Self {
                    url: database.url().to_owned(),
                    _sqlite_dir: None,
                    _postgres: Some(database),
                }
            }
        }
    }

    /// `sqlite://...` or `postgres://...`.
    pub fn url(&self) -> &str {
        &self.url
    }
}
