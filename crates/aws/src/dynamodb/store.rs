//! Where tables live: SQLite, one row per table in `ddb_tables` (per app: `app` is a column,
//! so more apps per Gust is a change of a parameter), one row per item in `ddb_items` keyed
//! by `(table id, partition key bytes, sort key bytes)`, and one row per item per secondary
//! index in `ddb_index` keyed by the index's key bytes then the table's. Both are `WITHOUT
//! ROWID` tables whose primary key is the order DynamoDB reads in, so a Query is a range scan
//! of the primary key index (see `table.rs` for the key byte encoding).
//!
//! Items are stored as their DynamoDB JSON; `expires` holds the TTL attribute's value (epoch
//! seconds) while TTL is on, so reads skip expired items with a comparison and the sweep finds
//! them through a partial index. Tables are keyed by a numeric id, not by name, so a table
//! deleted and created again never sees the old one's rows.

use super::error::{validation, DynamoError, Result};
use super::table::{Index, TableMeta};
use super::value::{item_from_json, item_size, item_to_json, Item};
use rusqlite::{params, Connection, OptionalExtension};

/// DynamoDB's item size limit.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ddb_tables (
    id INTEGER PRIMARY KEY,
    app TEXT NOT NULL,
    name TEXT NOT NULL,
    meta TEXT NOT NULL,
    UNIQUE (app, name)
);
CREATE TABLE IF NOT EXISTS ddb_items (
    tid INTEGER NOT NULL,
    pk BLOB NOT NULL,
    sk BLOB NOT NULL,
    item TEXT NOT NULL,
    size INTEGER NOT NULL,
    expires INTEGER,
    PRIMARY KEY (tid, pk, sk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ddb_items_expiry ON ddb_items (expires) WHERE expires IS NOT NULL;
CREATE TABLE IF NOT EXISTS ddb_stream (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tid INTEGER NOT NULL,
    label TEXT NOT NULL,
    created REAL NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ddb_stream_table ON ddb_stream (tid, label, seq);
CREATE INDEX IF NOT EXISTS ddb_stream_created ON ddb_stream (created);
-- The last sequence number a stream event source settled, per consumer (a subscription):
-- next to the records it points into, so that both survive (and are removed) together.
CREATE TABLE IF NOT EXISTS ddb_stream_checkpoint (
    consumer TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ddb_index (
    tid INTEGER NOT NULL,
    idx TEXT NOT NULL,
    pk BLOB NOT NULL,
    sk BLOB NOT NULL,
    tpk BLOB NOT NULL,
    tsk BLOB NOT NULL,
    PRIMARY KEY (tid, idx, pk, sk, tpk, tsk)
) WITHOUT ROWID;
";

fn not_found(name: &str) -> DynamoError {
    DynamoError::ResourceNotFound(format!("Requested resource not found: Table: {name} not found"))
}

pub fn parse_meta(text: &str) -> Result<TableMeta> {
    serde_json::from_str(text).map_err(|e| DynamoError::Internal(format!("stored table definition: {e}")))
}

pub fn parse_item(text: &str) -> Result<Item> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| DynamoError::Internal(format!("stored item: {e}")))?;
    item_from_json(&v)
}

pub fn table(conn: &Connection, app: &str, name: &str) -> Result<Option<(i64, TableMeta)>> {
    let row: Option<(i64, String)> = conn
        .query_row(
            "SELECT id, meta FROM ddb_tables WHERE app = ?1 AND name = ?2",
            params![app, name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    row.map(|(id, meta)| Ok((id, parse_meta(&meta)?))).transpose()
}

/// The table, or `ResourceNotFoundException`.
pub fn require(conn: &Connection, app: &str, name: &str) -> Result<(i64, TableMeta)> {
    table(conn, app, name)?.ok_or_else(|| not_found(name))
}

pub fn insert_table(conn: &Connection, app: &str, meta: &TableMeta) -> Result<i64> {
    if table(conn, app, &meta.name)?.is_some() {
        return Err(DynamoError::ResourceInUse(format!(
            "Table already exists: {}",
            meta.name
        )));
    }
    let text = serde_json::to_string(meta).map_err(|e| DynamoError::Internal(e.to_string()))?;
    conn.execute(
        "INSERT INTO ddb_tables (app, name, meta) VALUES (?1, ?2, ?3)",
        params![app, meta.name, text],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn save_meta(conn: &Connection, tid: i64, meta: &TableMeta) -> Result<()> {
    let text = serde_json::to_string(meta).map_err(|e| DynamoError::Internal(e.to_string()))?;
    conn.execute("UPDATE ddb_tables SET meta = ?1 WHERE id = ?2", params![text, tid])?;
    Ok(())
}

pub fn delete_table(conn: &Connection, tid: i64) -> Result<()> {
    conn.execute("DELETE FROM ddb_index WHERE tid = ?1", params![tid])?;
    conn.execute("DELETE FROM ddb_stream WHERE tid = ?1", params![tid])?;
    conn.execute("DELETE FROM ddb_items WHERE tid = ?1", params![tid])?;
    conn.execute("DELETE FROM ddb_tables WHERE id = ?1", params![tid])?;
    Ok(())
}

pub fn table_names(conn: &Connection, app: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM ddb_tables WHERE app = ?1 ORDER BY name")?;
    let names = stmt
        .query_map(params![app], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(names)
}

/// Entries per secondary index of a table.
pub fn index_counts(conn: &Connection, tid: i64) -> Result<std::collections::HashMap<String, u64>> {
    let mut stmt = conn.prepare("SELECT idx, COUNT(*) FROM ddb_index WHERE tid = ?1 GROUP BY idx")?;
    let rows = stmt
        .query_map(params![tid], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// `(item count, bytes)` of a table.
pub fn counts(conn: &Connection, tid: i64) -> Result<(u64, u64)> {
    Ok(conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM ddb_items WHERE tid = ?1",
        params![tid],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )?)
}

/// An item as stored; `expired` when its TTL has passed (it is then treated as absent, and
/// its rows are replaced or removed by the next write or the sweep).
#[derive(Debug, Clone)]
pub struct Stored {
    pub item: Item,
    pub expired: bool,
}

impl Stored {
    pub fn visible(&self) -> Option<&Item> {
        (!self.expired).then_some(&self.item)
    }
}

pub fn load(conn: &Connection, tid: i64, pk: &[u8], sk: &[u8], now: i64) -> Result<Option<Stored>> {
    let row: Option<(String, Option<i64>)> = conn
        .prepare_cached("SELECT item, expires FROM ddb_items WHERE tid = ?1 AND pk = ?2 AND sk = ?3")?
        .query_row(params![tid, pk, sk], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(text, expires)| {
        Ok(Stored {
            item: parse_item(&text)?,
            expired: expires.is_some_and(|e| e <= now),
        })
    })
    .transpose()
}

/// An index an item is in, with the item's key bytes in it.
type IndexRow<'a> = (&'a Index, Vec<u8>, Vec<u8>);

fn index_rows<'a>(meta: &'a TableMeta, item: &Item) -> Result<Vec<IndexRow<'a>>> {
    let mut out = Vec::new();
    for ix in &meta.indexes {
        if let Some((pk, sk)) = meta.index_key(ix, item)? {
            out.push((ix, pk, sk));
        }
    }
    Ok(out)
}

/// Writes `new` over `old` (the row as stored, expired or not): the item row and its index rows.
pub fn write(conn: &Connection, tid: i64, meta: &TableMeta, old: Option<&Item>, new: &Item) -> Result<()> {
    let size = item_size(new);
    if size > MAX_ITEM_BYTES {
        return Err(validation("Item size has exceeded the maximum allowed size"));
    }
    let (pk, sk) = meta.table_key(new, false)?;
    let new_index = index_rows(meta, new)?;
    if let Some(old) = old {
        remove_index_rows(conn, tid, meta, old)?;
    }
    let text = item_to_json(new).to_string();
    conn.execute(
        "INSERT OR REPLACE INTO ddb_items (tid, pk, sk, item, size, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![tid, pk, sk, text, size as i64, meta.expiry(new)],
    )?;
    for (ix, ipk, isk) in new_index {
        conn.execute(
            "INSERT OR REPLACE INTO ddb_index (tid, idx, pk, sk, tpk, tsk) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![tid, ix.name, ipk, isk, pk, sk],
        )?;
    }
    Ok(())
}

fn remove_index_rows(conn: &Connection, tid: i64, meta: &TableMeta, old: &Item) -> Result<()> {
    let (pk, sk) = meta.table_key(old, false)?;
    for (ix, ipk, isk) in index_rows(meta, old)? {
        conn.execute(
            "DELETE FROM ddb_index WHERE tid = ?1 AND idx = ?2 AND pk = ?3 AND sk = ?4 AND tpk = ?5 AND tsk = ?6",
            params![tid, ix.name, ipk, isk, pk, sk],
        )?;
    }
    Ok(())
}

/// Removes `old` (as stored) and its index rows.
pub fn remove(conn: &Connection, tid: i64, meta: &TableMeta, old: &Item) -> Result<()> {
    remove_index_rows(conn, tid, meta, old)?;
    let (pk, sk) = meta.table_key(old, false)?;
    conn.execute(
        "DELETE FROM ddb_items WHERE tid = ?1 AND pk = ?2 AND sk = ?3",
        params![tid, pk, sk],
    )?;
    Ok(())
}

/// Every item of a table, for rebuilding what is derived from them.
fn all_items(conn: &Connection, tid: i64) -> Result<Vec<Item>> {
    let mut stmt = conn.prepare("SELECT item FROM ddb_items WHERE tid = ?1")?;
    let texts = stmt
        .query_map(params![tid], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    texts.iter().map(|t| parse_item(t)).collect()
}

/// Fills a new index from the table's items (UpdateTable's `Create`).
pub fn backfill(conn: &Connection, tid: i64, meta: &TableMeta, index: &Index) -> Result<()> {
    for item in all_items(conn, tid)? {
        let (pk, sk) = meta.table_key(&item, false)?;
        if let Some((ipk, isk)) = meta.index_key(index, &item)? {
            conn.execute(
                "INSERT OR REPLACE INTO ddb_index (tid, idx, pk, sk, tpk, tsk) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![tid, index.name, ipk, isk, pk, sk],
            )?;
        }
    }
    Ok(())
}

pub fn drop_index(conn: &Connection, tid: i64, index: &str) -> Result<()> {
    conn.execute("DELETE FROM ddb_index WHERE tid = ?1 AND idx = ?2", params![tid, index])?;
    Ok(())
}

/// Recomputes `expires` for every item after TTL was turned on or off.
pub fn recompute_expiry(conn: &Connection, tid: i64, meta: &TableMeta) -> Result<()> {
    for item in all_items(conn, tid)? {
        let (pk, sk) = meta.table_key(&item, false)?;
        conn.execute(
            "UPDATE ddb_items SET expires = ?1 WHERE tid = ?2 AND pk = ?3 AND sk = ?4",
            params![meta.expiry(&item), tid, pk, sk],
        )?;
    }
    Ok(())
}

/// Deletes up to `max` expired items of every table (and their index rows); how many.
pub fn sweep(conn: &Connection, now: i64, max: usize) -> Result<usize> {
    let mut stmt = conn.prepare(
        "SELECT i.tid, t.meta, i.item FROM ddb_items i JOIN ddb_tables t ON t.id = i.tid
         WHERE i.expires IS NOT NULL AND i.expires <= ?1 LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![now, max as i64], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let now_f = now as f64;
    for (tid, meta, item) in &rows {
        let (meta, item) = (parse_meta(meta)?, parse_item(item)?);
        remove(conn, *tid, &meta, &item)?;
        super::stream::capture(conn, *tid, &meta, Some(&item), None, now_f, true)?;
    }
    super::stream::trim(conn, now_f)?;
    Ok(rows.len())
}
