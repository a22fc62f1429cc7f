//! `ProjectionExpression`: the parts of an item the paths name, in the item's own shape (a
//! list projected by index keeps the chosen elements in order, compacted, as DynamoDB
//! answers). Also what `UPDATED_OLD`/`UPDATED_NEW` return: the updated paths of the item.

use super::{Path, Step};
use crate::dynamodb::value::{Item, Value};

/// The item keeping only what `paths` reach.
pub fn project(item: &Item, paths: &[Path]) -> Item {
    let slices: Vec<&[Step]> = paths.iter().map(|p| p.as_slice()).collect();
    prune_map(item, &slices)
}

fn prune_map(m: &Item, paths: &[&[Step]]) -> Item {
    let mut out = Item::new();
    for (k, v) in m {
        let here: Vec<&[Step]> = paths
            .iter()
            .filter_map(|p| match p.split_first() {
                Some((Step::Name(n), rest)) if n == k => Some(rest),
                _ => None,
            })
            .collect();
        if let Some(v) = prune_value(v, &here) {
            out.insert(k.clone(), v);
        }
    }
    out
}

/// `v` kept by the remaining paths: all of it when one path ends here.
fn prune_value(v: &Value, rest: &[&[Step]]) -> Option<Value> {
    if rest.is_empty() {
        return None;
    }
    if rest.iter().any(|r| r.is_empty()) {
        return Some(v.clone());
    }
    match v {
        Value::M(m) => {
            let inner = prune_map(m, rest);
            (!inner.is_empty()).then_some(Value::M(inner))
        }
        Value::L(l) => {
            let mut out = Vec::new();
            for (i, e) in l.iter().enumerate() {
                let here: Vec<&[Step]> = rest
                    .iter()
                    .filter_map(|p| match p.split_first() {
                        Some((Step::Index(j), r)) if *j == i => Some(r),
                        _ => None,
                    })
                    .collect();
                if let Some(e) = prune_value(e, &here) {
                    out.push(e);
                }
            }
            (!out.is_empty()).then_some(Value::L(out))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamodb::expr::{parse, Placeholders};
    use crate::dynamodb::value::{item_from_json, item_to_json};
    use serde_json::json;

    #[test]
    fn keeps_what_the_paths_reach() {
        let item = item_from_json(&json!({
            "a": {"S": "x"},
            "b": {"M": {"c": {"N": "1"}, "d": {"N": "2"}}},
            "l": {"L": [{"S": "0"}, {"M": {"k": {"S": "v"}, "z": {"S": "w"}}}, {"S": "2"}]},
            "other": {"S": "no"}
        }))
        .unwrap();
        let paths = parse::projection("a, b.c, l[1].k, l[2], missing, a.x", &mut Placeholders::default()).unwrap();
        assert_eq!(
            item_to_json(&project(&item, &paths)),
            json!({
                "a": {"S": "x"},
                "b": {"M": {"c": {"N": "1"}}},
                "l": {"L": [{"M": {"k": {"S": "v"}}}, {"S": "2"}]}
            })
        );
    }
}
