//! Evaluating conditions and operands against an item.
//!
//! As in DynamoDB, a comparison whose sides are missing or of different types is false (not
//! an error), `<>` is true when the attribute is missing, and `size`, `contains` and
//! `begins_with` are false on types they do not apply to.

use super::{CmpOp, Cond, Operand, Step};
use crate::dynamodb::error::{validation, Result};
use crate::dynamodb::value::{Item, Value};
use std::cmp::Ordering;

/// The value at `path` in `item`.
pub fn resolve<'a>(item: &'a Item, path: &[Step]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let Step::Name(name) = first else { return None };
    let mut cur = item.get(name)?;
    for step in rest {
        cur = match (step, cur) {
            (Step::Name(n), Value::M(m)) => m.get(n)?,
            (Step::Index(i), Value::L(l)) => l.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// The value of a condition operand (`None`: the path is missing, or `size` of a type
/// without one).
pub fn operand(item: &Item, op: &Operand) -> Result<Option<Value>> {
    Ok(match op {
        Operand::Path(p) => resolve(item, p).cloned(),
        Operand::Value(v) => Some(v.clone()),
        Operand::Size(p) => resolve(item, p).and_then(size).map(Value::N),
        Operand::IfNotExists(..) | Operand::ListAppend(..) | Operand::Plus(..) | Operand::Minus(..) => {
            return update_operand(item, op).map(Some)
        }
    })
}

fn size(v: &Value) -> Option<crate::dynamodb::number::Number> {
    let n = match v {
        Value::S(s) => s.chars().count(),
        Value::B(b) => b.len(),
        Value::L(l) => l.len(),
        Value::M(m) => m.len(),
        Value::SS(s) => s.len(),
        Value::NS(s) => s.len(),
        Value::BS(s) => s.len(),
        Value::N(_) | Value::Bool(_) | Value::Null => return None,
    };
    crate::dynamodb::number::Number::parse(&n.to_string()).ok()
}

/// The value of the right side of `SET path = ...`, from the item before the update.
pub fn update_operand(item: &Item, op: &Operand) -> Result<Value> {
    let wrong_type = || validation("An operand in the update expression has an incorrect data type");
    match op {
        Operand::Path(p) => resolve(item, p).cloned().ok_or_else(|| {
            validation("The provided expression refers to an attribute that does not exist in the item")
        }),
        Operand::Value(v) => Ok(v.clone()),
        Operand::Size(_) => Err(validation(
            "Invalid UpdateExpression: Invalid function name; function: size",
        )),
        Operand::IfNotExists(p, fallback) => match resolve(item, p) {
            Some(v) => Ok(v.clone()),
            None => update_operand(item, fallback),
        },
        Operand::ListAppend(a, b) => match (update_operand(item, a)?, update_operand(item, b)?) {
            (Value::L(mut a), Value::L(b)) => {
                a.extend(b);
                Ok(Value::L(a))
            }
            _ => Err(wrong_type()),
        },
        Operand::Plus(a, b) | Operand::Minus(a, b) => match (update_operand(item, a)?, update_operand(item, b)?) {
            (Value::N(x), Value::N(y)) => Ok(Value::N(if matches!(op, Operand::Plus(..)) {
                x.add(&y)?
            } else {
                x.sub(&y)?
            })),
            _ => Err(wrong_type()),
        },
    }
}

fn compare(a: &Option<Value>, op: CmpOp, b: &Option<Value>) -> bool {
    match op {
        CmpOp::Eq => matches!((a, b), (Some(x), Some(y)) if x == y),
        CmpOp::Ne => !matches!((a, b), (Some(x), Some(y)) if x == y),
        _ => {
            let (Some(x), Some(y)) = (a, b) else { return false };
            let Some(o) = x.compare(y) else { return false };
            match op {
                CmpOp::Lt => o == Ordering::Less,
                CmpOp::Le => o != Ordering::Greater,
                CmpOp::Gt => o == Ordering::Greater,
                CmpOp::Ge => o != Ordering::Less,
                CmpOp::Eq | CmpOp::Ne => unreachable!("handled above"),
            }
        }
    }
}

/// Whether `cond` holds for `item` (an absent item is the empty item).
pub fn condition(item: &Item, cond: &Cond) -> Result<bool> {
    Ok(match cond {
        Cond::Cmp(a, op, b) => compare(&operand(item, a)?, *op, &operand(item, b)?),
        Cond::Between(x, lo, hi) => {
            let x = operand(item, x)?;
            compare(&x, CmpOp::Ge, &operand(item, lo)?) && compare(&x, CmpOp::Le, &operand(item, hi)?)
        }
        Cond::In(x, list) => {
            let x = operand(item, x)?;
            let mut found = false;
            for o in list {
                if compare(&x, CmpOp::Eq, &operand(item, o)?) {
                    found = true;
                    break;
                }
            }
            found
        }
        Cond::And(a, b) => condition(item, a)? && condition(item, b)?,
        Cond::Or(a, b) => condition(item, a)? || condition(item, b)?,
        Cond::Not(a) => !condition(item, a)?,
        Cond::Exists(p) => resolve(item, p).is_some(),
        Cond::NotExists(p) => resolve(item, p).is_none(),
        Cond::Type(p, t) => match (resolve(item, p), operand(item, t)?) {
            (Some(v), Some(Value::S(t))) => v.type_name() == t,
            _ => false,
        },
        Cond::BeginsWith(a, prefix) => match (operand(item, a)?, operand(item, prefix)?) {
            (Some(Value::S(s)), Some(Value::S(p))) => s.starts_with(&p),
            (Some(Value::B(s)), Some(Value::B(p))) => s.starts_with(&p),
            _ => false,
        },
        Cond::Contains(a, needle) => match (operand(item, a)?, operand(item, needle)?) {
            (Some(Value::S(s)), Some(Value::S(n))) => s.contains(&n),
            (Some(Value::B(s)), Some(Value::B(n))) => n.is_empty() || s.windows(n.len()).any(|w| w == n),
            (Some(Value::SS(s)), Some(Value::S(n))) => s.contains(&n),
            (Some(Value::NS(s)), Some(Value::N(n))) => s.contains(&n),
            (Some(Value::BS(s)), Some(Value::B(n))) => s.contains(&n),
            (Some(Value::L(l)), Some(n)) => l.contains(&n),
            _ => false,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamodb::expr::parse;
    use crate::dynamodb::value::item_from_json;
    use serde_json::json;

    fn item() -> Item {
        item_from_json(&json!({
            "id": {"S": "u1"},
            "age": {"N": "30"},
            "name": {"S": "Ada Lovelace"},
            "tags": {"SS": ["x", "y"]},
            "list": {"L": [{"S": "a"}, {"M": {"deep": {"N": "9"}}}]},
            "flag": {"BOOL": true}
        }))
        .unwrap()
    }

    fn holds(expr: &str, values: serde_json::Value) -> bool {
        let values = values
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), Value::from_json(v).unwrap()))
            .collect();
        let names = [("#n".to_string(), "name".to_string())].into_iter().collect();
        let mut ph = crate::dynamodb::expr::Placeholders::new(names, values);
        let c = parse::condition(expr, "ConditionExpression", &mut ph).unwrap();
        condition(&item(), &c).unwrap()
    }

    #[test]
    fn comparisons_are_typed() {
        assert!(holds("age = :v", json!({":v": {"N": "30.0"}})));
        assert!(holds("age > :v", json!({":v": {"N": "9"}})));
        assert!(!holds("age > :v", json!({":v": {"S": "9"}})));
        assert!(holds("age <> :v", json!({":v": {"S": "30"}})));
        assert!(holds("missing <> :v", json!({":v": {"N": "1"}})));
        assert!(!holds("missing = :v", json!({":v": {"N": "1"}})));
        assert!(!holds("missing < :v", json!({":v": {"N": "1"}})));
        assert!(holds(
            "age BETWEEN :a AND :b",
            json!({":a": {"N": "30"}, ":b": {"N": "31"}})
        ));
        assert!(!holds(
            "age BETWEEN :a AND :b",
            json!({":a": {"N": "31"}, ":b": {"N": "40"}})
        ));
        assert!(holds("age IN (:a, :b)", json!({":a": {"N": "1"}, ":b": {"N": "30"}})));
    }

    #[test]
    fn functions() {
        assert!(holds("begins_with(#n, :p)", json!({":p": {"S": "Ada"}})));
        assert!(!holds("begins_with(age, :p)", json!({":p": {"S": "3"}})));
        assert!(holds("contains(#n, :p)", json!({":p": {"S": "Love"}})));
        assert!(holds("contains(tags, :p)", json!({":p": {"S": "y"}})));
        assert!(holds("contains(list, :p)", json!({":p": {"S": "a"}})));
        assert!(holds("size(tags) = :n", json!({":n": {"N": "2"}})));
        assert!(holds("size(#n) > :n", json!({":n": {"N": "10"}})));
        assert!(holds(
            "attribute_exists(list[1].deep) AND attribute_not_exists(list[2])",
            json!({})
        ));
        assert!(holds("attribute_type(flag, :t)", json!({":t": {"S": "BOOL"}})));
        assert!(holds("list[1].deep = :n", json!({":n": {"N": "9"}})));
        assert!(holds(
            "NOT (flag = :f) OR age = :n",
            json!({":f": {"BOOL": true}, ":n": {"N": "30"}})
        ));
    }
}
