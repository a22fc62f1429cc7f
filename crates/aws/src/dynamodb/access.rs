//! What a request needs to be allowed: the IAM actions and resource ARNs one DynamoDB or
//! DynamoDB Streams request touches, as AWS authorizes them, for the caller's policy to judge
//! (the policy itself is the manifest's, evaluated by `gust_model::iam`).
//!
//! As on AWS: a table operation is `dynamodb:<Operation>` on the table's ARN (a Query or Scan
//! with `IndexName` on `table/T/index/I`); a batch operation is `dynamodb:BatchGetItem` or
//! `dynamodb:BatchWriteItem` on every table it names; a transaction is authorized per item, as
//! the item's own action (`TransactWriteItems`' `Put` is `dynamodb:PutItem`, `ConditionCheck`
//! is `dynamodb:ConditionCheckItem`, `TransactGetItems`' `Get` is `dynamodb:GetItem`); the
//! Streams operations are `dynamodb:<Operation>` on the stream's ARN; `ListTables` and
//! `ListStreams` are on `*`. A body that does not parse, or names no table, needs nothing
//! here: the operation refuses it with its own error.

use super::table::ACCOUNT;
use super::{STREAMS_TARGET_PREFIX, TARGET_PREFIX};
use serde_json::Value as Json;

/// One permission a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needed {
    /// `dynamodb:PutItem`.
    pub action: String,
    /// `arn:aws:dynamodb:REGION:ACCOUNT:table/NAME` (or `*`).
    pub resource: String,
}

fn table_arn(region: &str, table: &str) -> String {
    format!("arn:aws:dynamodb:{region}:{ACCOUNT}:table/{table}")
}

/// The permissions the operation `target` (the `X-Amz-Target` header) with `body` needs.
pub fn required(region: &str, target: &str, body: &[u8]) -> Vec<Needed> {
    let (streams, op) = match (
        target.strip_prefix(TARGET_PREFIX),
        target.strip_prefix(STREAMS_TARGET_PREFIX),
    ) {
        (Some(op), _) => (false, op),
        (_, Some(op)) => (true, op),
        _ => return Vec::new(),
    };
    let Ok(req) = serde_json::from_slice::<Json>(body) else {
        return Vec::new();
    };
    let need = |action: &str, resource: String| Needed {
        action: format!("dynamodb:{action}"),
        resource,
    };
    let str_of = |v: &Json, k: &str| v.get(k).and_then(Json::as_str).map(str::to_string);
    if streams {
        let arn = match op {
            "ListStreams" => Some(match str_of(&req, "TableName") {
                Some(t) => format!("{}/stream/*", table_arn(region, &t)),
                None => "*".into(),
            }),
            "DescribeStream" | "GetShardIterator" => str_of(&req, "StreamArn"),
            "GetRecords" => str_of(&req, "ShardIterator")
                .and_then(|it| super::stream::parse_iterator(&it).ok())
                .map(|(arn, _)| arn),
            _ => None,
        };
        return arn.map(|a| vec![need(op, a)]).unwrap_or_default();
    }
    match op {
        "ListTables" => vec![need(op, "*".into())],
        "BatchGetItem" | "BatchWriteItem" => req
            .get("RequestItems")
            .and_then(Json::as_object)
            .map(|items| items.keys().map(|t| need(op, table_arn(region, t))).collect())
            .unwrap_or_default(),
        "TransactWriteItems" | "TransactGetItems" => req
            .get("TransactItems")
            .and_then(Json::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| {
                        let (kind, body) = item.as_object()?.iter().next()?;
                        let action = match kind.as_str() {
                            "Put" => "PutItem",
                            "Update" => "UpdateItem",
                            "Delete" => "DeleteItem",
                            "ConditionCheck" => "ConditionCheckItem",
                            "Get" => "GetItem",
                            _ => return None,
                        };
                        Some(need(action, table_arn(region, &str_of(body, "TableName")?)))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ => match str_of(&req, "TableName") {
            Some(t) => {
                let mut arn = table_arn(region, &t);
                if let (true, Some(ix)) = (matches!(op, "Query" | "Scan"), str_of(&req, "IndexName")) {
                    arn = format!("{arn}/index/{ix}");
                }
                vec![need(op, arn)]
            }
            None => Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actions(target: &str, body: &str) -> Vec<(String, String)> {
        required("us-east-1", target, body.as_bytes())
            .into_iter()
            .map(|n| (n.action, n.resource))
            .collect()
    }

    const T: &str = "arn:aws:dynamodb:us-east-1:000000000000:table/";

    #[test]
    fn actions_and_resources_as_aws_authorizes_them() {
        let d = |op: &str| format!("{TARGET_PREFIX}{op}");
        assert_eq!(
            actions(&d("PutItem"), r#"{"TableName":"users"}"#),
            [("dynamodb:PutItem".into(), format!("{T}users"))]
        );
        assert_eq!(
            actions(&d("Query"), r#"{"TableName":"users","IndexName":"byEmail"}"#),
            [("dynamodb:Query".into(), format!("{T}users/index/byEmail"))]
        );
        assert_eq!(
            actions(&d("ListTables"), "{}"),
            [("dynamodb:ListTables".into(), "*".into())]
        );
        let batch = actions(&d("BatchWriteItem"), r#"{"RequestItems":{"a":[],"b":[]}}"#);
        assert_eq!(batch.len(), 2);
        assert!(batch.iter().all(|(a, _)| a == "dynamodb:BatchWriteItem"));
        assert_eq!(
            actions(
                &d("TransactWriteItems"),
                r#"{"TransactItems":[{"Put":{"TableName":"a"}},{"ConditionCheck":{"TableName":"b"}}]}"#
            ),
            [
                ("dynamodb:PutItem".into(), format!("{T}a")),
                ("dynamodb:ConditionCheckItem".into(), format!("{T}b"))
            ]
        );
        let s = |op: &str| format!("{STREAMS_TARGET_PREFIX}{op}");
        let arn = format!("{T}users/stream/2024");
        assert_eq!(
            actions(&s("DescribeStream"), &format!(r#"{{"StreamArn":"{arn}"}}"#)),
            [("dynamodb:DescribeStream".into(), arn.clone())]
        );
        let it = super::super::stream::iterator(&arn, 7);
        assert_eq!(
            actions(&s("GetRecords"), &format!(r#"{{"ShardIterator":"{it}"}}"#)),
            [("dynamodb:GetRecords".into(), arn)]
        );
        assert!(actions(&d("PutItem"), "not json").is_empty());
        assert!(actions(&d("PutItem"), "{}").is_empty());
    }
}
