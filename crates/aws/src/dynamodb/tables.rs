//! The control plane: CreateTable, DescribeTable, ListTables, DeleteTable, UpdateTable
//! (billing, throughput, adding and removing global secondary indexes) and TTL
//! (UpdateTimeToLive, DescribeTimeToLive). Tables are ready at once: `CreateTable` answers
//! `ACTIVE`, since nothing is provisioned, so SDK waiters return on their first poll.

use super::error::{validation, DynamoError, Result};
use super::request::Req;
use super::store;
use super::table::{parse_attributes, parse_index, throughput, TableMeta};
use super::Ctx;
use rusqlite::Connection;
use serde_json::{json, Value as Json};

fn describe(conn: &Connection, ctx: &Ctx, tid: i64, meta: &TableMeta, status: &str) -> Result<Json> {
    let (items, bytes) = store::counts(conn, tid)?;
    let mut d = meta.describe(ctx.region, status, items, bytes);
    let per_index = store::index_counts(conn, tid)?;
    for field in ["GlobalSecondaryIndexes", "LocalSecondaryIndexes"] {
        for ix in d[field].as_array_mut().into_iter().flatten() {
            let n = ix["IndexName"]
                .as_str()
                .and_then(|n| per_index.get(n))
                .copied()
                .unwrap_or(0);
            ix["ItemCount"] = json!(n);
        }
    }
    Ok(d)
}

pub fn create_table(conn: &mut Connection, ctx: &Ctx, body: &Json) -> Result<Json> {
    let meta = TableMeta::from_create(body, ctx.now)?;
    let tx = conn.transaction()?;
    let tid = store::insert_table(&tx, ctx.app, &meta)?;
    let d = describe(&tx, ctx, tid, &meta, "ACTIVE")?;
    tx.commit()?;
    Ok(json!({ "TableDescription": d }))
}

pub fn describe_table(conn: &mut Connection, ctx: &Ctx, body: &Json) -> Result<Json> {
    let (tid, meta) = store::require(conn, ctx.app, Req(body).table_name()?)?;
    Ok(json!({ "Table": describe(conn, ctx, tid, &meta, "ACTIVE")? }))
}

pub fn list_tables(conn: &mut Connection, ctx: &Ctx, body: &Json) -> Result<Json> {
    let req = Req(body);
    let limit = match req.get("Limit").map(|v| v.as_u64()) {
        None => 100,
        Some(Some(n)) if (1..=100).contains(&n) => n as usize,
        Some(_) => {
            return Err(validation(
                "1 validation error detected: Value at 'limit' failed to satisfy constraint: Member must have value less than or equal to 100",
            ))
        }
    };
    let start = req.str("ExclusiveStartTableName");
    let names: Vec<String> = store::table_names(conn, ctx.app)?
        .into_iter()
        .filter(|n| start.is_none_or(|s| n.as_str() > s))
        .collect();
    let page: Vec<&String> = names.iter().take(limit).collect();
    let mut out = json!({ "TableNames": page });
    if names.len() > limit {
        out["LastEvaluatedTableName"] = json!(page.last());
    }
    Ok(out)
}

pub fn delete_table(conn: &mut Connection, ctx: &Ctx, body: &Json) -> Result<Json> {
    let tx = conn.transaction()?;
    let (tid, meta) = store::require(&tx, ctx.app, Req(body).table_name()?)?;
    let d = describe(&tx, ctx, tid, &meta, "DELETING")?;
    store::delete_table(&tx, tid)?;
    tx.commit()?;
    Ok(json!({ "TableDescription": d }))
}

