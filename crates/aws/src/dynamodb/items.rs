//! The single-item operations (PutItem, GetItem, DeleteItem, UpdateItem) and the write plan
//! they share with TransactWriteItems and BatchWriteItem: a request is parsed and checked into
//! a [`Write`] before anything is touched, then applied in a SQLite transaction, where its
//! condition is evaluated against the item as stored.

use super::error::{validation, DynamoError, Result};
use super::expr::{eval, parse, project::project, update, Cond, Path, Update};
use super::request::{read_units, write_units, Req};
use super::store::{self, Stored};
use super::table::TableMeta;
use super::value::{item_size, item_to_json, Item};
use super::Ctx;
use rusqlite::Connection;
use serde_json::{json, Value as Json};

#[derive(Debug)]
pub enum Action {
    Put(Item),
    Delete,
    /// The key attributes (the item an update of a missing item starts from) and the update.
    Update(Item, Option<Update>),
    /// TransactWriteItems' `ConditionCheck`.
    Check,
}

/// One checked write, ready to apply.
#[derive(Debug)]
pub struct Write {
    pub tid: i64,
    pub meta: TableMeta,
    pub pk: Vec<u8>,
    pub sk: Vec<u8>,
    pub cond: Option<Cond>,
    pub action: Action,
    pub all_old_on_failure: bool,
}

/// What a write did: the item before (if there was one) and after (if there is one).
#[derive(Debug)]
pub struct Applied {
    pub old: Option<Item>,
    pub new: Option<Item>,
}

/// The update's written paths, for `UPDATED_OLD`/`UPDATED_NEW`.
fn updated_paths(action: &Action) -> Vec<Path> {
    match action {
        Action::Update(_, Some(u)) => u.paths().into_iter().cloned().collect(),
        _ => Vec::new(),
    }
}

/// Parses and checks one write request: `kind` is `Put`, `Delete`, `Update` or
/// `ConditionCheck`.
pub fn plan(conn: &Connection, ctx: &Ctx, kind: &str, req: Req) -> Result<Write> {
    req.refuse_legacy(&["Expected", "AttributeUpdates", "ConditionalOperator"])?;
    let (tid, meta) = store::require(conn, ctx.app, req.table_name()?)?;
    let mut ph = req.placeholders()?;
    let cond = req.condition("ConditionExpression", &mut ph)?;
    let (key_item, action) = match kind {
        "Put" => {
            let item = req.item("Item")?;
            (item.clone(), Action::Put(item))
        }
        "Update" => {
            let key = req.item("Key")?;
            let u = req
                .str("UpdateExpression")
                .map(|s| parse::update(s, &mut ph))
                .transpose()?;
            if let Some(u) = &u {
                for p in u.paths() {
                    if let Some(super::expr::Step::Name(first)) = p.first() {
                        if meta.key.attrs().any(|a| &a.name == first) {
                            return Err(validation(format!(
                                "One or more parameter values were invalid: Cannot update attribute {first}. This attribute is part of the key"
                            )));
                        }
                    }
                }
            }
            (key.clone(), Action::Update(key, u))
        }
        "Delete" => (req.item("Key")?, Action::Delete),
        "ConditionCheck" => {
            if cond.is_none() {
                return Err(super::request::missing("ConditionExpression"));
            }
            (req.item("Key")?, Action::Check)
        }
        other => return Err(validation(format!("unknown write {other}"))),
    };
    ph.check_all_used()?;
    let exact = !matches!(action, Action::Put(_));
    let (pk, sk) = meta.table_key(&key_item, exact)?;
    if let Action::Put(item) = &action {
        if item_size(item) > store::MAX_ITEM_BYTES {
            return Err(validation("Item size has exceeded the maximum allowed size"));
        }
    }
    Ok(Write {
        tid,
        meta,
        pk,
        sk,
        cond,
        action,
        all_old_on_failure: req.all_old_on_failure(),
    })
}

/// Applies `w`: `Ok(Err(item))` when its condition is false (`item`: the current one, when
/// asked for).
pub fn apply(conn: &Connection, ctx: &Ctx, w: &Write) -> Result<std::result::Result<Applied, Option<Item>>> {
    let stored: Option<Stored> = store::load(conn, w.tid, &w.pk, &w.sk, ctx.now_secs())?;
    let visible = stored.as_ref().and_then(Stored::visible).cloned();
    if let Some(c) = &w.cond {
        let empty = Item::new();
        if !eval::condition(visible.as_ref().unwrap_or(&empty), c)? {
            return Ok(Err(if w.all_old_on_failure { visible } else { None }));
        }
    }
    let physical = stored.as_ref().map(|s| &s.item);
    let new = match &w.action {
        Action::Check => {
            return Ok(Ok(Applied {
                old: visible.clone(),
                new: visible,
            }))
        }
        Action::Delete => {
            if let Some(old) = physical {
                store::remove(conn, w.tid, &w.meta, old)?;
            }
            None
        }
        Action::Put(item) => Some(item.clone()),
        Action::Update(key, u) => {
            let base = visible.clone().unwrap_or_else(|| key.clone());
            Some(match u {
                Some(u) => update::apply(u, &base)?,
                None => base,
            })
        }
    };
    if let Some(new) = &new {
        store::write(conn, w.tid, &w.meta, physical, new)?;
    }
    super::stream::capture(conn, w.tid, &w.meta, visible.as_ref(), new.as_ref(), ctx.now, false)?;
    Ok(Ok(Applied { old: visible, new }))
}

