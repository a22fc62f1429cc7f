//! Applying an `UpdateExpression` to an item, as DynamoDB does: every `SET` value is computed
//! from the item as it was before the update, then `SET`, `REMOVE`, `ADD` and `DELETE` are
//! applied in that order. Two paths of one expression may not overlap (`a` and `a.b`).

use super::eval::{resolve, update_operand};
use super::{Path, Step, Update};
use crate::dynamodb::error::{validation, DynamoError, Result};
use crate::dynamodb::value::{Item, Value};

fn invalid_path() -> DynamoError {
    validation("The document path provided in the update expression is invalid for update")
}

fn wrong_type() -> DynamoError {
    validation("An operand in the update expression has an incorrect data type")
}

fn bracketed(p: &Path) -> String {
    let steps: Vec<String> = p
        .iter()
        .map(|s| match s {
            Step::Name(n) => n.clone(),
            Step::Index(i) => format!("[{i}]"),
        })
        .collect();
    format!("[{}]", steps.join(", "))
}

/// Refuses an update with two paths where one is a prefix of the other.
fn check_overlaps(u: &Update) -> Result<()> {
    let paths = u.paths();
    for (i, a) in paths.iter().enumerate() {
        for b in &paths[i + 1..] {
            let n = a.len().min(b.len());
            if a[..n] == b[..n] {
                return Err(validation(format!(
                    "Invalid UpdateExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: {}, path two: {}",
                    bracketed(a),
                    bracketed(b)
                )));
            }
        }
    }
    Ok(())
}

