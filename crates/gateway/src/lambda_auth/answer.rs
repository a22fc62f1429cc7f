//! What a Lambda authorizer answered, read as API Gateway reads it: an IAM policy document
//! (`principalId`, `policyDocument.Statement[]` with `Effect`, `Action`, `Resource`, and a
//! `context`), or an HTTP API simple response (`{isAuthorized, context}`). An answer of any
//! other shape is garbage (500), never an Allow.
//!
//! A policy is kept as it was answered and evaluated against each request's ARN, so a cached
//! policy decides for the routes it names and denies the others, as API Gateway's cache does
//! (a policy whose `Resource` is only the first request's `methodArn` denies other routes
//! while it is cached).

use gust_model::AuthorizerFormat;
use serde_json::{Map, Value};

/// A parsed answer, independent of the request it was given for.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Policy {
        principal_id: Option<String>,
        statements: Vec<Statement>,
        context: Map<String, Value>,
    },
    Simple {
        authorized: bool,
        context: Map<String, Value>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub allow: bool,
    /// `Action` patterns (`execute-api:Invoke`, `execute-api:*`, `*`).
    pub actions: Vec<String>,
    /// `Resource` patterns (ARNs with `*` and `?`).
    pub resources: Vec<String>,
}

/// The decision for one request ARN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// A statement denies the ARN (`explicit`), or none allows it.
    Deny {
        explicit: bool,
    },
}

/// Why an answer is garbage (for the log; the caller gets a 500).
pub type Garbage = String;

fn strings(v: &Value, what: &str) -> Result<Vec<String>, Garbage> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{what} holds a non-string"))
            })
            .collect(),
        _ => Err(format!("{what} is not a string or a list of strings")),
    }
}

/// The `context` map: REST and HTTP payload 1.0 take only strings, numbers and booleans
/// (API Gateway refuses an object or array value); payload 2.0 takes any JSON.
fn context(v: Option<&Value>, format: AuthorizerFormat) -> Result<Map<String, Value>, Garbage> {
    match v {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => {
            if format != AuthorizerFormat::HttpV2 {
                if let Some((k, _)) = m
                    .iter()
                    .find(|(_, v)| !(v.is_string() || v.is_number() || v.is_boolean()))
                {
                    return Err(format!("context value `{k}` is not a string, number or boolean"));
                }
            }
            Ok(m.clone())
        }
        Some(_) => Err("context is not an object".into()),
    }
}

/// Reads the function's answer.
pub fn parse(payload: &[u8], format: AuthorizerFormat, simple: bool) -> Result<Answer, Garbage> {
    let v: Value = serde_json::from_slice(payload).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let Value::Object(obj) = v else {
        return Err("the answer is not a JSON object".into());
    };
    if simple {
        let authorized = obj
            .get("isAuthorized")
            .and_then(Value::as_bool)
            .ok_or("a simple response needs a boolean isAuthorized")?;
        return Ok(Answer::Simple {
            authorized,
            context: context(obj.get("context"), format)?,
        });
    }
    let principal_id = match obj.get("principalId") {
        Some(Value::String(s)) => Some(s.clone()),
        None if format == AuthorizerFormat::HttpV2 => None,
        _ => return Err("principalId is missing or not a string".into()),
    };
    let doc = obj
        .get("policyDocument")
        .and_then(Value::as_object)
        .ok_or("policyDocument is missing or not an object")?;
    let raw = match doc.get("Statement") {
        Some(Value::Array(items)) => items.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => return Err("policyDocument.Statement is missing".into()),
    };
    let mut statements = Vec::new();
    for s in &raw {
        let s = s.as_object().ok_or("a Statement is not an object")?;
        if s.contains_key("NotAction") || s.contains_key("NotResource") || s.contains_key("Condition") {
            return Err("NotAction, NotResource and Condition are not supported".into());
        }
        let allow = match s.get("Effect").and_then(Value::as_str) {
            Some("Allow") => true,
            Some("Deny") => false,
            _ => return Err("a Statement's Effect is not Allow or Deny".into()),
        };
        let actions = strings(s.get("Action").ok_or("a Statement has no Action")?, "Action")?;
        let resources = strings(s.get("Resource").ok_or("a Statement has no Resource")?, "Resource")?;
        statements.push(Statement {
            allow,
            actions,
            resources,
        });
    }
    Ok(Answer::Policy {
        principal_id,
        statements,
        context: context(obj.get("context"), format)?,
    })
}

impl Answer {
    /// The decision for a request to `arn`: a Deny that covers it wins, then an Allow;
    /// nothing covering it denies.
    pub fn verdict(&self, arn: &str) -> Verdict {
        let statements = match self {
            Answer::Simple { authorized: true, .. } => return Verdict::Allow,
            Answer::Simple { authorized: false, .. } => return Verdict::Deny { explicit: true },
            Answer::Policy { statements, .. } => statements,
        };
        let covers = |s: &Statement| {
            s.actions.iter().any(|a| wildcard_match(a, "execute-api:Invoke"))
                && s.resources.iter().any(|r| wildcard_match(r, arn))
        };
        if statements.iter().any(|s| !s.allow && covers(s)) {
            return Verdict::Deny { explicit: true };
        }
        if statements.iter().any(|s| s.allow && covers(s)) {
            Verdict::Allow
        } else {
            Verdict::Deny { explicit: false }
        }
    }

