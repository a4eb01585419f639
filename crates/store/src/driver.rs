//! What the store's statements need of a sqlx driver, so that one function
//! serves every driver the store runs them on: `Any`, the code path both
//! engines share; each engine's own, on which the writer runs; and SQLite's,
//! on which its reader runs and the cache outbox's pages are read.
//!
//! `Any` hands every statement to the engine's own driver and back: it
//! copies each argument into its own form and then into the engine's (a
//! value of up to a mebibyte twice), and each row returned into a row of its
//! own. The writer and the reader run every record write and point read
//! of the process, and the outbox's replays read an entry for each write,
//! so they skip that (docs/decisions.md, records 46 and 49).
//!
//! Rust does not carry a trait's bounds on other types (`i64: Decode<Self>`)
//! to its users, so the trait names the few reads and binds the statements
//! make, and one blanket implementation holds the bounds.

use sqlx::query::Query;
use sqlx::{ColumnIndex, Database, Decode, Encode, IntoArguments, Row, Type};

/// A driver the record and outbox statements run on.
pub(crate) trait Driver: Database<Arguments: IntoArguments<Self> + 'static> {
    /// Binds a text parameter.
    fn bind_text<'q>(query: StatementOf<'q, Self>, text: &str) -> StatementOf<'q, Self>;

    /// Binds an integer parameter; `None` binds `NULL`.
    fn bind_integer<'q>(
        query: StatementOf<'q, Self>,
        integer: impl Into<Option<i64>>,
    ) -> StatementOf<'q, Self>;

    /// The integer in `row`'s column `column`.
    fn integer(row: &Self::Row, column: usize) -> Result<i64, sqlx::Error>;

    /// The integer or `NULL` in `row`'s column `column`.
    fn optional_integer(row: &Self::Row, column: usize) -> Result<Option<i64>, sqlx::Error>;

    /// The text in `row`'s column `column`.
    fn text(row: &Self::Row, column: usize) -> Result<&str, sqlx::Error>;
}

/// A statement of `DB` with its parameters bound so far.
pub(crate) type StatementOf<'q, DB> = Query<'q, DB, <DB as Database>::Arguments>;

impl<DB> Driver for DB
where
    DB: Database<Arguments: IntoArguments<DB> + 'static>,
    for<'a> &'a str: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB>,
    usize: ColumnIndex<DB::Row>,
{
    fn bind_text<'q>(query: StatementOf<'q, DB>, text: &str) -> StatementOf<'q, DB> {
        query.bind(text)
    }

    fn bind_integer<'q>(
        query: StatementOf<'q, DB>,
        integer: impl Into<Option<i64>>,
    ) -> StatementOf<'q, DB> {
        query.bind(integer.into())
    }

    fn integer(row: &DB::Row, column: usize) -> Result<i64, sqlx::Error> {
        row.try_get(column)
    }

    fn optional_integer(row: &DB::Row, column: usize) -> Result<Option<i64>, sqlx::Error> {
        row.try_get(column)
    }

    fn text(row: &DB::Row, column: usize) -> Result<&str, sqlx::Error> {
        row.try_get(column)
    }
}
