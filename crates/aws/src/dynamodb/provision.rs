//! Tables a manifest declares (serverless.yml `AWS::DynamoDB::Table` resources, gust.toml
//! `[dynamodb.tables.NAME]`), brought to the declared shape at every start and redeploy.
//!
//! The rules, chosen so a deploy can never lose data: a missing table is created; an existing
//! one keeps its items, and gets what was added to its declaration (global secondary indexes,
//! filled from its items; a stream; TTL); a changed key schema is an error naming the table
//! (CloudFormation would replace the table, dropping every item); nothing is ever removed (a
//! table, an index or a stream the manifest no longer declares stays: delete it with
//! `DeleteTable`/`UpdateTable` if that is what you want).

use super::{DynamoDb, DynamoError, Result, TARGET_PREFIX};
use serde_json::{json, Value as Json};

/// What [`DynamoDb::ensure_table`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provisioned {
    Created,
    /// What was added: `index byEmail`, `stream`, `ttl`.
    Updated(Vec<String>),
    Unchanged,
}

/// The key schema as `(attribute, key type, attribute type)`, in order.
fn keys(table: &Json, schema: &Json) -> Vec<(String, String, String)> {
    let defs = table["AttributeDefinitions"].as_array().cloned().unwrap_or_default();
    schema
        .as_array()
        .map(|ks| {
            ks.iter()
                .map(|k| {
                    let name = k["AttributeName"].as_str().unwrap_or_default().to_string();
                    let ty = defs
                        .iter()
                        .find(|d| d["AttributeName"] == k["AttributeName"])
                        .and_then(|d| d["AttributeType"].as_str())
                        .unwrap_or_default()
                        .to_string();
                    (name, k["KeyType"].as_str().unwrap_or_default().to_string(), ty)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn show(keys: &[(String, String, String)]) -> String {
    keys.iter()
        .map(|(n, k, t)| format!("{n} ({k}, {t})"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl DynamoDb {
    fn op(&self, app: &str, region: &str, op: &str, body: &Json) -> Result<Json> {
        self.handle(
            app,
            region,
            &format!("{TARGET_PREFIX}{op}"),
            body.to_string().as_bytes(),
        )
    }

    /// Brings `app`'s table named in `create` (a CreateTable request) to that shape, with TTL
    /// on `ttl_attribute` when given (see the module docs). Errors carry the table's name.
    pub fn ensure_table(
        &self,
        app: &str,
        region: &str,
        create: &Json,
        ttl_attribute: Option<&str>,
    ) -> Result<Provisioned> {
        let name = create["TableName"].as_str().unwrap_or_default().to_string();
        let named = |e: DynamoError| match e {
            DynamoError::Validation(m) => DynamoError::Validation(format!("table `{name}`: {m}")),
            DynamoError::ResourceInUse(m) => DynamoError::ResourceInUse(format!("table `{name}`: {m}")),
            DynamoError::Internal(m) => DynamoError::Internal(format!("table `{name}`: {m}")),
            other => other,
        };
        let existing = match self.op(app, region, "DescribeTable", &json!({ "TableName": name })) {
            Ok(d) => d["Table"].clone(),
            Err(DynamoError::ResourceNotFound(_)) => {
                self.op(app, region, "CreateTable", create).map_err(named)?;
                if let Some(attr) = ttl_attribute {
                    self.op(
                        app,
                        region,
                        "UpdateTimeToLive",
                        &json!({ "TableName": name, "TimeToLiveSpecification": { "AttributeName": attr, "Enabled": true } }),
                    )
                    .map_err(named)?;
                }
                return Ok(Provisioned::Created);
            }
            Err(e) => return Err(named(e)),
        };
        let (want, have) = (
            keys(create, &create["KeySchema"]),
            keys(&existing, &existing["KeySchema"]),
        );
        if want != have {
            return Err(DynamoError::Validation(format!(
                "table `{name}` exists with the key schema {} but the manifest declares {}: a deploy never replaces a table (that would drop its items); delete the table (DeleteTable) or declare its key schema as it is",
                show(&have),
                show(&want)
            )));
        }
        let mut added = Vec::new();
        let present: Vec<String> = existing["GlobalSecondaryIndexes"]
            .as_array()
            .map(|ix| {
                ix.iter()
                    .filter_map(|i| i["IndexName"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for ix in create["GlobalSecondaryIndexes"].as_array().cloned().unwrap_or_default() {
            let ix_name = ix["IndexName"].as_str().unwrap_or_default().to_string();
            if present.contains(&ix_name) {
                continue;
            }
            let mut create_ix = json!({
                "IndexName": ix_name,
                "KeySchema": ix["KeySchema"],
                "Projection": ix["Projection"],
            });
            if !ix["ProvisionedThroughput"].is_null() {
                create_ix["ProvisionedThroughput"] = ix["ProvisionedThroughput"].clone();
            }
            self.op(
                app,
                region,
                "UpdateTable",
                &json!({
                    "TableName": name,
                    "AttributeDefinitions": create["AttributeDefinitions"],
                    "GlobalSecondaryIndexUpdates": [{ "Create": create_ix }],
                }),
            )
            .map_err(named)?;
            added.push(format!("index {ix_name}"));
        }
        let declared_stream = create["StreamSpecification"]["StreamViewType"].as_str();
        let has_stream = existing["StreamSpecification"]["StreamEnabled"].as_bool() == Some(true);
        if let (Some(view), false) = (declared_stream, has_stream) {
            self.op(
                app,
                region,
                "UpdateTable",
                &json!({ "TableName": name, "StreamSpecification": { "StreamEnabled": true, "StreamViewType": view } }),
            )
            .map_err(named)?;
            added.push("stream".into());
        }
        if let Some(attr) = ttl_attribute {
            let ttl = self
                .op(app, region, "DescribeTimeToLive", &json!({ "TableName": name }))
                .map_err(named)?;
            if ttl["TimeToLiveDescription"]["TimeToLiveStatus"] != "ENABLED" {
                self.op(
                    app,
                    region,
                    "UpdateTimeToLive",
                    &json!({ "TableName": name, "TimeToLiveSpecification": { "AttributeName": attr, "Enabled": true } }),
                )
                .map_err(named)?;
                added.push("ttl".into());
            }
        }
        Ok(if added.is_empty() {
            Provisioned::Unchanged
        } else {
            Provisioned::Updated(added)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(extra: Json) -> Json {
        let mut t = json!({
            "TableName": "users",
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        });
        for (k, v) in extra.as_object().unwrap() {
            t[k] = v.clone();
        }
        t
    }

    #[test]
    fn creates_adds_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let db = DynamoDb::open(&dir.path().join("aws.db")).unwrap();
        let r = "us-east-1";
        assert_eq!(
            db.ensure_table("app", r, &users(json!({})), None).unwrap(),
            Provisioned::Created
        );
        db.op(
            "app",
            r,
            "PutItem",
            &json!({"TableName": "users", "Item": {"id": {"S": "u1"}, "email": {"S": "a@x"}}}),
        )
        .unwrap();
        assert_eq!(
            db.ensure_table("app", r, &users(json!({})), None).unwrap(),
            Provisioned::Unchanged
        );
        let more = users(json!({
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}, {"AttributeName": "email", "AttributeType": "S"}],
            "GlobalSecondaryIndexes": [{"IndexName": "byEmail", "KeySchema": [{"AttributeName": "email", "KeyType": "HASH"}], "Projection": {"ProjectionType": "ALL"}}],
            "StreamSpecification": {"StreamEnabled": true, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        }));
        assert_eq!(
            db.ensure_table("app", r, &more, Some("expires")).unwrap(),
            Provisioned::Updated(vec!["index byEmail".into(), "stream".into(), "ttl".into()])
        );
        // The index was filled from the item already there.
        let q = db
            .op("app", r, "Query", &json!({"TableName": "users", "IndexName": "byEmail", "KeyConditionExpression": "email = :e", "ExpressionAttributeValues": {":e": {"S": "a@x"}}}))
            .unwrap();
        assert_eq!(q["Count"], 1);
        assert_eq!(
            db.ensure_table("app", r, &more, Some("expires")).unwrap(),
            Provisioned::Unchanged
        );
        let changed = users(
            json!({"KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}, {"AttributeName": "email", "KeyType": "RANGE"}], "AttributeDefinitions": more["AttributeDefinitions"]}),
        );
        let e = db.ensure_table("app", r, &changed, None).unwrap_err().to_string();
        assert!(
            e.contains("table `users` exists with the key schema id (HASH, S)"),
            "{e}"
        );
        // The item is still there.
        let got = db
            .op(
                "app",
                r,
                "GetItem",
                &json!({"TableName": "users", "Key": {"id": {"S": "u1"}}}),
            )
            .unwrap();
        assert_eq!(got["Item"]["email"]["S"], "a@x");
    }
}