    pub fn principal_id(&self) -> Option<&str> {
        match self {
            Answer::Policy { principal_id, .. } => principal_id.as_deref(),
            Answer::Simple { .. } => None,
        }
    }

    pub fn context(&self) -> &Map<String, Value> {
        match self {
            Answer::Policy { context, .. } | Answer::Simple { context, .. } => context,
        }
    }
}

/// IAM's wildcards, as every policy Gust reads them (`gust_model::iam`).
pub use gust_model::iam::wildcard_match;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ARN: &str = "arn:aws:execute-api:us-east-1:000000000000:gust/$default/GET/items/1";

    fn policy(statements: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "principalId": "user-1",
            "policyDocument": {"Version": "2012-10-17", "Statement": statements},
            "context": {"tenant": "t1", "n": 3, "admin": true}
        }))
        .unwrap()
    }

    #[test]
    fn wildcards_as_iam() {
        assert!(wildcard_match("*", ARN));
        assert!(wildcard_match("arn:aws:execute-api:*:*:gust/*/GET/*", ARN));
        assert!(wildcard_match(
            "arn:aws:execute-api:us-east-1:000000000000:gust/$default/GET/items/?",
            ARN
        ));
        assert!(!wildcard_match("arn:aws:execute-api:*:*:gust/*/POST/*", ARN));
        assert!(!wildcard_match(
            "arn:aws:execute-api:us-east-1:000000000000:gust/$default/GET/items",
            ARN
        ));
        assert!(wildcard_match("execute-api:*", "execute-api:Invoke"));
        assert!(!wildcard_match("s3:*", "execute-api:Invoke"));
        assert!(wildcard_match("a*b*c", "aXXbYYc") && !wildcard_match("a*b*c", "aXXbYY"));
    }

    #[test]
    fn allow_deny_and_implicit_deny() {
        let allow = json!([{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": ARN}]);
        let a = parse(&policy(allow), AuthorizerFormat::Rest, false).unwrap();
        assert_eq!(a.verdict(ARN), Verdict::Allow);
        assert_eq!(a.principal_id(), Some("user-1"));
        assert_eq!(a.context()["n"], 3);
        assert_eq!(
            a.verdict("arn:aws:execute-api:us-east-1:000000000000:gust/$default/POST/items"),
            Verdict::Deny { explicit: false },
            "a cached policy for another route denies"
        );
        let both = json!([
            {"Effect": "Allow", "Action": ["execute-api:Invoke"], "Resource": ["*"]},
            {"Effect": "Deny", "Action": "execute-api:*", "Resource": "arn:aws:execute-api:*:*:*/*/GET/items/*"}
        ]);
        let a = parse(&policy(both), AuthorizerFormat::Rest, false).unwrap();
        assert_eq!(a.verdict(ARN), Verdict::Deny { explicit: true }, "Deny wins");
        let other_action = json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"});
        let a = parse(&policy(other_action), AuthorizerFormat::Rest, false).unwrap();
        assert_eq!(a.verdict(ARN), Verdict::Deny { explicit: false });
    }

    #[test]
    fn simple_responses() {
        let a = parse(
            br#"{"isAuthorized": true, "context": {"nested": {"a": 1}}}"#,
            AuthorizerFormat::HttpV2,
            true,
        )
        .unwrap();
        assert_eq!(a.verdict(ARN), Verdict::Allow);
        assert_eq!(a.context()["nested"]["a"], 1, "2.0 takes any JSON in context");
        let a = parse(br#"{"isAuthorized": false}"#, AuthorizerFormat::HttpV2, true).unwrap();
        assert_eq!(a.verdict(ARN), Verdict::Deny { explicit: true });
    }

    #[test]
    fn garbage_is_never_an_allow() {
        let cases: [(&[u8], AuthorizerFormat, bool); 9] = [
            (b"not json", AuthorizerFormat::Rest, false),
            (b"[]", AuthorizerFormat::Rest, false),
            (br#"{"isAuthorized": "yes"}"#, AuthorizerFormat::HttpV2, true),
            (br#"{"principalId": "u"}"#, AuthorizerFormat::Rest, false),
            (br#"{"policyDocument": {"Statement": []}}"#, AuthorizerFormat::Rest, false),
            (
                br#"{"principalId": "u", "policyDocument": {"Statement": [{"Effect": "allow", "Action": "*", "Resource": "*"}]}}"#,
                AuthorizerFormat::Rest,
                false,
            ),
            (
                br#"{"principalId": "u", "policyDocument": {"Statement": [{"Effect": "Allow", "Action": "*", "NotResource": "x", "Resource": "*"}]}}"#,
                AuthorizerFormat::Rest,
                false,
            ),
            (
                br#"{"principalId": "u", "policyDocument": {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}, "context": {"o": {}}}"#,
                AuthorizerFormat::Rest,
                false,
            ),
            (
                br#"{"principalId": "u", "policyDocument": {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": 5}]}}"#,
                AuthorizerFormat::HttpV1,
                false,
            ),
        ];
        for (payload, format, simple) in cases {
            assert!(
                parse(payload, format, simple).is_err(),
                "{} parsed",
                String::from_utf8_lossy(payload)
            );
        }
    }
}