fn get_mut<'a>(item: &'a mut Item, path: &[Step]) -> Option<&'a mut Value> {
    let (first, rest) = path.split_first()?;
    let Step::Name(name) = first else { return None };
    let mut cur = item.get_mut(name)?;
    for step in rest {
        cur = match (step, cur) {
            (Step::Name(n), Value::M(m)) => m.get_mut(n)?,
            (Step::Index(i), Value::L(l)) => l.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn set_path(item: &mut Item, path: &[Step], v: Value) -> Result<()> {
    match path {
        [Step::Name(n)] => {
            item.insert(n.clone(), v);
            Ok(())
        }
        [parent @ .., last] if !parent.is_empty() => {
            let container = get_mut(item, parent).ok_or_else(invalid_path)?;
            match (last, container) {
                (Step::Name(n), Value::M(m)) => {
                    m.insert(n.clone(), v);
                }
                (Step::Index(i), Value::L(l)) => {
                    if *i < l.len() {
                        l[*i] = v;
                    } else {
                        l.push(v);
                    }
                }
                _ => return Err(invalid_path()),
            }
            Ok(())
        }
        _ => Err(invalid_path()),
    }
}

fn remove_path(item: &mut Item, path: &[Step]) {
    match path {
        [Step::Name(n)] => {
            item.remove(n);
        }
        [parent @ .., last] if !parent.is_empty() => match (last, get_mut(item, parent)) {
            (Step::Name(n), Some(Value::M(m))) => {
                m.remove(n);
            }
            (Step::Index(i), Some(Value::L(l))) if *i < l.len() => {
                l.remove(*i);
            }
            _ => {}
        },
        _ => {}
    }
}

fn union<T: Clone + PartialEq>(mut a: Vec<T>, b: &[T]) -> Vec<T> {
    for x in b {
        if !a.contains(x) {
            a.push(x.clone());
        }
    }
    a
}

fn difference<T: PartialEq>(a: Vec<T>, b: &[T]) -> Vec<T> {
    a.into_iter().filter(|x| !b.contains(x)).collect()
}

/// The item after `u`, from `old` (the empty item when there was none).
pub fn apply(u: &Update, old: &Item) -> Result<Item> {
    check_overlaps(u)?;
    let values: Vec<Value> = u
        .set
        .iter()
        .map(|(_, op)| update_operand(old, op))
        .collect::<Result<_>>()?;
    let mut item = old.clone();
    for ((path, _), v) in u.set.iter().zip(values) {
        set_path(&mut item, path, v)?;
    }
    // Highest list index first, so removing `a[1]` does not move `a[3]`.
    let mut removes: Vec<&Path> = u.remove.iter().collect();
    removes.sort_by(|a, b| b.cmp(a));
    for p in removes {
        remove_path(&mut item, p);
    }
    for (path, v) in &u.add {
        let new = match (resolve(&item, path).cloned(), v) {
            (None, v) => v.clone(),
            (Some(Value::N(a)), Value::N(b)) => Value::N(a.add(b)?),
            (Some(Value::SS(a)), Value::SS(b)) => Value::SS(union(a, b)),
            (Some(Value::NS(a)), Value::NS(b)) => Value::NS(union(a, b)),
            (Some(Value::BS(a)), Value::BS(b)) => Value::BS(union(a, b)),
            _ => return Err(wrong_type()),
        };
        set_path(&mut item, path, new)?;
    }
    for (path, v) in &u.delete {
        let new = match (resolve(&item, path).cloned(), v) {
            (None, _) => continue,
            (Some(Value::SS(a)), Value::SS(b)) => Some(Value::SS(difference(a, b))),
            (Some(Value::NS(a)), Value::NS(b)) => Some(Value::NS(difference(a, b))),
            (Some(Value::BS(a)), Value::BS(b)) => Some(Value::BS(difference(a, b))),
            _ => return Err(wrong_type()),
        };
        match new {
            Some(Value::SS(s)) if s.is_empty() => remove_path(&mut item, path),
            Some(Value::NS(s)) if s.is_empty() => remove_path(&mut item, path),
            Some(Value::BS(s)) if s.is_empty() => remove_path(&mut item, path),
            Some(v) => set_path(&mut item, path, v)?,
            None => {}
        }
    }
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamodb::expr::{parse, Placeholders};
    use crate::dynamodb::value::{item_from_json, item_to_json};
    use serde_json::json;

    fn run(old: serde_json::Value, expr: &str, values: serde_json::Value) -> Result<serde_json::Value> {
        let values = values
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), Value::from_json(v).unwrap()))
            .collect();
        let mut ph = Placeholders::new(Default::default(), values);
        let u = parse::update(expr, &mut ph)?;
        Ok(item_to_json(&apply(&u, &item_from_json(&old).unwrap())?))
    }

    #[test]
    fn set_arithmetic_functions_and_nesting() {
        let out = run(
            json!({"n": {"N": "5"}, "l": {"L": [{"N": "1"}]}, "m": {"M": {"x": {"S": "a"}}}}),
            "SET n = n + :one, c = if_not_exists(c, :zero) - :one, l = list_append(l, :l), m.y = :s, m.x = if_not_exists(m.x, :s), l2 = :l",
            json!({":one": {"N": "1"}, ":zero": {"N": "0"}, ":l": {"L": [{"N": "2"}]}, ":s": {"S": "b"}}),
        )
        .unwrap();
        assert_eq!(out["n"], json!({"N": "6"}));
        assert_eq!(out["c"], json!({"N": "-1"}));
        assert_eq!(out["l"], json!({"L": [{"N": "1"}, {"N": "2"}]}));
        assert_eq!(out["m"], json!({"M": {"x": {"S": "a"}, "y": {"S": "b"}}}));
    }

    #[test]
    fn set_values_come_from_the_old_item() {
        let out = run(json!({"a": {"N": "1"}, "b": {"N": "2"}}), "SET a = b, b = a", json!({})).unwrap();
        assert_eq!(out["a"], json!({"N": "2"}));
        assert_eq!(out["b"], json!({"N": "1"}));
    }

    #[test]
    fn remove_add_delete() {
        let out = run(
            json!({"l": {"L": [{"N": "0"}, {"N": "1"}, {"N": "2"}, {"N": "3"}]}, "gone": {"S": "x"}, "n": {"N": "1"}, "s": {"SS": ["a", "b"]}, "t": {"SS": ["a"]}}),
            "REMOVE l[1], l[3], gone ADD n :two, s :cd, fresh :two DELETE t :a",
            json!({":two": {"N": "2"}, ":cd": {"SS": ["c", "a"]}, ":a": {"SS": ["a"]}}),
        )
        .unwrap();
        assert_eq!(out["l"], json!({"L": [{"N": "0"}, {"N": "2"}]}));
        assert!(out.get("gone").is_none());
        assert_eq!(out["n"], json!({"N": "3"}));
        assert_eq!(out["s"], json!({"SS": ["a", "b", "c"]}));
        assert_eq!(out["fresh"], json!({"N": "2"}));
        assert!(out.get("t").is_none(), "a set emptied by DELETE is removed");
    }

    #[test]
    fn refusals() {
        let e = run(
            json!({"a": {"S": "x"}}),
            "SET a = a + :one",
            json!({":one": {"N": "1"}}),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "An operand in the update expression has an incorrect data type");
        let e = run(json!({}), "SET a = b", json!({})).unwrap_err().to_string();
        assert!(e.contains("refers to an attribute that does not exist"), "{e}");
        let e = run(json!({}), "SET a.b = :one", json!({":one": {"N": "1"}}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("document path provided in the update expression is invalid"),
            "{e}"
        );
        let e = run(json!({}), "SET a = :one REMOVE a.b", json!({":one": {"N": "1"}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("path one: [a], path two: [a, b]"), "{e}");
    }
}