pub fn update_table(conn: &mut Connection, ctx: &Ctx, body: &Json) -> Result<Json> {
    let req = Req(body);
    let tx = conn.transaction()?;
    let (tid, mut meta) = store::require(&tx, ctx.app, req.table_name()?)?;
    match (
        super::table::parse_stream_spec(req.get("StreamSpecification"), ctx.now)?,
        &meta.stream,
    ) {
        (None, _) => {}
        (Some(Some(_)), Some(_)) => {
            return Err(validation(format!(
                "Table already has an enabled stream: TableName: {}",
                meta.name
            )))
        }
        (Some(None), None) => {
            return Err(validation(format!(
                "Table does not have a stream enabled: TableName: {}",
                meta.name
            )))
        }
        (Some(spec), _) => meta.stream = spec,
    }
    if let Some(mode) = req.str("BillingMode") {
        meta.billing = mode.to_string();
    }
    if let Some(t) = req.get("ProvisionedThroughput") {
        (meta.read_units, meta.write_units) = throughput(t);
    }
    if let Some(defs) = req.get("AttributeDefinitions") {
        for a in parse_attributes(defs)? {
            match meta.attributes.iter().find(|x| x.name == a.name) {
                Some(x) if x.ty != a.ty => {
                    return Err(validation(format!(
                        "One or more parameter values were invalid: Cannot change the type of attribute {} that is already a key",
                        a.name
                    )))
                }
                Some(_) => {}
                None => meta.attributes.push(a),
            }
        }
    }
    for u in req
        .get("GlobalSecondaryIndexUpdates")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(create) = u.get("Create") {
            let mut used = Vec::new();
            let index = parse_index(create, true, &meta.attributes, &mut used)?;
            if meta.indexes.iter().any(|i| i.name == index.name) {
                return Err(validation(format!(
                    "One or more parameter values were invalid: Index {} already exists",
                    index.name
                )));
            }
            meta.indexes.push(index.clone());
            store::backfill(&tx, tid, &meta, &index)?;
        } else if let Some(delete) = u.get("Delete") {
            let name = delete["IndexName"].as_str().unwrap_or_default();
            let before = meta.indexes.len();
            meta.indexes.retain(|i| !(i.global && i.name == name));
            if meta.indexes.len() == before {
                return Err(DynamoError::ResourceNotFound(format!(
                    "Requested resource not found: Index: {name} not found"
                )));
            }
            store::drop_index(&tx, tid, name)?;
        } else if u.get("Update").is_some() {
            // Throughput of an index: accepted, nothing is provisioned.
        } else {
            return Err(validation(
                "GlobalSecondaryIndexUpdates entries need Create, Update or Delete",
            ));
        }
    }
    store::save_meta(&tx, tid, &meta)?;
    let d = describe(&tx, ctx, tid, &meta, "ACTIVE")?;
    tx.commit()?;
    Ok(json!({ "TableDescription": d }))
}

pub fn update_time_to_live(conn: &mut Connection, ctx: &Ctx, body: &Json) -> Result<Json> {
    let req = Req(body);
    let spec = req
        .get("TimeToLiveSpecification")
        .ok_or_else(|| super::request::missing("TimeToLiveSpecification"))?;
    let enabled = spec["Enabled"]
        .as_bool()
        .ok_or_else(|| super::request::missing("TimeToLiveSpecification.Enabled"))?;
    let attr = spec["AttributeName"]
        .as_str()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| super::request::missing("TimeToLiveSpecification.AttributeName"))?;
    let tx = conn.transaction()?;
    let (tid, mut meta) = store::require(&tx, ctx.app, req.table_name()?)?;
    match (&meta.ttl, enabled) {
        (Some(_), true) => return Err(validation("TimeToLive is already enabled")),
        (None, false) => return Err(validation("TimeToLive is already disabled")),
        (Some(current), false) if current != attr => {
            return Err(validation(format!(
                "TimeToLive is active on a different AttributeName: current AttributeName is {current}"
            )))
        }
        _ => {}
    }
    meta.ttl = enabled.then(|| attr.to_string());
    store::save_meta(&tx, tid, &meta)?;
    store::recompute_expiry(&tx, tid, &meta)?;
    tx.commit()?;
    Ok(json!({ "TimeToLiveSpecification": { "Enabled": enabled, "AttributeName": attr } }))
}

pub fn describe_time_to_live(conn: &mut Connection, ctx: &Ctx, body: &Json) -> Result<Json> {
    let (_, meta) = store::require(conn, ctx.app, Req(body).table_name()?)?;
    Ok(json!({
        "TimeToLiveDescription": match &meta.ttl {
            Some(a) => json!({ "TimeToLiveStatus": "ENABLED", "AttributeName": a }),
            None => json!({ "TimeToLiveStatus": "DISABLED" }),
        }
    }))
}
