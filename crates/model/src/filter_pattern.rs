//! Lambda's event filter patterns (`filterPatterns` of a serverless.yml `stream` event,
//! `filter_patterns` of a gust.toml subscription), matched against a record's JSON: a record
//! is delivered when any pattern matches; the others are settled without an invocation, as
//! Lambda's event source mappings do.
//!
//! A pattern is an object whose keys follow the record: an object value descends into the
//! record's object of that key, an array value is a list of matchers for the record's value
//! there, any of which may match (against a record array: any of its elements). Matchers: a
//! literal (string, number compared as a number, `true`/`false`, `null`), `{"prefix": s}`,
//! `{"suffix": s}`, `{"equals-ignore-case": s}`, `{"exists": true|false}`,
//! `{"anything-but": literal | [literals] | {"prefix": s}}` and
//! `{"numeric": [op, n]}` or `[op, n, op, n]` with `=`, `<`, `<=`, `>`, `>=`. Every key of a
//! pattern must match. Validated at load, so a pattern Gust cannot read refuses the manifest
//! instead of filtering nothing (or everything).

use serde_json::Value;

/// One validated pattern.
#[derive(Debug, Clone)]
pub struct FilterPattern {
    /// The pattern as canonical JSON (what equality compares).
    text: String,
    value: Value,
}

impl PartialEq for FilterPattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for FilterPattern {}

impl FilterPattern {
    /// Parses and validates a pattern (an object, or JSON text of one).
    pub fn new(v: &Value) -> Result<Self, String> {
        let value = match v {
            Value::String(s) => serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))?,
            other => other.clone(),
        };
        check_object(&value, "")?;
        Ok(Self {
            text: value.to_string(),
            value,
        })
    }

    pub fn as_json(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, record: &Value) -> bool {
        matches_object(&self.value, record)
    }
}

fn check_object(p: &Value, at: &str) -> Result<(), String> {
    let Value::Object(map) = p else {
        return Err(format!("{}a pattern is an object of fields", where_(at)));
    };
    if map.is_empty() {
        return Err(format!("{}an empty pattern matches nothing useful", where_(at)));
    }
    for (k, v) in map {
        let path = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
        match v {
            Value::Object(_) => check_object(v, &path)?,
            Value::Array(ms) if !ms.is_empty() => {
                for m in ms {
                    check_matcher(m, &path)?;
                }
            }
            _ => {
                return Err(format!(
                    "{}a field takes an object (a nested pattern) or a non-empty list of matchers",
                    where_(&path)
                ))
            }
        }
    }
    Ok(())
}

fn where_(at: &str) -> String {
    if at.is_empty() {
        String::new()
    } else {
        format!("`{at}`: ")
    }
}

fn check_matcher(m: &Value, at: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{}{why}", where_(at)));
    match m {
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => Ok(()),
        Value::Array(_) => bad("a matcher is a value or an object such as {\"prefix\": \"x\"}"),
        Value::Object(o) => {
            let (Some((op, arg)), 1) = (o.iter().next(), o.len()) else {
                return bad("a matcher object has exactly one key");
            };
            match (op.as_str(), arg) {
                ("prefix" | "suffix" | "equals-ignore-case", Value::String(_)) => Ok(()),
                ("exists", Value::Bool(_)) => Ok(()),
                ("anything-but", Value::Array(xs)) if !xs.is_empty() && xs.iter().all(is_literal) => Ok(()),
                ("anything-but", Value::Object(p)) if p.len() == 1 && p.get("prefix").is_some_and(Value::is_string) => {
                    Ok(())
                }
                ("anything-but", x) if is_literal(x) => Ok(()),
                ("numeric", Value::Array(xs)) => {
                    let ok = matches!(xs.len(), 2 | 4)
                        && xs.chunks(2).all(|c| {
                            c[0].as_str().is_some_and(|o| ["=", "<", "<=", ">", ">="].contains(&o)) && c[1].is_number()
                        });
                    if ok {
                        Ok(())
                    } else {
                        bad("`numeric` takes [op, number] or [op, number, op, number] with =, <, <=, > or >=")
                    }
                }
                (other, _) => Err(format!(
                    "{}unknown or malformed matcher `{other}` (use prefix, suffix, equals-ignore-case, exists, anything-but or numeric)",
                    where_(at)
                )),
            }
        }
    }
}

fn is_literal(v: &Value) -> bool {
    !matches!(v, Value::Array(_) | Value::Object(_))
}

fn matches_object(p: &Value, record: &Value) -> bool {
    // A record array is flattened: the pattern may match any of its elements.
    if let Value::Array(xs) = record {
        return xs.iter().any(|x| matches_object(p, x));
    }
    let Value::Object(map) = p else { return false };
    map.iter().all(|(k, want)| {
        let got = record.get(k);
        match want {
            Value::Object(_) => got.is_some_and(|g| matches_object(want, g)),
            Value::Array(ms) => ms.iter().any(|m| matcher(m, got)),
            _ => false,
        }
    })
}

