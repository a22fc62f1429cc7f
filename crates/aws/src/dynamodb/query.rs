//! Query and Scan: a range scan of the item table or of one secondary index in key order, read
//! lazily row by row, stopping at `Limit` evaluated items or 1 MB read (DynamoDB's page size),
//! then `FilterExpression`, the index's projection, `ProjectionExpression`, `Select`.
//!
//! `LastEvaluatedKey` is the key of the last item read (the table's key attributes, and the
//! index's for an index) and is only returned when another row follows, so a caller that pages
//! until it is absent sees every item exactly once, in order. `ExclusiveStartKey` resumes with
//! a row-value comparison on the same primary key columns SQLite reads in.

use super::error::{validation, Result};
use super::expr::{eval, project::project, CmpOp, Cond, Operand, Step};
use super::request::{read_units, Req};
use super::store;
use super::table::{condition_bytes, Index, KeySchema, KeyType, Projection, TableMeta};
use super::value::{item_to_json, Item, Value};
use super::Ctx;
use rusqlite::types::Value as Sql;
use rusqlite::Connection;
use serde_json::{json, Value as Json};

/// The most a Query or Scan reads for one page.
pub const MAX_PAGE_BYTES: usize = 1024 * 1024;

/// A key condition as bounds on the sort key bytes.
#[derive(Debug, Default)]
struct KeyRange {
    pk: Vec<u8>,
    /// `(bytes, inclusive)`
    lo: Option<(Vec<u8>, bool)>,
    hi: Option<(Vec<u8>, bool)>,
}

fn flatten<'a>(c: &'a Cond, out: &mut Vec<&'a Cond>) {
    if let Cond::And(a, b) = c {
        flatten(a, out);
        flatten(b, out);
    } else {
        out.push(c);
    }
}

fn attr_of(op: &Operand) -> Option<&str> {
    match op {
        Operand::Path(p) => match p.as_slice() {
            [Step::Name(n)] => Some(n),
            _ => None,
        },
        _ => None,
    }
}

fn value_of(op: &Operand) -> Option<&Value> {
    match op {
        Operand::Value(v) => Some(v),
        _ => None,
    }
}

/// The smallest byte string greater than every string starting with `prefix`.
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last < 0xff {
            p.push(last + 1);
            return Some(p);
        }
    }
    None
}

fn unsupported() -> super::error::DynamoError {
    validation("Query key condition not supported")
}

fn key_range(cond: &Cond, schema: &KeySchema) -> Result<KeyRange> {
    let mut parts = Vec::new();
    flatten(cond, &mut parts);
    if parts.len() > 2 {
        return Err(validation("Conditions can be of length 1 or 2 only"));
    }
    let mut range = KeyRange::default();
    let mut has_pk = false;
    for c in parts {
        match c {
            Cond::Cmp(a, op, b) => {
                let (name, v, op) = match (attr_of(a), value_of(b), attr_of(b), value_of(a)) {
                    (Some(n), Some(v), _, _) => (n, v, *op),
                    (_, _, Some(n), Some(v)) => (
                        n,
                        v,
                        match op {
                            CmpOp::Lt => CmpOp::Gt,
                            CmpOp::Le => CmpOp::Ge,
                            CmpOp::Gt => CmpOp::Lt,
                            CmpOp::Ge => CmpOp::Le,
                            o => *o,
                        },
                    ),
                    _ => return Err(unsupported()),
                };
                if name == schema.hash.name {
                    if op != CmpOp::Eq || has_pk {
                        return Err(unsupported());
                    }
                    range.pk = condition_bytes(v, schema.hash.ty)?;
                    has_pk = true;
                    continue;
                }
                let r = schema
                    .range
                    .as_ref()
                    .filter(|r| r.name == name)
                    .ok_or_else(unsupported)?;
                let b = condition_bytes(v, r.ty)?;
                match op {
                    CmpOp::Eq => {
                        range.lo = Some((b.clone(), true));
                        range.hi = Some((b, true));
                    }
                    CmpOp::Lt => range.hi = Some((b, false)),
                    CmpOp::Le => range.hi = Some((b, true)),
                    CmpOp::Gt => range.lo = Some((b, false)),
                    CmpOp::Ge => range.lo = Some((b, true)),
                    CmpOp::Ne => return Err(unsupported()),
                }
            }
            Cond::Between(x, lo, hi) => {
                let r = schema
                    .range
                    .as_ref()
                    .filter(|r| attr_of(x) == Some(r.name.as_str()))
                    .ok_or_else(unsupported)?;
                let (Some(lo), Some(hi)) = (value_of(lo), value_of(hi)) else {
                    return Err(unsupported());
                };
                if lo.compare(hi) == Some(std::cmp::Ordering::Greater) {
                    return Err(validation(format!(
                        "Invalid KeyConditionExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound; lower bound operand: AttributeValue: {}, upper bound operand: AttributeValue: {}",
                        short(lo),
                        short(hi)
                    )));
                }
                range.lo = Some((condition_bytes(lo, r.ty)?, true));
                range.hi = Some((condition_bytes(hi, r.ty)?, true));
            }
            Cond::BeginsWith(x, prefix) => {
                let r = schema
                    .range
                    .as_ref()
                    .filter(|r| attr_of(x) == Some(r.name.as_str()))
                    .ok_or_else(unsupported)?;
                if r.ty == KeyType::N {
                    return Err(validation(
                        "Invalid KeyConditionExpression: Incorrect operand type for operator or function; operator or function: begins_with, operand type: N",
                    ));
                }
                let p = condition_bytes(value_of(prefix).ok_or_else(unsupported)?, r.ty)?;
                range.hi = successor(&p).map(|s| (s, false));
                range.lo = Some((p, true));
            }
            _ => return Err(unsupported()),
        }
    }
    if !has_pk {
        return Err(validation(format!(
            "Query condition missed key schema element: {}",
            schema.hash.name
        )));
    }
    Ok(range)
}

