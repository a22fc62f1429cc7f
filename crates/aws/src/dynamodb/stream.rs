//! DynamoDB Streams: a change record for every write that changed an item, captured in the
//! same SQLite transaction as the write (so a cancelled transaction leaves none, and a crash
//! never loses one that was acknowledged), kept 24 hours as on AWS, and read in order
//! through the Streams API (ListStreams, DescribeStream, GetShardIterator, GetRecords) and
//! [`DynamoDb::read_stream`](super::DynamoDb::read_stream), which is what a stream event
//! source for functions reads.
//!
//! Records have the shape of DynamoDB Streams and of Lambda's stream events (`eventName`
//! `INSERT`/`MODIFY`/`REMOVE`, `dynamodb.Keys`, `NewImage`/`OldImage` as the stream's view
//! type says, `SequenceNumber`); a write that leaves the item as it was records nothing, and a
//! deletion by TTL carries `userIdentity` `dynamodb.amazonaws.com`, as on AWS. Each stream has
//! one shard (Gust has no partitions), so its records are in one total order: its
//! sequence numbers.

use super::error::{validation, DynamoError, Result};
use super::request::Req;
use super::store;
use super::table::TableMeta;
use super::value::{item_size, item_to_json, Item};
use super::Ctx;
use base64::Engine as _;
use rusqlite::{params, Connection};
use serde_json::{json, Value as Json};

/// How long records are kept (AWS: 24 hours).
pub const RETENTION_SECS: f64 = 24.0 * 3600.0;
/// Most records per GetRecords.
pub const MAX_RECORDS: usize = 1000;

/// Records the change from `old` to `new` (either absent) on the table's stream, if it has one.
pub fn capture(
    conn: &Connection,
    tid: i64,
    meta: &TableMeta,
    old: Option<&Item>,
    new: Option<&Item>,
    now: f64,
    by_ttl: bool,
) -> Result<()> {
    let Some(spec) = &meta.stream else { return Ok(()) };
    let event = match (old, new) {
        (None, Some(_)) => "INSERT",
        (Some(o), Some(n)) if o != n => "MODIFY",
        (Some(_), None) => "REMOVE",
        _ => return Ok(()),
    };
    let keys = meta.key_item(new.or(old).expect("one of them is there"), None);
    let mut size = item_size(&keys);
    let mut d = json!({
        "ApproximateCreationDateTime": now.floor(),
        "Keys": item_to_json(&keys),
        "StreamViewType": spec.view_type,
    });
    let view = spec.view_type.as_str();
    if let (Some(n), "NEW_IMAGE" | "NEW_AND_OLD_IMAGES") = (new, view) {
        d["NewImage"] = item_to_json(n);
        size += item_size(n);
    }
    if let (Some(o), "OLD_IMAGE" | "NEW_AND_OLD_IMAGES") = (old, view) {
        d["OldImage"] = item_to_json(o);
        size += item_size(o);
    }
    d["SizeBytes"] = json!(size);
    let mut record = json!({
        "eventID": uuid::Uuid::new_v4().simple().to_string(),
        "eventName": event,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "dynamodb": d,
    });
    if by_ttl {
        record["userIdentity"] = json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"});
    }
    conn.prepare_cached("INSERT INTO ddb_stream (tid, label, created, record) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![tid, spec.label, now, record.to_string()])?;
    Ok(())
}

/// Drops records older than the retention.
pub fn trim(conn: &Connection, now: f64) -> Result<()> {
    conn.execute(
        "DELETE FROM ddb_stream WHERE created < ?1",
        params![now - RETENTION_SECS],
    )?;
    Ok(())
}

fn sequence_number(seq: i64) -> String {
    format!("{seq:021}")
}

/// Records of the stream `label` of table `tid` after sequence number `after`, in order, with
/// `SequenceNumber` and `awsRegion` filled in: `(seq, record)`.
pub fn records(
    conn: &Connection,
    tid: i64,
    label: &str,
    after: i64,
    limit: usize,
    region: &str,
) -> Result<Vec<(i64, Json)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, record FROM ddb_stream WHERE tid = ?1 AND label = ?2 AND seq > ?3 ORDER BY seq LIMIT ?4",
    )?;
    let rows = stmt
        .query_map(params![tid, label, after, limit as i64], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(seq, text)| {
            let mut v: Json =
                serde_json::from_str(&text).map_err(|e| DynamoError::Internal(format!("stored stream record: {e}")))?;
            v["awsRegion"] = json!(region);
            v["dynamodb"]["SequenceNumber"] = json!(sequence_number(seq));
            Ok((seq, v))
        })
        .collect()
}

fn last_seq(conn: &Connection, tid: i64, label: &str) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT COALESCE(MAX(seq), 0) FROM ddb_stream WHERE tid = ?1 AND label = ?2",
        params![tid, label],
        |r| r.get(0),
    )?)
}

fn first_seq(conn: &Connection, tid: i64, label: &str) -> Result<Option<i64>> {
    Ok(conn.query_row(
        "SELECT MIN(seq) FROM ddb_stream WHERE tid = ?1 AND label = ?2",
        params![tid, label],
        |r| r.get(0),
    )?)
}

fn not_found(arn: &str) -> DynamoError {
    DynamoError::ResourceNotFound(format!("Requested resource not found: Stream: {arn} not found"))
}

