//! A table's definition (key schema, attribute definitions, secondary indexes, billing, TTL),
//! validated from `CreateTable`/`UpdateTable` and answered as `TableDescription`; and the
//! byte encoding of key values that the storage orders by.
//!
//! Key bytes: S as its UTF-8 bytes and B as its bytes (DynamoDB orders both bytewise), N as
//! [`Number::sort_key`] (numeric order under `memcmp`). A table without a sort key stores an
//! empty sort key.

use super::error::{validation, DynamoError, Result};

use super::value::{Item, Value};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyType {
    S,
    N,
    B,
}

impl KeyType {
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "S" => KeyType::S,
            "N" => KeyType::N,
            "B" => KeyType::B,
            other => {
                return Err(validation(format!(
                    "1 validation error detected: Value '{other}' at 'attributeDefinitions.1.member.attributeType' failed to satisfy constraint: Member must satisfy enum value set: [B, N, S]"
                )))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::S => "S",
            KeyType::N => "N",
            KeyType::B => "B",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAttr {
    pub name: String,
    pub ty: KeyType,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySchema {
    pub hash: KeyAttr,
    pub range: Option<KeyAttr>,
}

impl KeySchema {
    pub fn attrs(&self) -> impl Iterator<Item = &KeyAttr> {
        std::iter::once(&self.hash).chain(self.range.iter())
    }

    fn to_json(&self) -> Json {
        let mut v = vec![json!({"AttributeName": self.hash.name, "KeyType": "HASH"})];
        if let Some(r) = &self.range {
            v.push(json!({"AttributeName": r.name, "KeyType": "RANGE"}));
        }
        Json::Array(v)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Projection {
    All,
    KeysOnly,
    Include(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub name: String,
    pub key: KeySchema,
    pub projection: Projection,
    pub global: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableMeta {
    pub name: String,
    pub id: String,
    pub key: KeySchema,
    pub attributes: Vec<KeyAttr>,
    pub indexes: Vec<Index>,
    /// Seconds since the epoch.
    pub created: f64,
    pub billing: String,
    pub read_units: u64,
    pub write_units: u64,
    /// The TTL attribute, when TTL is enabled.
    pub ttl: Option<String>,
    /// The table's stream, when enabled.
    #[serde(default)]
    pub stream: Option<StreamSpec>,
}

/// An enabled DynamoDB stream: what its records hold, and its label (the time it was enabled,
/// which is the last part of its ARN).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamSpec {
    /// `KEYS_ONLY`, `NEW_IMAGE`, `OLD_IMAGE` or `NEW_AND_OLD_IMAGES`.
    pub view_type: String,
    pub label: String,
    pub created: f64,
}

/// A `StreamSpecification`: `None` when absent, `Some(None)` to disable, `Some(Some(..))` to enable.
pub fn parse_stream_spec(v: Option<&Json>, now: f64) -> Result<Option<Option<StreamSpec>>> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    if v["StreamEnabled"].as_bool() != Some(true) {
        return Ok(Some(None));
    }
    let view_type = v["StreamViewType"].as_str().unwrap_or_default();
    if !["KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES"].contains(&view_type) {
        return Err(validation(
            "One or more parameter values were invalid: StreamViewType must be one of KEYS_ONLY, NEW_IMAGE, OLD_IMAGE, NEW_AND_OLD_IMAGES when StreamEnabled is true",
        ));
    }
    let label = chrono::DateTime::from_timestamp_millis((now * 1000.0) as i64)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3f")
        .to_string();
    Ok(Some(Some(StreamSpec {
        view_type: view_type.to_string(),
        label,
        created: now,
    })))
}

/// The account id in ARNs (Gust has no AWS account).
pub const ACCOUNT: &str = "000000000000";

fn name_ok(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// Checks a table or index name as DynamoDB does.
pub fn check_name(name: &str, field: &str) -> Result<()> {
    if name_ok(name) {
        Ok(())
    } else {
        Err(validation(format!(
            "1 validation error detected: Value '{name}' at '{field}' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ and have length between 3 and 255"
        )))
    }
}

fn parse_key_schema(v: &Json, attrs: &[KeyAttr], used: &mut Vec<String>) -> Result<KeySchema> {
    let list = v
        .as_array()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| validation("1 validation error detected: Value null at 'keySchema' failed to satisfy constraint: Member must not be null"))?;
    let mut hash = None;
    let mut range = None;
    for e in list {
        let name = e["AttributeName"].as_str().unwrap_or_default().to_string();
        let ty = attrs.iter().find(|a| a.name == name).map(|a| a.ty).ok_or_else(|| {
            validation(format!(
                "One or more parameter values were invalid: Some index key attributes are not defined in AttributeDefinitions. Keys: [{name}], AttributeDefinitions: [{}]",
                attrs.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })?;
        used.push(name.clone());
        let slot = match e["KeyType"].as_str() {
            Some("HASH") => &mut hash,
            Some("RANGE") => &mut range,
            _ => {
                return Err(validation(
                    "Invalid KeySchema: Some index key attribute have no key type",
                ))
            }
        };
        if slot.is_some() {
            return Err(validation("Invalid KeySchema: Too many hash keys or range keys"));
        }
        *slot = Some(KeyAttr { name, ty });
    }
    let hash =
        hash.ok_or_else(|| validation("Invalid KeySchema: The first KeySchemaElement is not a HASH key type"))?;
    Ok(KeySchema { hash, range })
}

fn parse_projection(v: &Json) -> Result<Projection> {
    Ok(match v["ProjectionType"].as_str().unwrap_or("ALL") {
        "ALL" => Projection::All,
        "KEYS_ONLY" => Projection::KeysOnly,
        "INCLUDE" => Projection::Include(
            v["NonKeyAttributes"]
                .as_array()
                .map(|l| l.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
        ),
        other => {
            return Err(validation(format!(
                "1 validation error detected: Value '{other}' at 'projection.projectionType' failed to satisfy constraint: Member must satisfy enum value set: [ALL, INCLUDE, KEYS_ONLY]"
            )))
        }
    })
}

/// Parses `AttributeDefinitions`.
pub fn parse_attributes(v: &Json) -> Result<Vec<KeyAttr>> {
    v.as_array()
        .ok_or_else(|| validation("1 validation error detected: Value null at 'attributeDefinitions' failed to satisfy constraint: Member must not be null"))?
        .iter()
        .map(|a| {
            Ok(KeyAttr {
                name: a["AttributeName"].as_str().unwrap_or_default().to_string(),
                ty: KeyType::parse(a["AttributeType"].as_str().unwrap_or_default())?,
            })
        })
        .collect()
}

/// One index of `GlobalSecondaryIndexes`/`LocalSecondaryIndexes` or an `UpdateTable` create.
pub fn parse_index(v: &Json, global: bool, attrs: &[KeyAttr], used: &mut Vec<String>) -> Result<Index> {
    let name = v["IndexName"].as_str().unwrap_or_default().to_string();
    check_name(&name, "indexName")?;
    Ok(Index {
        name,
        key: parse_key_schema(&v["KeySchema"], attrs, used)?,
        projection: parse_projection(&v["Projection"])?,
        global,
    })
}

impl TableMeta {
    /// A new table from a `CreateTable` request.
    pub fn from_create(req: &Json, now: f64) -> Result<Self> {
        let name = req["TableName"].as_str().unwrap_or_default().to_string();
        check_name(&name, "tableName")?;
        let attributes = parse_attributes(&req["AttributeDefinitions"])?;
        let mut used = Vec::new();
        let key = parse_key_schema(&req["KeySchema"], &attributes, &mut used)?;
        let mut indexes = Vec::new();
        for (field, global) in [("GlobalSecondaryIndexes", true), ("LocalSecondaryIndexes", false)] {
            if let Some(list) = req[field].as_array() {
                for ix in list {
                    let index = parse_index(ix, global, &attributes, &mut used)?;
                    if !global && (index.key.hash != key.hash || index.key.range.is_none()) {
                        return Err(validation(
                            "One or more parameter values were invalid: Index KeySchema does not have a range key for index: "
                                .to_string()
                                + &index.name
                                + " or the hash key is not the table's",
                        ));
                    }
                    if indexes.iter().any(|i: &Index| i.name == index.name) {
                        return Err(validation(format!(
                            "One or more parameter values were invalid: Duplicate index name: {}",
                            index.name
                        )));
                    }
                    indexes.push(index);
                }
            }
        }
        if let Some(unused) = attributes.iter().find(|a| !used.contains(&a.name)) {
            let _ = unused;
            return Err(validation(format!(
                "One or more parameter values were invalid: Some AttributeDefinitions are not used. AttributeDefinitions: [{}], keys used: [{}]",
                attributes.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", "),
                dedup(&used).join(", ")
            )));
        }
        let stream = parse_stream_spec(req.get("StreamSpecification"), now)?.flatten();
        let billing = req["BillingMode"].as_str().unwrap_or("PROVISIONED").to_string();
        let (read_units, write_units) = throughput(&req["ProvisionedThroughput"]);
        if billing == "PROVISIONED" && req["ProvisionedThroughput"].is_null() {
            return Err(validation(
                "One or more parameter values were invalid: ReadCapacityUnits and WriteCapacityUnits must both be specified when BillingMode is PROVISIONED",
            ));
        }
        Ok(Self {
            name,
            id: uuid::Uuid::new_v4().to_string(),
            key,
            attributes,
            indexes,
            created: now,
            billing,
            read_units,
            write_units,
            ttl: None,
            stream,
        })
    }

    pub fn arn(&self, region: &str) -> String {
        format!("arn:aws:dynamodb:{region}:{ACCOUNT}:table/{}", self.name)
    }

    /// The ARN of the table's stream, when it has one.
    pub fn stream_arn(&self, region: &str) -> Option<String> {
        self.stream
            .as_ref()
            .map(|s| format!("{}/stream/{}", self.arn(region), s.label))
    }

    pub fn index(&self, name: &str) -> Result<&Index> {
        self.indexes
            .iter()
            .find(|i| i.name == name)
            .ok_or_else(|| validation(format!("The table does not have the specified index: {name}")))
    }

    /// `TableDescription`, with the counts the storage measured.
    pub fn describe(&self, region: &str, status: &str, items: u64, bytes: u64) -> Json {
        let throughput =
            |r: u64, w: u64| json!({"ReadCapacityUnits": r, "WriteCapacityUnits": w, "NumberOfDecreasesToday": 0});
        let mut d = json!({
            "TableName": self.name,
            "TableId": self.id,
            "TableArn": self.arn(region),
            "TableStatus": status,
            "KeySchema": self.key.to_json(),
            "AttributeDefinitions": self.attributes.iter().map(|a| json!({"AttributeName": a.name, "AttributeType": a.ty.as_str()})).collect::<Vec<_>>(),
            "CreationDateTime": self.created,
            "ItemCount": items,
            "TableSizeBytes": bytes,
            "ProvisionedThroughput": throughput(self.read_units, self.write_units),
            "DeletionProtectionEnabled": false,
        });
        if let Some(s) = &self.stream {
            d["StreamSpecification"] = json!({"StreamEnabled": true, "StreamViewType": s.view_type});
            d["LatestStreamLabel"] = json!(s.label);
            d["LatestStreamArn"] = json!(self.stream_arn(region));
        }
        if self.billing == "PAY_PER_REQUEST" {
            d["BillingModeSummary"] =
                json!({"BillingMode": "PAY_PER_REQUEST", "LastUpdateToPayPerRequestDateTime": self.created});
        }
        for (field, global) in [("GlobalSecondaryIndexes", true), ("LocalSecondaryIndexes", false)] {
            let list: Vec<Json> = self
                .indexes
                .iter()
                .filter(|i| i.global == global)
                .map(|i| {
                    let projection = match &i.projection {
                        Projection::All => json!({"ProjectionType": "ALL"}),
                        Projection::KeysOnly => json!({"ProjectionType": "KEYS_ONLY"}),
                        Projection::Include(a) => json!({"ProjectionType": "INCLUDE", "NonKeyAttributes": a}),
                    };
                    let mut v = json!({
                        "IndexName": i.name,
                        "KeySchema": i.key.to_json(),
                        "Projection": projection,
                        "IndexSizeBytes": 0,
                        "ItemCount": 0,
                        "IndexArn": format!("{}/index/{}", self.arn(region), i.name),
                    });
                    if global {
                        v["IndexStatus"] = json!("ACTIVE");
                        v["ProvisionedThroughput"] = throughput(self.read_units, self.write_units);
                    }
                    v
                })
                .collect();
            if !list.is_empty() {
                d[field] = Json::Array(list);
            }
        }
        d
    }

    /// The table key's bytes of `item` (or of a `Key` parameter), checked against the schema.
    /// `exact`: the map must hold the key attributes and nothing else (a `Key` parameter).
    pub fn table_key(&self, item: &Item, exact: bool) -> Result<(Vec<u8>, Vec<u8>)> {
        if exact && item.len() != self.key.attrs().count() {
            return Err(validation("The provided key element does not match the schema"));
        }
        let part = |a: &KeyAttr| -> Result<Vec<u8>> {
            match item.get(&a.name) {
                None if exact => Err(validation("The provided key element does not match the schema")),
                None => Err(validation(format!(
                    "One or more parameter values were invalid: Missing the key {} in the item",
                    a.name
                ))),
                Some(v) => key_bytes(v, a, None),
            }
        };
        let pk = part(&self.key.hash)?;
        let sk = match &self.key.range {
            Some(r) => part(r)?,
            None => Vec::new(),
        };
        Ok((pk, sk))
    }

    /// The index key's bytes of `item`, `None` when the item lacks an index key attribute
    /// (indexes are sparse).
    pub fn index_key(&self, index: &Index, item: &Item) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let part = |a: &KeyAttr| -> Result<Option<Vec<u8>>> {
            item.get(&a.name)
                .map(|v| key_bytes(v, a, Some(&index.name)))
                .transpose()
        };
        let Some(pk) = part(&index.key.hash)? else {
            return Ok(None);
        };
        let sk = match &index.key.range {
            Some(r) => match part(r)? {
                Some(sk) => sk,
                None => return Ok(None),
            },
            None => Vec::new(),
        };
        Ok(Some((pk, sk)))
    }

    /// The key attributes of `item` for the table (and `index`): a `LastEvaluatedKey`.
    pub fn key_item(&self, item: &Item, index: Option<&Index>) -> Item {
        let mut out = Item::new();
        for a in self.key.attrs().chain(index.into_iter().flat_map(|i| i.key.attrs())) {
            if let Some(v) = item.get(&a.name) {
                out.insert(a.name.clone(), v.clone());
            }
        }
        out
    }

    /// What an index holds of `item`: its projection plus the table's and the index's keys.
    pub fn project_for_index(&self, index: &Index, item: &Item) -> Item {
        match &index.projection {
            Projection::All => item.clone(),
            Projection::KeysOnly => self.key_item(item, Some(index)),
            Projection::Include(names) => {
                let mut out = self.key_item(item, Some(index));
                for n in names {
                    if let Some(v) = item.get(n) {
                        out.insert(n.clone(), v.clone());
                    }
                }
                out
            }
        }
    }

    /// The TTL expiry of `item` in epoch seconds, when TTL is on and the attribute is a number.
    pub fn expiry(&self, item: &Item) -> Option<i64> {
        match item.get(self.ttl.as_ref()?)? {
            Value::N(n) => {
                let secs = n.to_f64();
                secs.is_finite().then_some(secs as i64)
            }
            _ => None,
        }
    }
}

fn dedup(v: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in v {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}

/// `(read, write)` of a `ProvisionedThroughput` (0 when absent).
pub fn throughput(v: &Json) -> (u64, u64) {
    (
        v["ReadCapacityUnits"].as_u64().unwrap_or(0),
        v["WriteCapacityUnits"].as_u64().unwrap_or(0),
    )
}

/// The bytes of a key value: its type checked against the definition.
pub fn key_bytes(v: &Value, a: &KeyAttr, index: Option<&str>) -> Result<Vec<u8>> {
    let mismatch = |actual: &str| -> DynamoError {
        match index {
            None => validation(format!(
                "One or more parameter values were invalid: Type mismatch for key {} expected: {} actual: {actual}",
                a.name,
                a.ty.as_str()
            )),
            Some(ix) => validation(format!(
                "One or more parameter values were invalid: Type mismatch for Index Key {} Expected: {} Actual: {actual} IndexName: {ix}",
                a.name,
                a.ty.as_str()
            )),
        }
    };
    let empty = || {
        validation(format!(
            "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty {} value. Key: {}",
            if a.ty == KeyType::S { "string" } else { "binary" },
            a.name
        ))
    };
    match (a.ty, v) {
        (KeyType::S, Value::S(s)) if s.is_empty() => Err(empty()),
        (KeyType::S, Value::S(s)) => Ok(s.as_bytes().to_vec()),
        (KeyType::B, Value::B(b)) if b.is_empty() => Err(empty()),
        (KeyType::B, Value::B(b)) => Ok(b.clone()),
        (KeyType::N, Value::N(n)) => Ok(n.sort_key()),
        (_, other) => Err(mismatch(other.type_name())),
    }
}

/// The bytes of a key condition's value (`Condition parameter type does not match schema type`
/// when its type is not the key's).
pub fn condition_bytes(v: &Value, ty: KeyType) -> Result<Vec<u8>> {
    match (ty, v) {
        (KeyType::S, Value::S(s)) => Ok(s.as_bytes().to_vec()),
        (KeyType::B, Value::B(b)) => Ok(b.clone()),
        (KeyType::N, Value::N(n)) => Ok(n.sort_key()),
        _ => Err(validation(
            "One or more parameter values were invalid: Condition parameter type does not match schema type",
        )),
    }
}