/// `{N:5}` for messages.
fn short(v: &Value) -> String {
    let j = v.to_json();
    let (t, inner) = j
        .as_object()
        .and_then(|o| o.iter().next())
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap_or_default();
    format!(
        "{{{t}:{}}}",
        inner.as_str().map(str::to_string).unwrap_or_else(|| inner.to_string())
    )
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

/// What a page read: the answer body.
struct Page {
    items: Vec<Json>,
    count: usize,
    scanned: usize,
    bytes: usize,
    last: Option<Item>,
}

struct Read<'a> {
    meta: &'a TableMeta,
    index: Option<&'a Index>,
    filter: Option<Cond>,
    projection: Option<Vec<super::expr::Path>>,
    count_only: bool,
    /// Read the whole item even from an index that projects less (an LSI asked for
    /// `ALL_ATTRIBUTES`).
    whole_items: bool,
    limit: Option<usize>,
    segment: Option<(u64, u64)>,
}

impl Read<'_> {
    fn run(&self, conn: &Connection, sql: &str, params: Vec<Sql>) -> Result<Page> {
        let mut stmt = conn.prepare_cached(sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        let mut page = Page {
            items: Vec::new(),
            count: 0,
            scanned: 0,
            bytes: 0,
            last: None,
        };
        while let Some(row) = rows.next()? {
            if let Some((segment, total)) = self.segment {
                let pk: Vec<u8> = row.get(0)?;
                if fnv(&pk) % total != segment {
                    continue;
                }
            }
            if self.limit.is_some_and(|l| page.scanned >= l) || page.bytes >= MAX_PAGE_BYTES {
                return Ok(page);
            }
            let item = store::parse_item(&row.get::<_, String>(2)?)?;
            page.scanned += 1;
            page.bytes += row.get::<_, i64>(3)? as usize;
            page.last = Some(self.meta.key_item(&item, self.index));
            let view = match self.index {
                Some(ix) if !self.whole_items => self.meta.project_for_index(ix, &item),
                _ => item,
            };
            if let Some(f) = &self.filter {
                if !eval::condition(&view, f)? {
                    continue;
                }
            }
            page.count += 1;
            if !self.count_only {
                let shown = match &self.projection {
                    Some(p) => project(&view, p),
                    None => view,
                };
                page.items.push(item_to_json(&shown));
            }
        }
        page.last = None;
        Ok(page)
    }
}

fn answer(page: Page, req: Req, meta: &TableMeta, count_only: bool) -> Json {
    let mut out = json!({"Count": page.count, "ScannedCount": page.scanned});
    if !count_only {
        out["Items"] = Json::Array(page.items);
    }
    if let Some(last) = page.last {
        out["LastEvaluatedKey"] = item_to_json(&last);
    }
    if let Some(c) = req.capacity(&meta.name, read_units(page.bytes)) {
        out["ConsumedCapacity"] = c;
    }
    out
}