/// The table and label a stream ARN names (`arn:aws:dynamodb:R:A:table/NAME/stream/LABEL`),
/// when that table's current stream has that label.
pub fn resolve(conn: &Connection, ctx: &Ctx, arn: &str) -> Result<(i64, TableMeta, String)> {
    let rest = arn
        .split_once(":table/")
        .map(|(_, r)| r)
        .ok_or_else(|| not_found(arn))?;
    let (name, label) = rest.split_once("/stream/").ok_or_else(|| not_found(arn))?;
    let (tid, meta) = store::table(conn, ctx.app, name)?.ok_or_else(|| not_found(arn))?;
    match &meta.stream {
        Some(s) if s.label == label => Ok((tid, meta.clone(), label.to_string())),
        _ => Err(not_found(arn)),
    }
}

/// The one shard of a stream.
fn shard_id(meta: &TableMeta) -> String {
    format!("shardId-00000000000000000001-{}", &meta.id[..8])
}

pub(crate) fn iterator(arn: &str, after: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{arn}|{after}"))
}

pub(crate) fn parse_iterator(it: &str) -> Result<(String, i64)> {
    let invalid = || validation("Invalid ShardIterator");
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(it)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(invalid)?;
    let (arn, after) = text.rsplit_once('|').ok_or_else(invalid)?;
    Ok((arn.to_string(), after.parse().map_err(|_| invalid())?))
}

pub fn list_streams(conn: &mut Connection, ctx: &Ctx, body: &Json) -> Result<Json> {
    let req = Req(body);
    let only = req.str("TableName");
    let mut streams = Vec::new();
    for name in store::table_names(conn, ctx.app)? {
        if only.is_some_and(|t| t != name) {
            continue;
        }
        if let Some((_, meta)) = store::table(conn, ctx.app, &name)? {
            if let (Some(arn), Some(s)) = (meta.stream_arn(ctx.region), &meta.stream) {
                streams.push(json!({"StreamArn": arn, "TableName": name, "StreamLabel": s.label}));
            }
        }
    }
    Ok(json!({ "Streams": streams }))
}

pub fn describe_stream(conn: &mut Connection, ctx: &Ctx, body: &Json) -> Result<Json> {
    let arn = Req(body).required_str("StreamArn")?;
    let (tid, meta, label) = resolve(conn, ctx, arn)?;
    let spec = meta.stream.as_ref().expect("resolved streams are enabled");
    let start = first_seq(conn, tid, &label)?.unwrap_or(1);
    let key_schema = meta.describe(ctx.region, "ACTIVE", 0, 0)["KeySchema"].take();
    Ok(json!({
        "StreamDescription": {
            "StreamArn": arn,
            "StreamLabel": label,
            "StreamStatus": "ENABLED",
            "StreamViewType": spec.view_type,
            "CreationRequestDateTime": spec.created,
            "TableName": meta.name,
            "KeySchema": key_schema,
            "Shards": [{
                "ShardId": shard_id(&meta),
                "SequenceNumberRange": {"StartingSequenceNumber": sequence_number(start)}
            }]
        }
    }))
}

pub fn get_shard_iterator(conn: &mut Connection, ctx: &Ctx, body: &Json) -> Result<Json> {
    let req = Req(body);
    let arn = req.required_str("StreamArn")?;
    let (tid, meta, label) = resolve(conn, ctx, arn)?;
    if req.required_str("ShardId")? != shard_id(&meta) {
        return Err(DynamoError::ResourceNotFound(format!(
            "Requested resource not found: Shard does not exist: {}",
            req.str("ShardId").unwrap_or_default()
        )));
    }
    let seq = || -> Result<i64> {
        req.required_str("SequenceNumber")?
            .parse::<i64>()
            .map_err(|_| validation("Invalid SequenceNumber"))
    };
    let after = match req.required_str("ShardIteratorType")? {
        "TRIM_HORIZON" => 0,
        "LATEST" => last_seq(conn, tid, &label)?,
        "AT_SEQUENCE_NUMBER" => seq()? - 1,
        "AFTER_SEQUENCE_NUMBER" => seq()?,
        other => {
            return Err(validation(format!(
                "1 validation error detected: Value '{other}' at 'shardIteratorType' failed to satisfy constraint: Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, LATEST, AT_SEQUENCE_NUMBER, TRIM_HORIZON]"
            )))
        }
    };
    Ok(json!({ "ShardIterator": iterator(arn, after) }))
}

pub fn get_records(conn: &mut Connection, ctx: &Ctx, body: &Json) -> Result<Json> {
    let req = Req(body);
    let (arn, after) = parse_iterator(req.required_str("ShardIterator")?)?;
    let (tid, _, label) = resolve(conn, ctx, &arn)?;
    let limit = match req.get("Limit").map(Json::as_u64) {
        None => MAX_RECORDS,
        Some(Some(n)) if (1..=MAX_RECORDS as u64).contains(&n) => n as usize,
        Some(_) => {
            return Err(validation(
                "1 validation error detected: Value at 'limit' failed to satisfy constraint: Member must have value less than or equal to 1000",
            ))
        }
    };
    let records = records(conn, tid, &label, after, limit, ctx.region)?;
    let next = records.last().map_or(after, |(seq, _)| *seq);
    Ok(json!({
        "Records": records.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
        "NextShardIterator": iterator(&arn, next),
    }))
}
