//! BatchGetItem, BatchWriteItem, TransactGetItems and TransactWriteItems.
//!
//! Every batch runs in one SQLite transaction, so nothing is ever left unprocessed
//! (`UnprocessedKeys`/`UnprocessedItems` are always empty) and a batch write is all or
//! nothing, which AWS does not promise but callers that retry unprocessed items handle the
//! same. TransactWriteItems evaluates every condition, and if any is false rolls back and
//! answers `TransactionCanceledException` with one reason per action, in order.

use super::error::{validation, CancellationReason, DynamoError, Result};
use super::items::{self, plan, Write};
use super::request::Req;
use super::value::item_to_json;
use super::Ctx;
use rusqlite::Connection;
use serde_json::{json, Map, Value as Json};

/// Most keys per BatchGetItem, actions per TransactWriteItems/TransactGetItems.
pub const MAX_BATCH_GET: usize = 100;
pub const MAX_BATCH_WRITE: usize = 25;
pub const MAX_TRANSACTION: usize = 100;

fn request_items(body: &Json) -> Result<&Map<String, Json>> {
    Req(body)
        .get("RequestItems")
        .and_then(Json::as_object)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| super::request::missing("RequestItems"))
}

/// A per-table request with `TableName` added, so it reads like a single-item request.
fn with_table(table: &str, v: &Json) -> Json {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.insert("TableName".into(), json!(table));
    }
    v
}

pub fn batch_get_item(conn: &mut Connection, ctx: &Ctx, body: &Json) -> Result<Json> {
    let tables = request_items(body)?;
    let total: usize = tables.values().map(|t| t["Keys"].as_array().map_or(0, Vec::len)).sum();
    if total > MAX_BATCH_GET {
        return Err(validation("Too many items requested for the BatchGetItem call"));
    }
    let mut responses = Map::new();
    for (table, spec) in tables {
        let keys = spec["Keys"].as_array().ok_or_else(|| super::request::missing("Keys"))?;
        let mut seen: Vec<&Json> = Vec::new();
        let mut found = Vec::new();
        for key in keys {
            if seen.contains(&key) {
                return Err(validation("Provided list of item keys contains duplicates"));
            }
            seen.push(key);
            let mut one = with_table(table, spec);
            one.as_object_mut().expect("an object").remove("Keys");
            one["Key"] = key.clone();
            if let (_, Some(item)) = items::read(conn, ctx, Req(&one))? {
                found.push(item_to_json(&item));
            }
        }
        responses.insert(table.clone(), Json::Array(found));
    }
    Ok(json!({ "Responses": responses, "UnprocessedKeys": {} }))
}

pub fn batch_write_item(conn: &mut Connection, ctx: &Ctx, body: &Json) -> Result<Json> {
    let tables = request_items(body)?;
    let total: usize = tables.values().map(|t| t.as_array().map_or(0, Vec::len)).sum();
    if total > MAX_BATCH_WRITE {
        return Err(validation(
            "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Map value must satisfy constraint: [Member must have length less than or equal to 25, Member must have length greater than or equal to 1]",
        ));
    }
    let tx = conn.transaction()?;
    let mut writes: Vec<Write> = Vec::new();
    for (table, list) in tables {
        for r in list.as_array().ok_or_else(|| super::request::missing("RequestItems"))? {
            let (kind, inner) = match (r.get("PutRequest"), r.get("DeleteRequest")) {
                (Some(p), None) => ("Put", p),
                (None, Some(d)) => ("Delete", d),
                _ => {
                    return Err(validation(
                        "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes",
                    ))
                }
            };
            let w = plan(&tx, ctx, kind, Req(&with_table(table, inner)))?;
            if writes.iter().any(|o| o.tid == w.tid && o.pk == w.pk && o.sk == w.sk) {
                return Err(validation("Provided list of item keys contains duplicates"));
            }
            writes.push(w);
        }
    }
    for w in &writes {
        // No conditions in a batch write: it always applies.
        let _ = items::apply(&tx, ctx, w)?;
    }
    tx.commit()?;
    Ok(json!({ "UnprocessedItems": {} }))
}

fn transact_items(body: &Json) -> Result<&Vec<Json>> {
    let list = Req(body)
        .get("TransactItems")
        .and_then(Json::as_array)
        .ok_or_else(|| super::request::missing("TransactItems"))?;
    if list.is_empty() || list.len() > MAX_TRANSACTION {
        return Err(validation(format!(
            "1 validation error detected: Value at 'transactItems' failed to satisfy constraint: Member must have length less than or equal to {MAX_TRANSACTION}"
        )));
    }
    Ok(list)
}

pub fn transact_write_items(conn: &mut Connection, ctx: &Ctx, body: &Json) -> Result<Json> {
    let list = transact_items(body)?;
    let tx = conn.transaction()?;
    let mut writes: Vec<Write> = Vec::new();
    for t in list {
        let obj = t
            .as_object()
            .filter(|o| o.len() == 1)
            .ok_or_else(|| validation("TransactItems can only contain one of Check, Put, Update or Delete"))?;
        let (kind, inner) = obj.iter().next().expect("one entry");
        if !["Put", "Update", "Delete", "ConditionCheck"].contains(&kind.as_str()) {
            return Err(validation(
                "TransactItems can only contain one of Check, Put, Update or Delete",
            ));
        }
        let w = plan(&tx, ctx, kind, Req(inner))?;
        if writes.iter().any(|o| o.tid == w.tid && o.pk == w.pk && o.sk == w.sk) {
            return Err(validation(
                "Transaction request cannot include multiple operations on one item",
            ));
        }
        writes.push(w);
    }
    let mut reasons = Vec::with_capacity(writes.len());
    let mut failed = false;
    for w in &writes {
        match items::apply(&tx, ctx, w)? {
            Ok(_) => reasons.push(CancellationReason {
                code: "None",
                message: None,
                item: None,
            }),
            Err(item) => {
                failed = true;
                reasons.push(CancellationReason {
                    code: "ConditionalCheckFailed",
                    message: Some("The conditional request failed".into()),
                    item,
                });
            }
        }
    }
    if failed {
        // Dropping `tx` rolls back every write made before the failure was known.
        return Err(DynamoError::TransactionCanceled { reasons });
    }
    tx.commit()?;
    Ok(json!({}))
}

pub fn transact_get_items(conn: &mut Connection, ctx: &Ctx, body: &Json) -> Result<Json> {
    let list = transact_items(body)?;
    let tx = conn.transaction()?;
    let mut responses = Vec::with_capacity(list.len());
    for t in list {
        let get = t
            .get("Get")
            .ok_or_else(|| validation("TransactGetItems can only contain Get"))?;
        let (_, item) = items::read(&tx, ctx, Req(get))?;
        responses.push(match item {
            Some(i) => json!({ "Item": item_to_json(&i) }),
            None => json!({}),
        });
    }
    tx.commit()?;
    Ok(json!({ "Responses": responses }))
}