fn literal_eq(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

/// Whether `m` accepts `got` (or, for an array, one of its elements).
fn matcher(m: &Value, got: Option<&Value>) -> bool {
    if let Some(Value::Bool(want)) = m.as_object().and_then(|o| o.get("exists")) {
        return got.is_some() == *want;
    }
    let Some(got) = got else { return false };
    if let Value::Array(xs) = got {
        return xs.iter().any(|x| matcher(m, Some(x)));
    }
    match m {
        Value::Object(o) => {
            let Some((op, arg)) = o.iter().next() else { return false };
            let s = got.as_str();
            match op.as_str() {
                "prefix" => s.zip(arg.as_str()).is_some_and(|(s, p)| s.starts_with(p)),
                "suffix" => s.zip(arg.as_str()).is_some_and(|(s, p)| s.ends_with(p)),
                "equals-ignore-case" => s.zip(arg.as_str()).is_some_and(|(s, p)| s.eq_ignore_ascii_case(p)),
                "anything-but" => match arg {
                    Value::Array(xs) => !xs.iter().any(|x| literal_eq(x, got)),
                    Value::Object(p) => match (p.get("prefix").and_then(Value::as_str), s) {
                        (Some(p), Some(s)) => !s.starts_with(p),
                        _ => false,
                    },
                    x => !literal_eq(x, got),
                },
                "numeric" => {
                    let Some(n) = got.as_f64() else { return false };
                    let Value::Array(xs) = arg else { return false };
                    xs.chunks(2).all(|c| {
                        let b = c[1].as_f64().unwrap_or(f64::NAN);
                        match c[0].as_str() {
                            Some("=") => n == b,
                            Some("<") => n < b,
                            Some("<=") => n <= b,
                            Some(">") => n > b,
                            Some(">=") => n >= b,
                            _ => false,
                        }
                    })
                }
                _ => false,
            }
        }
        literal => literal_eq(literal, got),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(v: Value) -> FilterPattern {
        FilterPattern::new(&v).unwrap()
    }

    #[test]
    fn lambda_matchers_on_a_dynamodb_record() {
        let insert = json!({"eventName": "INSERT", "dynamodb": {"NewImage": {
            "status": {"S": "paid"}, "total": {"N": "42"}, "tags": {"L": [{"S": "vip"}]}}}});
        let modify = json!({"eventName": "MODIFY", "dynamodb": {"NewImage": {"status": {"S": "new"}}}});
        let name = p(json!({"eventName": ["INSERT"]}));
        assert!(name.matches(&insert) && !name.matches(&modify));
        let nested = p(json!({"dynamodb": {"NewImage": {"status": {"S": ["paid", "shipped"]}}}}));
        assert!(nested.matches(&insert) && !nested.matches(&modify));
        assert!(p(json!({"eventName": [{"prefix": "INS"}]})).matches(&insert));
        assert!(p(json!({"eventName": [{"suffix": "FY"}]})).matches(&modify));
        assert!(p(json!({"eventName": [{"equals-ignore-case": "insert"}]})).matches(&insert));
        assert!(p(json!({"eventName": [{"anything-but": ["REMOVE", "MODIFY"]}]})).matches(&insert));
        assert!(!p(json!({"eventName": [{"anything-but": "MODIFY"}]})).matches(&modify));
        assert!(p(json!({"eventName": [{"anything-but": {"prefix": "MOD"}}]})).matches(&insert));
        let total = p(json!({"dynamodb": {"NewImage": {"total": {"N": [{"numeric": [">", 10, "<=", 42]}]}}}}));
        // DynamoDB numbers are strings: a numeric matcher does not take them.
        assert!(!total.matches(&insert));
        assert!(p(json!({"n": [{"numeric": [">", 10, "<=", 42]}]})).matches(&json!({"n": 42})));
        assert!(!p(json!({"n": [{"numeric": [">", 10, "<=", 42]}]})).matches(&json!({"n": 43})));
        assert!(p(json!({"n": [42]})).matches(&json!({"n": 42.0})));
        let exists = p(json!({"dynamodb": {"OldImage": [{"exists": false}]}}));
        assert!(exists.matches(&insert));
        assert!(!p(json!({"dynamodb": {"NewImage": [{"exists": false}]}})).matches(&insert));
        // Arrays in the record: any element.
        assert!(p(json!({"dynamodb": {"NewImage": {"tags": {"L": {"S": ["vip"]}}}}})).matches(&insert));
        // Every key must match; a missing key does not.
        assert!(!p(json!({"eventName": ["INSERT"], "other": ["x"]})).matches(&insert));
        // Text of a pattern, as CloudFormation writes it.
        assert!(FilterPattern::new(&json!("{\"eventName\": [\"INSERT\"]}"))
            .unwrap()
            .matches(&insert));
    }

    #[test]
    fn malformed_patterns_are_refused_with_where_and_why() {
        for (bad, says) in [
            (json!([1]), "object of fields"),
            (json!({}), "empty pattern"),
            (json!({"a": "x"}), "`a`: a field takes"),
            (json!({"a": []}), "`a`: a field takes"),
            (
                json!({"a": {"b": [{"regex": "x"}]}}),
                "`a.b`: unknown or malformed matcher `regex`",
            ),
            (json!({"a": [{"numeric": ["~", 1]}]}), "numeric"),
            (json!({"a": [{"prefix": 1}]}), "malformed matcher `prefix`"),
            (json!({"a": [[1]]}), "a matcher is a value"),
            (json!("{not json"), "not JSON"),
        ] {
            let e = FilterPattern::new(&bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
