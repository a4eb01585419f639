//! The parameters of the statements the store builds at run time (a
//! batch's `VALUES` list, an `IN` list), written as each engine wants them.

use super::Engine;

/// The parameters of a statement with a run-time number of them, in the
/// order they appear. SQLite gets anonymous `?`: it looks named ones up by a
/// linear search, which for a few hundred parameters costs more than the
/// query. PostgreSQL gets `$1`, `$2`...
#[derive(Debug)]
pub(crate) struct Placeholders {
    engine: Engine,
    count: usize,
}

impl Placeholders {
    pub(crate) fn new(engine: Engine) -> Self {
        Self { engine, count: 0 }
    }

    /// Appends the next parameter to `sql`.
    pub(crate) fn push_next(&mut self, sql: &mut String) {
        self.count += 1;
        match self.engine {
            Engine::Sqlite => sql.push('?'),
            Engine::Postgres => {
                sql.push('$');
                sql.push_str(itoa::Buffer::new().format(self.count));
            }
        }
    }

    /// Appends `rows` rows of `columns` parameters each to `sql`, as the
    /// body of a `VALUES` list: `(?, ?), (?, ?)`.
    pub(crate) fn push_rows(&mut self, sql: &mut String, rows: usize, columns: usize) {
        for row in 0..rows {
            sql.push_str(if row == 0 { "(" } else { ", (" });
            for column in 0..columns {
                if column > 0 {
                    sql.push_str(", ");
                }
                self.push_next(sql);
            }
            sql.push(')');
        }
    }
}
