//! The PostgreSQL schema, in one place: every table and the versioned migrations
//! applied at start.
//!
//! Record values are `bytea` in the shared record encoding (`codec.rs`), so a row
//! reads the same as the redb backend's value for the same record. Keys are
//! columns: fingerprints and ids are u64, stored bit for bit in `bigint` (`as i64`).
//!
//! `tocsin_schema` holds the version. A change to the tables appends one step to
//! [`MIGRATIONS`]; steps run in one transaction under an advisory lock, so
//! replicas that start together migrate once, and a failed step leaves the
//! database as it was.

use tokio_postgres::Client;

use super::StoreError;
use super::db_error;

/// `MIGRATIONS[v]` turns a version `v` database into version `v + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: the tables of the redb schema version 4, as columns.
    "CREATE TABLE tocsin_meta (key text PRIMARY KEY, value bigint NOT NULL);
     INSERT INTO tocsin_meta (key, value) VALUES
         ('next_incident', 1), ('next_delivery', 1), ('next_timeline', 0);
     CREATE TABLE tocsin_alerts (fingerprint bigint PRIMARY KEY, record bytea NOT NULL);
     CREATE TABLE tocsin_timeline (
         fingerprint bigint NOT NULL, seq bigint NOT NULL, record bytea NOT NULL,
         PRIMARY KEY (fingerprint, seq));
     CREATE TABLE tocsin_incidents (id bigint PRIMARY KEY, fingerprint bigint NOT NULL);
     CREATE TABLE tocsin_silences (id text PRIMARY KEY, record bytea NOT NULL);
     CREATE TABLE tocsin_escalations (fingerprint bigint PRIMARY KEY, record bytea NOT NULL);
     CREATE TABLE tocsin_outbox (id bigint PRIMARY KEY, record bytea NOT NULL);
     CREATE TABLE tocsin_sent (key text PRIMARY KEY, at bigint NOT NULL);
     CREATE INDEX tocsin_sent_at ON tocsin_sent (at);
     CREATE TABLE tocsin_message_refs (
         fingerprint bigint NOT NULL, address text NOT NULL, reference text NOT NULL,
         PRIMARY KEY (fingerprint, address));
     CREATE TABLE tocsin_jobs (name text PRIMARY KEY, at bigint NOT NULL);",
    // 2: the lease one replica acts under (`lease.rs`), with its fencing epoch.
    "CREATE TABLE tocsin_lease (
         id int PRIMARY KEY CHECK (id = 1), holder text NOT NULL,
         epoch bigint NOT NULL, expires_at timestamptz NOT NULL);
     INSERT INTO tocsin_lease VALUES (1, '', 0, '-infinity');",
    // 3: any replica accepts writes: the holder's URL, where standbys forward
    // them (`lease.rs`), and keys every replica signs with alike (`tocsin_keys`:
    // the web UI's cross-site tokens, the forwarded caller's address), each made
    // once by whichever replica needs it first.
    "ALTER TABLE tocsin_lease ADD COLUMN address text NOT NULL DEFAULT '';
     CREATE TABLE tocsin_keys (name text PRIMARY KEY, key bytea NOT NULL);",
];

/// The version this build writes. A database with a newer one is refused.
pub const PG_SCHEMA_VERSION: u64 = MIGRATIONS.len() as u64;

/// Any number: the advisory lock replicas take while they migrate.
const MIGRATION_LOCK: i64 = 0x746f_6373_696e_0001;

/// Brings the database up to [`PG_SCHEMA_VERSION`], or refuses a newer one.
pub async fn migrate(client: &mut Client) -> Result<u64, StoreError> {
    let txn = client
        .transaction()
        .await
        .map_err(db_error("begin the migration"))?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db_error("lock for the migration"))?;
    txn.batch_execute("CREATE TABLE IF NOT EXISTS tocsin_schema (version bigint NOT NULL)")
        .await
        .map_err(db_error("create the schema table"))?;
    let found: u64 = txn
        .query_opt("SELECT version FROM tocsin_schema", &[])
        .await
        .map_err(db_error("read the schema version"))?
        .map(|row| row.get::<_, i64>(0) as u64)
        .unwrap_or(0);
    if found > PG_SCHEMA_VERSION {
        return Err(StoreError::UnsupportedSchema {
            found,
            supported: PG_SCHEMA_VERSION,
        });
    }
    for (version, step) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        txn.batch_execute(step)
            .await
            .map_err(db_error("migrate the schema"))?;
        tracing::info!(version = version + 1, "state database migrated");
    }
    if found != PG_SCHEMA_VERSION {
        txn.execute("DELETE FROM tocsin_schema", &[])
            .await
            .map_err(db_error("record the schema version"))?;
        txn.execute(
            "INSERT INTO tocsin_schema (version) VALUES ($1)",
            &[&(PG_SCHEMA_VERSION as i64)],
        )
        .await
        .map_err(db_error("record the schema version"))?;
    }
    txn.commit()
        .await
        .map_err(db_error("commit the migration"))?;
    Ok(PG_SCHEMA_VERSION)
}