/// Runs one write in its own transaction; a false condition is
/// `ConditionalCheckFailedException`.
fn run_one(conn: &mut Connection, ctx: &Ctx, kind: &str, req: Req) -> Result<(Write, Applied)> {
    let tx = conn.transaction()?;
    let w = plan(&tx, ctx, kind, req)?;
    match apply(&tx, ctx, &w)? {
        Ok(applied) => {
            tx.commit()?;
            Ok((w, applied))
        }
        Err(item) => Err(DynamoError::ConditionalCheckFailed { item }),
    }
}

fn with_capacity(mut out: Json, req: Req, table: &str, units: f64) -> Json {
    if let Some(c) = req.capacity(table, units) {
        out["ConsumedCapacity"] = c;
    }
    out
}

pub fn put_item(conn: &mut Connection, ctx: &Ctx, body: &Json) -> Result<Json> {
    let req = Req(body);
    let rv = req.return_values(&["NONE", "ALL_OLD"])?;
    let (w, applied) = run_one(conn, ctx, "Put", req)?;
    let mut out = json!({});
    if rv == "ALL_OLD" {
        if let Some(old) = &applied.old {
            out["Attributes"] = item_to_json(old);
        }
    }
    let size = applied.new.as_ref().map(item_size).unwrap_or(0);
    Ok(with_capacity(out, req, &w.meta.name, write_units(size)))
}

pub fn delete_item(conn: &mut Connection, ctx: &Ctx, body: &Json) -> Result<Json> {
    let req = Req(body);
    let rv = req.return_values(&["NONE", "ALL_OLD"])?;
    let (w, applied) = run_one(conn, ctx, "Delete", req)?;
    let mut out = json!({});
    if rv == "ALL_OLD" {
        if let Some(old) = &applied.old {
            out["Attributes"] = item_to_json(old);
        }
    }
    let size = applied.old.as_ref().map(item_size).unwrap_or(0);
    Ok(with_capacity(out, req, &w.meta.name, write_units(size)))
}

pub fn update_item(conn: &mut Connection, ctx: &Ctx, body: &Json) -> Result<Json> {
    let req = Req(body);
    let rv = req.return_values(&["NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"])?;
    let (w, applied) = run_one(conn, ctx, "Update", req)?;
    let paths = updated_paths(&w.action);
    let attributes = match rv {
        "ALL_OLD" => applied.old.clone(),
        "ALL_NEW" => applied.new.clone(),
        "UPDATED_OLD" => applied.old.as_ref().map(|i| project(i, &paths)),
        "UPDATED_NEW" => applied.new.as_ref().map(|i| project(i, &paths)),
        _ => None,
    };
    let mut out = json!({});
    if let Some(a) = attributes.filter(|a| !a.is_empty()) {
        out["Attributes"] = item_to_json(&a);
    }
    let size = applied.new.as_ref().map(item_size).unwrap_or(0);
    Ok(with_capacity(out, req, &w.meta.name, write_units(size)))
}

/// Reads one item by its `Key` (expired items are absent), projected.
pub fn read(conn: &Connection, ctx: &Ctx, req: Req) -> Result<(TableMeta, Option<Item>)> {
    let (tid, meta) = store::require(conn, ctx.app, req.table_name()?)?;
    let key = req.item("Key")?;
    let mut ph = req.placeholders()?;
    let projection = req.projection(&mut ph)?;
    ph.check_all_used()?;
    let (pk, sk) = meta.table_key(&key, true)?;
    let item = store::load(conn, tid, &pk, &sk, ctx.now_secs())?
        .and_then(|s| s.visible().cloned())
        .map(|i| match &projection {
            Some(p) => project(&i, p),
            None => i,
        });
    Ok((meta, item))
}

pub fn get_item(conn: &mut Connection, ctx: &Ctx, body: &Json) -> Result<Json> {
    let req = Req(body);
    let (meta, item) = read(conn, ctx, req)?;
    let mut out = json!({});
    let size = item.as_ref().map(item_size).unwrap_or(0);
    if let Some(item) = item {
        out["Item"] = item_to_json(&item);
    }
    Ok(with_capacity(out, req, &meta.name, read_units(size)))
}
