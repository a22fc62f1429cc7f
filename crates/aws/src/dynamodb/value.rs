//! The attribute value model: `S`, `N`, `B`, `BOOL`, `NULL`, `L`, `M`, `SS`, `NS`, `BS`, read
//! from and written to DynamoDB's JSON form (`{"S": "x"}`, binary as base64), validated as
//! DynamoDB validates them (one type per value, no empty or duplicated sets, `NULL` only
//! `true`). Items are stored in this same JSON form, so what is stored is what was sent, in
//! canonical shape.
//!
//! Equality follows DynamoDB: numbers by value, sets regardless of order.

use super::error::{validation, DynamoError, Result};
use super::number::Number;
use base64::Engine as _;
use serde_json::{json, Map, Value as Json};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// An item or a map: attribute name to value.
pub type Item = BTreeMap<String, Value>;

#[derive(Debug, Clone)]
pub enum Value {
    S(String),
    N(Number),
    B(Vec<u8>),
    Bool(bool),
    Null,
    L(Vec<Value>),
    M(Item),
    SS(Vec<String>),
    NS(Vec<Number>),
    BS(Vec<Vec<u8>>),
}

fn b64() -> &'static base64::engine::GeneralPurpose {
    &base64::engine::general_purpose::STANDARD
}

impl Value {
    /// The type's wire name: `S`, `N`, `BOOL`, ...
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::S(_) => "S",
            Value::N(_) => "N",
            Value::B(_) => "B",
            Value::Bool(_) => "BOOL",
            Value::Null => "NULL",
            Value::L(_) => "L",
            Value::M(_) => "M",
            Value::SS(_) => "SS",
            Value::NS(_) => "NS",
            Value::BS(_) => "BS",
        }
    }

    /// Parses `{"TYPE": ...}`.
    pub fn from_json(v: &Json) -> Result<Value> {
        let obj = v
            .as_object()
            .ok_or_else(|| DynamoError::Serialization("Start of structure or map found where not expected".into()))?;
        let mut it = obj.iter();
        let (kind, inner) = match (it.next(), it.next()) {
            (None, _) => {
                return Err(validation(
                    "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes",
                ))
            }
            (Some(kv), None) => kv,
            (Some(_), Some(_)) => {
                return Err(validation(
                    "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes",
                ))
            }
        };
        let serialization =
            |what: &str| DynamoError::Serialization(format!("Unexpected value type in payload for {what}"));
        let string = |v: &Json| v.as_str().map(str::to_string).ok_or_else(|| serialization(kind));
        let binary = |v: &Json| -> Result<Vec<u8>> {
            let s = v.as_str().ok_or_else(|| serialization(kind))?;
            b64().decode(s).map_err(|_| {
                DynamoError::Serialization(format!(
                    "Base64 encoded length is expected a multiple of 4 bytes but found: {}",
                    s.len()
                ))
            })
        };
        let array = |v: &Json| v.as_array().cloned().ok_or_else(|| serialization(kind));
        let empty_set = |name: &str| {
            validation(format!(
                "One or more parameter values were invalid: An {name} set  may not be empty"
            ))
        };
        Ok(match kind.as_str() {
            "S" => Value::S(string(inner)?),
            "N" => Value::N(Number::parse(&string(inner)?)?),
            "B" => Value::B(binary(inner)?),
            "BOOL" => Value::Bool(inner.as_bool().ok_or_else(|| serialization(kind))?),
            "NULL" => {
                if inner.as_bool() != Some(true) {
                    return Err(validation(
                        "One or more parameter values were invalid: Null attribute value types must have the value of true",
                    ));
                }
                Value::Null
            }
            "L" => Value::L(array(inner)?.iter().map(Value::from_json).collect::<Result<_>>()?),
            "M" => Value::M(item_from_json(inner)?),
            "SS" => {
                let v: Vec<String> = array(inner)?.iter().map(string).collect::<Result<_>>()?;
                if v.is_empty() {
                    return Err(empty_set("string"));
                }
                no_duplicates(&v, |a, b| a == b, |s| s.clone())?;
                Value::SS(v)
            }
            "NS" => {
                let v: Vec<Number> = array(inner)?
                    .iter()
                    .map(|x| Ok(Number::parse(&string(x)?)?))
                    .collect::<Result<_>>()?;
                if v.is_empty() {
                    return Err(empty_set("number"));
                }
                no_duplicates(&v, |a, b| a == b, |n| n.to_string())?;
                Value::NS(v)
            }
            "BS" => {
                let v: Vec<Vec<u8>> = array(inner)?.iter().map(binary).collect::<Result<_>>()?;
                if v.is_empty() {
                    return Err(empty_set("binary"));
                }
                no_duplicates(&v, |a, b| a == b, |b| b64().encode(b))?;
                Value::BS(v)
            }
            other => {
                return Err(DynamoError::Serialization(format!(
                    "Unknown AttributeValue type: {}",
                    other.chars().take(40).collect::<String>()
                )))
            }
        })
    }

    pub fn to_json(&self) -> Json {
        match self {
            Value::S(s) => json!({ "S": s }),
            Value::N(n) => json!({ "N": n.to_string() }),
            Value::B(b) => json!({ "B": b64().encode(b) }),
            Value::Bool(b) => json!({ "BOOL": b }),
            Value::Null => json!({ "NULL": true }),
            Value::L(l) => json!({ "L": l.iter().map(Value::to_json).collect::<Vec<_>>() }),
            Value::M(m) => json!({ "M": item_to_json(m) }),
            Value::SS(v) => json!({ "SS": v }),
            Value::NS(v) => json!({ "NS": v.iter().map(|n| n.to_string()).collect::<Vec<_>>() }),
            Value::BS(v) => json!({ "BS": v.iter().map(|b| b64().encode(b)).collect::<Vec<_>>() }),
        }
    }

    /// Bytes this value counts for in the 400 KB item limit (DynamoDB's sizing rules:
    /// strings and binaries their length, numbers about one byte per two digits, one byte for
    /// `BOOL` and `NULL`, three bytes plus a byte per element for `L` and `M`).
    pub fn size(&self) -> usize {
        match self {
            Value::S(s) => s.len(),
            Value::N(n) => number_size(n),
            Value::B(b) => b.len(),
            Value::Bool(_) | Value::Null => 1,
            Value::L(l) => 3 + l.iter().map(|v| v.size() + 1).sum::<usize>(),
            Value::M(m) => 3 + m.iter().map(|(k, v)| k.len() + v.size() + 1).sum::<usize>(),
            Value::SS(v) => v.iter().map(String::len).sum(),
            Value::NS(v) => v.iter().map(number_size).sum(),
            Value::BS(v) => v.iter().map(Vec::len).sum(),
        }
    }

    /// The order DynamoDB's `<`, `<=`, `>`, `>=` and `BETWEEN` use: only between two values of
    /// the same scalar type N, S (UTF-8 bytes) or B; `None` otherwise (the comparison is false).
    pub fn compare(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::N(a), Value::N(b)) => Some(a.cmp(b)),
            (Value::S(a), Value::S(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
            (Value::B(a), Value::B(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

fn number_size(n: &Number) -> usize {
    n.to_string().trim_start_matches('-').replace('.', "").len().div_ceil(2) + 1
}

fn no_duplicates<T>(v: &[T], eq: impl Fn(&T, &T) -> bool, show: impl Fn(&T) -> String) -> Result<()> {
    for (i, a) in v.iter().enumerate() {
        if v[..i].iter().any(|b| eq(a, b)) {
            return Err(validation(format!(
                "One or more parameter values were invalid: Input collection [{}] contains duplicates.",
                v.iter().map(&show).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    Ok(())
}

fn same_set<T>(a: &[T], b: &[T], eq: impl Fn(&T, &T) -> bool) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.iter().any(|y| eq(x, y)))
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::S(a), Value::S(b)) => a == b,
            (Value::N(a), Value::N(b)) => a == b,
            (Value::B(a), Value::B(b)) => a == b,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Null, Value::Null) => true,
            (Value::L(a), Value::L(b)) => a == b,
            (Value::M(a), Value::M(b)) => a == b,
            (Value::SS(a), Value::SS(b)) => same_set(a, b, |x, y| x == y),
            (Value::NS(a), Value::NS(b)) => same_set(a, b, |x, y| x == y),
            (Value::BS(a), Value::BS(b)) => same_set(a, b, |x, y| x == y),
            _ => false,
        }
    }
}

/// Parses an item (`{"name": {"S": "x"}, ...}`).
pub fn item_from_json(v: &Json) -> Result<Item> {
    let obj = v
        .as_object()
        .ok_or_else(|| DynamoError::Serialization("Unexpected value type in payload for an item".into()))?;
    obj.iter().map(|(k, v)| Ok((k.clone(), Value::from_json(v)?))).collect()
}

pub fn item_to_json(item: &Item) -> Json {
    Json::Object(
        item.iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect::<Map<_, _>>(),
    )
}

/// Bytes an item counts for: each attribute's name and value.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + v.size()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(j: Json) -> Result<Value> {
        Value::from_json(&j)
    }

    #[test]
    fn round_trips_every_type() {
        for j in [
            json!({"S": "héllo"}),
            json!({"N": "-1.5"}),
            json!({"B": "AAEC"}),
            json!({"BOOL": false}),
            json!({"NULL": true}),
            json!({"L": [{"S": "a"}, {"N": "1"}]}),
            json!({"M": {"a": {"SS": ["x", "y"]}}}),
            json!({"NS": ["1", "2.5"]}),
            json!({"BS": ["AA==", "AQ=="]}),
        ] {
            assert_eq!(v(j.clone()).unwrap().to_json(), j);
        }
        assert_eq!(v(json!({"N": "01.50"})).unwrap().to_json(), json!({"N": "1.5"}));
    }

    #[test]
    fn refusals_in_dynamodbs_words() {
        let msg = |j: Json| v(j).unwrap_err().to_string();
        assert!(msg(json!({})).contains("Supplied AttributeValue is empty"));
        assert!(msg(json!({"S": "a", "N": "1"})).contains("more than one datatypes"));
        assert_eq!(
            msg(json!({"SS": []})),
            "One or more parameter values were invalid: An string set  may not be empty"
        );
        assert!(msg(json!({"NS": ["1", "1.0"]})).contains("contains duplicates"));
        assert!(msg(json!({"NULL": false})).contains("must have the value of true"));
        assert!(matches!(v(json!({"N": "x"})), Err(DynamoError::Validation(_))));
        assert!(matches!(v(json!({"Q": "x"})), Err(DynamoError::Serialization(_))));
    }

    #[test]
    fn equality_and_order() {
        let a = v(json!({"NS": ["1", "2"]})).unwrap();
        let b = v(json!({"NS": ["2.0", "1"]})).unwrap();
        assert_eq!(a, b);
        let (n9, n10) = (v(json!({"N": "9"})).unwrap(), v(json!({"N": "10"})).unwrap());
        assert_eq!(n9.compare(&n10), Some(Ordering::Less));
        let (s9, s10) = (v(json!({"S": "9"})).unwrap(), v(json!({"S": "10"})).unwrap());
        assert_eq!(s9.compare(&s10), Some(Ordering::Greater));
        assert_eq!(n9.compare(&s9), None);
    }
}
