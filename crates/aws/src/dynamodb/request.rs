//! Reading the fields of a request body, with DynamoDB's wording for what is missing or wrong.

use super::error::{validation, DynamoError, Result};
use super::expr::{parse, Cond, Path, Placeholders, Step};
use super::value::{item_from_json, Item, Value};
use serde_json::{json, Value as Json};
use std::collections::HashMap;

/// `tableName` for `TableName`: the member name DynamoDB's validation messages use.
fn member(field: &str) -> String {
    let mut c = field.chars();
    match c.next() {
        Some(f) => f.to_ascii_lowercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

pub fn missing(field: &str) -> DynamoError {
    validation(format!(
        "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
        member(field)
    ))
}

#[derive(Debug, Clone, Copy)]
pub struct Req<'a>(pub &'a Json);

impl<'a> Req<'a> {
    pub fn get(&self, field: &str) -> Option<&'a Json> {
        self.0.get(field).filter(|v| !v.is_null())
    }

    pub fn str(&self, field: &str) -> Option<&'a str> {
        self.get(field).and_then(Json::as_str)
    }

    pub fn required_str(&self, field: &str) -> Result<&'a str> {
        self.str(field).ok_or_else(|| missing(field))
    }

    pub fn table_name(&self) -> Result<&'a str> {
        self.required_str("TableName")
    }

    pub fn item(&self, field: &str) -> Result<Item> {
        item_from_json(self.get(field).ok_or_else(|| missing(field))?)
    }

    pub fn opt_item(&self, field: &str) -> Result<Option<Item>> {
        self.get(field).map(item_from_json).transpose()
    }

    /// `ExpressionAttributeNames` and `ExpressionAttributeValues`.
    pub fn placeholders(&self) -> Result<Placeholders> {
        let names: HashMap<String, String> = match self.get("ExpressionAttributeNames") {
            None => HashMap::new(),
            Some(v) => v
                .as_object()
                .ok_or_else(|| DynamoError::Serialization("ExpressionAttributeNames must be a map".into()))?
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect(),
        };
        if names.is_empty() && self.get("ExpressionAttributeNames").is_some() {
            return Err(validation("ExpressionAttributeNames must not be empty"));
        }
        let values: HashMap<String, Value> = match self.get("ExpressionAttributeValues") {
            None => HashMap::new(),
            Some(v) => {
                let map = v
                    .as_object()
                    .ok_or_else(|| DynamoError::Serialization("ExpressionAttributeValues must be a map".into()))?;
                if map.is_empty() {
                    return Err(validation("ExpressionAttributeValues must not be empty"));
                }
                map.iter()
                    .map(|(k, v)| {
                        Value::from_json(v).map(|v| (k.clone(), v)).map_err(|e| match e {
                            DynamoError::Validation(m) => validation(format!(
                                "ExpressionAttributeValues contains invalid value: {m} for key {k}"
                            )),
                            other => other,
                        })
                    })
                    .collect::<Result<_>>()?
            }
        };
        Ok(Placeholders::new(names, values))
    }

    /// A condition expression field, parsed.
    pub fn condition(&self, field: &'static str, ph: &mut Placeholders) -> Result<Option<Cond>> {
        self.str(field).map(|s| parse::condition(s, field, ph)).transpose()
    }

    /// `ProjectionExpression`, or the legacy `AttributesToGet` (top-level names).
    pub fn projection(&self, ph: &mut Placeholders) -> Result<Option<Vec<Path>>> {
        if let Some(s) = self.str("ProjectionExpression") {
            return parse::projection(s, ph).map(Some);
        }
        Ok(self.get("AttributesToGet").and_then(Json::as_array).map(|names| {
            names
                .iter()
                .filter_map(Json::as_str)
                .map(|n| vec![Step::Name(n.to_string())])
                .collect()
        }))
    }

    /// `ReturnValues`, one of `allowed` (`NONE` by default).
    pub fn return_values(&self, allowed: &[&str]) -> Result<&'a str> {
        let v = self.str("ReturnValues").unwrap_or("NONE");
        if allowed.contains(&v) {
            Ok(v)
        } else {
            Err(validation("Return values set to invalid value"))
        }
    }

    /// Whether the current item is wanted in a `ConditionalCheckFailedException`.
    pub fn all_old_on_failure(&self) -> bool {
        self.str("ReturnValuesOnConditionCheckFailure") == Some("ALL_OLD")
    }

    /// Refuses the pre-expression parameters Gust does not implement, rather than ignoring
    /// them (which would, for `Expected`, write without the condition the caller asked for).
    pub fn refuse_legacy(&self, fields: &[&str]) -> Result<()> {
        for f in fields {
            if self.get(f).is_some() {
                return Err(validation(format!(
                    "Gust does not support the legacy parameter {f}; use the expression parameters instead (ConditionExpression, UpdateExpression, KeyConditionExpression, FilterExpression)"
                )));
            }
        }
        Ok(())
    }

    /// `ConsumedCapacity` when `ReturnConsumedCapacity` asks for it.
    pub fn capacity(&self, table: &str, units: f64) -> Option<Json> {
        matches!(self.str("ReturnConsumedCapacity"), Some("TOTAL" | "INDEXES"))
            .then(|| json!({"TableName": table, "CapacityUnits": units}))
    }

    pub fn limit(&self) -> Result<Option<usize>> {
        match self.get("Limit") {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 => Ok(Some(n as usize)),
                _ => Err(validation(format!(
                    "1 validation error detected: Value '{v}' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1"
                ))),
            },
        }
    }
}

/// Capacity units of a write of `bytes` (one per KB, at least one).
pub fn write_units(bytes: usize) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}

/// Capacity units of an eventually consistent read of `bytes` (half per 4 KB).
pub fn read_units(bytes: usize) -> f64 {
    bytes.div_ceil(4096).max(1) as f64 * 0.5
}
