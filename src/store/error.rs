//! Errors of the store. Messages are lowercase, name what was being done, and
//! never contain alert contents beyond a key.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the state directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the state database: {0}")]
    Open(#[from] redb::DatabaseError),
    /// A state file of 0 bytes: redb would take it for a new database, and tocsin
    /// would start from nothing without a word.
    #[error(
        "the state file {path} is empty (0 bytes): it was truncated or never written, and \
         opening it would start from nothing (incident numbers from 1, every open alert \
         forgotten). Restore it from a backup, or, to start fresh on purpose, delete it \
         (rm {path}) and start again"
    )]
    EmptyFile { path: PathBuf },
    #[error("cannot create the state file {path}: {source}")]
    CreateFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the state database {path}: {source}")]
    OpenFile {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    /// A failed commit as each request it carried sees it (group commit).
    #[error("{0}")]
    Shared(String),
    #[error("cannot write the state journal {path}: {source}")]
    Journal {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the state database is closed after an I/O error and cannot be opened again yet")]
    Closed,
    #[error("cannot start a state database transaction: {0}")]
    Transaction(#[from] redb::TransactionError),
    #[error("cannot open a state database table: {0}")]
    Table(#[from] redb::TableError),
    #[error("state database storage error: {0}")]
    Storage(#[from] redb::StorageError),
    #[error("cannot commit to the state database: {0}")]
    Commit(#[from] redb::CommitError),
    #[error(
        "the state database has schema version {found}, newer than the {supported} this tocsin supports: upgrade tocsin"
    )]
    UnsupportedSchema { found: u64, supported: u64 },
    /// PostgreSQL refused or did not answer. The message never quotes the URL.
    #[error("cannot {doing} in the PostgreSQL state database: {message}")]
    Postgres {
        doing: &'static str,
        message: String,
    },
    /// A commit failed and the state could not be read back since: nothing is
    /// answered until it can, lest a change never committed be confirmed.
    #[error("the state store cannot be read back after a failed commit")]
    Stale,
    /// Another replica holds the lease on the shared state: this one may not commit.
    #[error("this replica is a standby: another replica holds the lease on the state")]
    Standby,
    #[error("cannot encode {table} record {key}: {source}")]
    Encode {
        table: &'static str,
        key: String,
        source: super::codec::CodecError,
    },
    #[error("corrupt {table} record {key}: {source}")]
    Decode {
        table: &'static str,
        key: String,
        source: super::codec::CodecError,
    },
}

impl StoreError {
    /// Whether the storage failed (as opposed to a record that cannot be encoded):
    /// redb then refuses every transaction until the database is reopened.
    pub fn is_io(&self) -> bool {
        !matches!(
            self,
            StoreError::Encode { .. }
                | StoreError::Decode { .. }
                | StoreError::UnsupportedSchema { .. }
        )
    }
}