/// The parts of a Query or Scan request they share, as a [`Read`].
fn prepare<'a>(meta: &'a TableMeta, req: Req, ph: &mut super::expr::Placeholders) -> Result<Read<'a>> {
    let index = req.str("IndexName").map(|n| meta.index(n)).transpose()?;
    let filter = req.condition("FilterExpression", ph)?;
    let projection = req.projection(ph)?;
    let select = req.str("Select");
    let count_only = select == Some("COUNT");
    match select {
        None | Some("COUNT" | "ALL_ATTRIBUTES" | "ALL_PROJECTED_ATTRIBUTES" | "SPECIFIC_ATTRIBUTES") => {}
        Some(other) => {
            return Err(validation(format!(
                "1 validation error detected: Value '{other}' at 'select' failed to satisfy constraint: Member must satisfy enum value set: [SPECIFIC_ATTRIBUTES, COUNT, ALL_ATTRIBUTES, ALL_PROJECTED_ATTRIBUTES]"
            )))
        }
    }
    if projection.is_some() && matches!(select, Some("COUNT" | "ALL_ATTRIBUTES" | "ALL_PROJECTED_ATTRIBUTES")) {
        return Err(validation(format!(
            "Cannot specify the ProjectionExpression when choosing to get {}",
            select.unwrap_or_default()
        )));
    }
    if select == Some("ALL_PROJECTED_ATTRIBUTES") && index.is_none() {
        return Err(validation(
            "ALL_PROJECTED_ATTRIBUTES can be used only when Querying using an IndexName",
        ));
    }
    let mut whole_items = false;
    if let (Some(ix), Some("ALL_ATTRIBUTES")) = (index, select) {
        if ix.projection != Projection::All {
            if ix.global {
                return Err(validation(format!(
                    "One or more parameter values were invalid: Select type ALL_ATTRIBUTES is not supported for global secondary index {} because its projection type is not ALL",
                    ix.name
                )));
            }
            whole_items = true;
        }
    }
    Ok(Read {
        meta,
        index,
        filter,
        projection,
        count_only,
        whole_items,
        limit: req.limit()?,
        segment: None,
    })
}

fn start_key(meta: &TableMeta, index: Option<&Index>, req: Req) -> Result<Option<Vec<Vec<u8>>>> {
    let Some(esk) = req.opt_item("ExclusiveStartKey")? else {
        return Ok(None);
    };
    let invalid =
        || validation("The provided starting key is invalid: The provided key element does not match the schema");
    let (pk, sk) = meta.table_key(&esk, false).map_err(|_| invalid())?;
    Ok(Some(match index {
        None => vec![pk, sk],
        Some(ix) => {
            let (ipk, isk) = meta.index_key(ix, &esk).map_err(|_| invalid())?.ok_or_else(invalid)?;
            vec![ipk, isk, pk, sk]
        }
    }))
}

fn placeholders_list(n: usize) -> String {
    vec!["?"; n].join(", ")
}

pub fn query(conn: &mut Connection, ctx: &Ctx, body: &Json) -> Result<Json> {
    let req = Req(body);
    req.refuse_legacy(&["KeyConditions", "QueryFilter", "ConditionalOperator"])?;
    let (tid, meta) = store::require(conn, ctx.app, req.table_name()?)?;
    let mut ph = req.placeholders()?;
    let key_cond = super::expr::parse::condition(
        req.str("KeyConditionExpression").ok_or_else(|| {
            validation("Either the KeyConditions or KeyConditionExpression parameter must be specified in the request.")
        })?,
        "KeyConditionExpression",
        &mut ph,
    )?;
    let read = prepare(&meta, req, &mut ph)?;
    ph.check_all_used()?;
    let index = read.index;
    let schema = index.map(|i| &i.key).unwrap_or(&meta.key);
    let range = key_range(&key_cond, schema)?;
    let forward = req.get("ScanIndexForward").and_then(Json::as_bool).unwrap_or(true);
    let dir = if forward { "ASC" } else { "DESC" };
    let start = start_key(&meta, index, req)?;

    let (from, skcol, order_cols): (String, &str, Vec<&str>) = match index {
        None => ("ddb_items i WHERE i.tid = ? AND i.pk = ?".into(), "i.sk", vec!["i.sk"]),
        Some(_) => (
            "ddb_index x JOIN ddb_items i ON i.tid = x.tid AND i.pk = x.tpk AND i.sk = x.tsk WHERE x.tid = ? AND x.idx = ? AND x.pk = ?".into(),
            "x.sk",
            vec!["x.sk", "x.tpk", "x.tsk"],
        ),
    };
    let mut params: Vec<Sql> = vec![Sql::Integer(tid)];
    if let Some(ix) = index {
        params.push(Sql::Text(ix.name.clone()));
    }
    params.push(Sql::Blob(range.pk.clone()));
    let mut sql = format!("SELECT i.pk, i.sk, i.item, i.size FROM {from}");
    if let Some((b, incl)) = range.lo {
        sql += &format!(" AND {skcol} {} ?", if incl { ">=" } else { ">" });
        params.push(Sql::Blob(b));
    }
    if let Some((b, incl)) = range.hi {
        sql += &format!(" AND {skcol} {} ?", if incl { "<=" } else { "<" });
        params.push(Sql::Blob(b));
    }
    if let Some(start) = start {
        // The partition key is fixed by the condition: resume on the columns after it.
        let rest: Vec<Vec<u8>> = match index {
            None => vec![start[1].clone()],
            Some(_) => start[1..].to_vec(),
        };
        sql += &format!(
            " AND ({}) {} ({})",
            order_cols.join(", "),
            if forward { ">" } else { "<" },
            placeholders_list(rest.len())
        );
        params.extend(rest.into_iter().map(Sql::Blob));
    }
    sql += " AND (i.expires IS NULL OR i.expires > ?)";
    params.push(Sql::Integer(ctx.now_secs()));
    sql += &format!(
        " ORDER BY {}",
        order_cols
            .iter()
            .map(|c| format!("{c} {dir}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let page = read.run(conn, &sql, params)?;
    Ok(answer(page, req, &meta, read.count_only))
}

pub fn scan(conn: &mut Connection, ctx: &Ctx, body: &Json) -> Result<Json> {
    let req = Req(body);
    req.refuse_legacy(&["ScanFilter", "ConditionalOperator"])?;
    let (tid, meta) = store::require(conn, ctx.app, req.table_name()?)?;
    let mut ph = req.placeholders()?;
    let mut read = prepare(&meta, req, &mut ph)?;
    ph.check_all_used()?;
    let index = read.index;
    read.segment = match (req.get("Segment").and_then(Json::as_u64), req.get("TotalSegments").and_then(Json::as_u64)) {
        (None, None) => None,
        (Some(s), Some(t)) if t >= 1 && s < t && t <= 1_000_000 => Some((s, t)),
        (Some(_), None) | (None, Some(_)) => {
            return Err(validation(
                "The TotalSegments parameter is required but was not present in the request when Segment parameter is present",
            ))
        }
        (Some(s), Some(t)) => {
            return Err(validation(format!(
                "The Segment parameter is zero-based and must be less than parameter TotalSegments: Segment: {s} is not less than TotalSegments: {t}"
            )))
        }
    };
    let start = start_key(&meta, index, req)?;
    let (from, order_cols): (String, Vec<&str>) = match index {
        None => ("ddb_items i WHERE i.tid = ?".into(), vec!["i.pk", "i.sk"]),
        Some(_) => (
            "ddb_index x JOIN ddb_items i ON i.tid = x.tid AND i.pk = x.tpk AND i.sk = x.tsk WHERE x.tid = ? AND x.idx = ?".into(),
            vec!["x.pk", "x.sk", "x.tpk", "x.tsk"],
        ),
    };
    let mut params: Vec<Sql> = vec![Sql::Integer(tid)];
    if let Some(ix) = index {
        params.push(Sql::Text(ix.name.clone()));
    }
    let mut sql = format!("SELECT i.pk, i.sk, i.item, i.size FROM {from}");
    if let Some(start) = start {
        sql += &format!(
            " AND ({}) > ({})",
            order_cols.join(", "),
            placeholders_list(start.len())
        );
        params.extend(start.into_iter().map(Sql::Blob));
    }
    sql += " AND (i.expires IS NULL OR i.expires > ?)";
    params.push(Sql::Integer(ctx.now_secs()));
    sql += &format!(" ORDER BY {}", order_cols.join(", "));
    let page = read.run(conn, &sql, params)?;
    Ok(answer(page, req, &meta, read.count_only))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_successor() {
        assert_eq!(successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(successor(&[0x61, 0xff]), Some(vec![0x62]));
        assert_eq!(successor(&[0xff, 0xff]), None);
    }
}
