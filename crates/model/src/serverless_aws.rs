//! serverless.yml's AWS side: the CloudFormation `resources.Resources` Gust acts on, the
//! intrinsic functions that name them (`Ref`, `Fn::GetAtt`, `Fn::Join`, `Fn::Sub`, long and
//! `!Short` forms), and the IAM statements that grant functions the AWS service APIs
//! (`provider.iam.role.statements`, the older `provider.iamRoleStatements`, and the
//! `serverless-iam-roles-per-function` plugin's per-function `iamRoleStatements` with
//! `iamRoleStatementsInherit`).
//!
//! IAM statements are a security feature, as authorizers are: a statement Gust cannot read
//! refuses to start with its key, never becomes a silent grant. A `Condition` is the one part
//! accepted without being evaluated, in the direction that grants less (`iam.rs`), with a
//! warning.

use super::{str_key, Walker};
use crate::iam::{AwsStatement, Effect, ACCOUNT_ID};
use crate::{DynamoTableSpec, ManifestError};
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;

/// The resource type Gust creates.
pub(super) const TABLE_TYPE: &str = "AWS::DynamoDB::Table";

/// The `resources.Resources` of one serverless.yml, as the intrinsic functions see them.
#[derive(Default)]
pub(super) struct Cfn {
    /// DynamoDB tables by logical id: their table name.
    tables: BTreeMap<String, String>,
    /// Every other resource by logical id: its type.
    others: BTreeMap<String, String>,
    region: String,
    /// `AWS::StackName`: `<service>-<stage>`, as the Serverless Framework names the stack.
    stack: String,
}

impl Cfn {
    /// Reads `resources` (`Resources`, with `Outputs`, `Conditions` and the rest ignored); the
    /// table definitions, and the other resources' types for the warning.
    pub(super) fn read(
        w: &mut Walker<'_>,
        resources: Option<&Value>,
        region: &str,
        stack: String,
    ) -> Result<(Self, BTreeMap<String, DynamoTableSpec>), ManifestError> {
        let mut cfn = Self {
            region: region.to_string(),
            stack,
            ..Self::default()
        };
        let mut specs = BTreeMap::new();
        let Some(resources) = resources else {
            return Ok((cfn, specs));
        };
        let top = w.mapping(resources, "resources")?.into_owned();
        let mut defs = Vec::new();
        for (k, v) in &top {
            let key = str_key(k);
            if key != "Resources" {
                continue;
            }
            for (rk, rv) in w.mapping(v, "resources.Resources")?.iter() {
                let logical = str_key(rk);
                let path = format!("resources.Resources.{logical}");
                let body = w.mapping(rv, &path)?.into_owned();
                let kind = body
                    .get("Type")
                    .map(|t| w.string(t, &format!("{path}.Type")))
                    .transpose()?
                    .ok_or_else(|| w.err(format!("{path}.Type"), "is required"))?;
                if kind == TABLE_TYPE {
                    let props = body.get("Properties").cloned().unwrap_or(Value::Null);
                    let name = match props.get("TableName") {
                        Some(n) => w.string(n, &format!("{path}.Properties.TableName"))?,
                        // CloudFormation would generate one; Gust's is stable across deploys.
                        None => logical.clone(),
                    };
                    cfn.tables.insert(logical.clone(), name.clone());
                    defs.push((logical, path, name, props));
                } else {
                    w.unsupported(format!("{path} ({kind})"));
                    cfn.others.insert(logical, kind);
                }
            }
        }
        for (_, path, name, props) in defs {
            let spec = table_spec(w, &props, &format!("{path}.Properties"), name.clone())?;
            specs.insert(name, spec);
        }
        Ok((cfn, specs))
    }

    fn table_arn(&self, name: &str) -> String {
        format!("arn:aws:dynamodb:{}:{ACCOUNT_ID}:table/{name}", self.region)
    }

    fn pseudo(&self, name: &str) -> Option<String> {
        Some(match name {
            "AWS::Region" => self.region.clone(),
            "AWS::AccountId" => ACCOUNT_ID.into(),
            "AWS::Partition" => "aws".into(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            "AWS::StackName" => self.stack.clone(),
            _ => return None,
        })
    }

    /// `Ref: X`: a table's name, a pseudo parameter, or (other resources) the logical id.
    fn reference(&self, w: &Walker<'_>, x: &str, key: &str) -> Result<String, ManifestError> {
        if let Some(v) = self.pseudo(x) {
            return Ok(v);
        }
        if let Some(name) = self.tables.get(x) {
            return Ok(name.clone());
        }
        if self.others.contains_key(x) {
            return Ok(x.to_string());
        }
        Err(w.err(key, format!("`Ref: {x}` names no resource of resources.Resources")))
    }

    /// `Fn::GetAtt: [X, Attr]`.
    fn attribute(&self, w: &Walker<'_>, x: &str, attr: &str, key: &str) -> Result<String, ManifestError> {
        if let Some(name) = self.tables.get(x) {
            return match attr {
                "Arn" => Ok(self.table_arn(name)),
                // The label is the stream's creation time, known only once it exists; what
                // reads a StreamArn (IAM patterns, `stream` events) needs only the table.
                "StreamArn" => Ok(format!("{}/stream/*", self.table_arn(name))),
                other => Err(w.err(
                    key,
                    format!("`Fn::GetAtt: [{x}, {other}]`: a DynamoDB table has the attributes Arn and StreamArn"),
                )),
            };
        }
        if let Some(kind) = self.others.get(x) {
            // Something Gust does not create (yet): an ARN that matches nothing Gust serves.
            return Ok(format!("arn:gust:unsupported:::{kind}/{x}/{attr}"));
        }
        Err(w.err(
            key,
            format!("`Fn::GetAtt: [{x}, {attr}]` names no resource of resources.Resources"),
        ))
    }

    /// A string, or an intrinsic function giving one.
    pub(super) fn string(&self, w: &Walker<'_>, v: &Value, key: &str) -> Result<String, ManifestError> {
        let v = w.val(v, key)?;
        let (func, arg): (String, Value) = match &*v {
            Value::Tagged(t) => (t.tag.to_string().trim_start_matches('!').to_string(), t.value.clone()),
            Value::Mapping(m) if m.len() == 1 => {
                let (k, a) = m.iter().next().expect("one entry");
                (str_key(k).trim_start_matches("Fn::").to_string(), a.clone())
            }
            other => return w.string(other, key),
        };
        let seq = |a: &Value| a.as_sequence().cloned().unwrap_or_default();
        match func.as_str() {
            "Ref" => self.reference(w, &w.string(&arg, key)?, key),
            "GetAtt" => {
                let (x, attr) = match &arg {
                    Value::String(s) => s
                        .split_once('.')
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                        .ok_or_else(|| w.err(key, format!("`GetAtt {s}` must be `Resource.Attribute`")))?,
                    _ => match seq(&arg).as_slice() {
                        [x, a] => (w.string(x, key)?, w.string(a, key)?),
                        _ => return Err(w.err(key, "`Fn::GetAtt` takes [Resource, Attribute]")),
                    },
                };
                self.attribute(w, &x, &attr, key)
            }
            "Join" => match seq(&arg).as_slice() {
                [sep, parts] => {
                    let sep = w.string(sep, key)?;
                    let parts = seq(parts)
                        .iter()
                        .map(|p| self.string(w, p, key))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(parts.join(&sep))
                }
                _ => Err(w.err(key, "`Fn::Join` takes [separator, [values]]")),
            },
            "Sub" => {
                let (text, vars) = match &arg {
                    Value::String(s) => (s.clone(), Mapping::new()),
                    _ => match seq(&arg).as_slice() {
                        [t, Value::Mapping(m)] => (w.string(t, key)?, m.clone()),
                        _ => return Err(w.err(key, "`Fn::Sub` takes a string or [string, {variables}]")),
                    },
                };
                self.sub(w, &text, &vars, key)
            }
            other => Err(w.err(
                key,
                format!("the intrinsic function `{other}` is not supported here: Gust resolves Ref, Fn::GetAtt, Fn::Join and Fn::Sub"),
            )),
        }
    }

    fn sub(&self, w: &Walker<'_>, text: &str, vars: &Mapping, key: &str) -> Result<String, ManifestError> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(open) = rest.find("${") {
            out.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            if let Some(lit) = after.strip_prefix('!') {
                out.push_str("${");
                rest = lit;
                continue;
            }
            let close = after
                .find('}')
                .ok_or_else(|| w.err(key, format!("`Fn::Sub`: the closing `}}` is missing in `{text}`")))?;
            let name = after[..close].trim();
            let value = match vars.get(name) {
                Some(v) => self.string(w, v, key)?,
                None => match name.split_once('.') {
                    Some((x, attr)) if !name.starts_with("AWS::") => self.attribute(w, x, attr, key)?,
                    _ => self.reference(w, name, key)?,
                },
            };
            out.push_str(&value);
            rest = &after[close + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// A string, or a list of them (each may be an intrinsic function).
    fn strings(&self, w: &Walker<'_>, v: &Value, key: &str) -> Result<Vec<String>, ManifestError> {
        match &*w.val(v, key)? {
            Value::Sequence(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.string(w, item, &format!("{key}[{i}]")))
                .collect(),
            _ => Ok(vec![self.string(w, v, key)?]),
        }
    }

    /// An `environment` mapping whose values may be intrinsic functions (`Ref: UsersTable`).
    pub(super) fn environment(
        &self,
        w: &Walker<'_>,
        v: &Value,
        key: &str,
    ) -> Result<BTreeMap<String, String>, ManifestError> {
        let mut env = BTreeMap::new();
        for (k, v) in w.mapping(v, key)?.iter() {
            let name = str_key(k);
            let vkey = format!("{key}.{name}");
            let value = match &*w.val(v, &vkey)? {
                Value::Mapping(_) | Value::Tagged(_) => self.string(w, v, &vkey)?,
                other => super::scalar_string(other)
                    .ok_or_else(|| w.err(&vkey, "must be a string, number, boolean or Ref/Fn::GetAtt"))?,
            };
            env.insert(name, value);
        }
        Ok(env)
    }

    /// IAM statements (a list of `{Effect, Action | NotAction, Resource | NotResource, Sid?,
    /// Condition?}`).
    pub(super) fn statements(
        &self,
        w: &mut Walker<'_>,
        v: &Value,
        key: &str,
    ) -> Result<Vec<AwsStatement>, ManifestError> {
        let list = w.val(v, key)?.into_owned();
        let Some(items) = list.as_sequence() else {
            return Err(w.err(key, "must be a list of statements"));
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let skey = format!("{key}[{i}]");
            let body = w.mapping(item, &skey)?.into_owned();
            let (mut effect, mut actions, mut resources, mut conditional) = (None, None, None, false);
            for (k, v) in &body {
                let field = str_key(k);
                let fkey = format!("{skey}.{field}");
                match field.as_str() {
                    "Effect" => {
                        effect = Some(match w.string(v, &fkey)?.as_str() {
                            "Allow" => Effect::Allow,
                            "Deny" => Effect::Deny,
                            other => return Err(w.err(fkey, format!("`{other}` is neither Allow nor Deny"))),
                        })
                    }
                    "Action" | "NotAction" => {
                        let list = self.strings(w, v, &fkey)?;
                        if let Some(bad) = list.iter().find(|a| *a != "*" && !a.contains(':')) {
                            return Err(w.err(fkey, format!("action `{bad}` is not of the form service:Action")));
                        }
                        if actions.replace((list, field == "NotAction")).is_some() {
                            return Err(w.err(fkey, "a statement has one of Action and NotAction"));
                        }
                    }
                    "Resource" | "NotResource" => {
                        let list = self.strings(w, v, &fkey)?;
                        if resources.replace((list, field == "NotResource")).is_some() {
                            return Err(w.err(fkey, "a statement has one of Resource and NotResource"));
                        }
                    }
                    "Condition" => {
                        conditional = true;
                        w.unsupported(format!("{fkey} (not evaluated: an Allow with a Condition grants nothing, a Deny with one always denies)"));
                    }
                    "Sid" => {}
                    other => {
                        return Err(w.err(
                            fkey,
                            format!("`{other}` is not a key of an IAM statement (Effect, Action, NotAction, Resource, NotResource, Condition, Sid)"),
                        ))
                    }
                }
            }
            let effect = effect.ok_or_else(|| w.err(format!("{skey}.Effect"), "is required (Allow or Deny)"))?;
            let (actions, not_actions) = actions.ok_or_else(|| w.err(format!("{skey}.Action"), "is required"))?;
            let (resources, not_resources) =
                resources.ok_or_else(|| w.err(format!("{skey}.Resource"), "is required"))?;
            out.push(AwsStatement {
                effect,
                actions,
                not_actions,
                resources,
                not_resources,
                conditional,
            });
        }
        Ok(out)
    }
}

/// A CloudFormation `AWS::DynamoDB::Table`'s properties as a DynamoDB CreateTable request.
fn table_spec(w: &mut Walker<'_>, props: &Value, key: &str, name: String) -> Result<DynamoTableSpec, ManifestError> {
    let mut create = serde_json::Map::new();
    create.insert("TableName".into(), name.clone().into());
    let mut ttl = None;
    let Value::Mapping(m) = props else {
        return Err(w.err(key, "must be a mapping with KeySchema and AttributeDefinitions"));
    };
    for (k, v) in m {
        let field = str_key(k);
        let fkey = format!("{key}.{field}");
        match field.as_str() {
            "TableName" => {}
            "KeySchema"
            | "AttributeDefinitions"
            | "GlobalSecondaryIndexes"
            | "LocalSecondaryIndexes"
            | "BillingMode"
            | "ProvisionedThroughput" => {
                create.insert(field, json(w, v, &fkey)?);
            }
            "StreamSpecification" => {
                let view = v
                    .get("StreamViewType")
                    .map(|t| w.string(t, &format!("{fkey}.StreamViewType")))
                    .transpose()?
                    .ok_or_else(|| w.err(format!("{fkey}.StreamViewType"), "is required"))?;
                create.insert(
                    field,
                    serde_json::json!({ "StreamEnabled": true, "StreamViewType": view }),
                );
            }
            "TimeToLiveSpecification" => {
                let on = v
                    .get("Enabled")
                    .map(|e| w.boolean(e, &format!("{fkey}.Enabled")))
                    .transpose()?
                    .unwrap_or(false);
                if on {
                    let attr = v
                        .get("AttributeName")
                        .map(|a| w.string(a, &format!("{fkey}.AttributeName")))
                        .transpose()?
                        .ok_or_else(|| w.err(format!("{fkey}.AttributeName"), "is required when Enabled"))?;
                    ttl = Some(attr);
                }
            }
            _ => w.unsupported(fkey),
        }
    }
    // Nothing is throttled here: without a capacity mode, on demand (CloudFormation would
    // refuse a PROVISIONED table without its throughput).
    if !create.contains_key("BillingMode") && !create.contains_key("ProvisionedThroughput") {
        create.insert("BillingMode".into(), "PAY_PER_REQUEST".into());
    }
    for required in ["KeySchema", "AttributeDefinitions"] {
        if !create.contains_key(required) {
            return Err(w.err(format!("{key}.{required}"), "is required"));
        }
    }
    Ok(DynamoTableSpec {
        name,
        create: serde_json::Value::Object(create),
        ttl_attribute: ttl,
    })
}

/// A YAML value (variables resolved) as JSON, for the CreateTable request.
fn json(w: &Walker<'_>, v: &Value, key: &str) -> Result<serde_json::Value, ManifestError> {
    let v = w.deep(v, key)?;
    serde_json::to_value(&v).map_err(|e| w.err(key, format!("cannot be read: {e}")))
}

#[cfg(test)]
mod tests {
    use crate::iam::{decide, Decision};
    use crate::{FunctionName, LoadOptions, Loaded, ManifestError};
    use std::path::Path;

    fn load(text: &str) -> Result<Loaded, ManifestError> {
        super::super::parse(
            Path::new("/svc/serverless.yml"),
            text,
            Path::new("/svc"),
            &LoadOptions::from_env_map([("UNUSED", "")]),
        )
    }

    const USERS_SERVICE: &str = r#"
service: users
provider:
  name: aws
  runtime: nodejs20.x
  region: eu-west-1
  environment:
    USERS_TABLE: { Ref: UsersTable }
    USERS_ARN: !GetAtt UsersTable.Arn
  iam:
    role:
      statements:
        - Effect: Allow
          Action: [dynamodb:GetItem, dynamodb:PutItem, dynamodb:Query]
          Resource:
            - { "Fn::GetAtt": [UsersTable, Arn] }
            - !Join ['/', [!GetAtt UsersTable.Arn, index, '*']]
        - Effect: Deny
          Action: dynamodb:DeleteItem
          Resource: "arn:aws:dynamodb:${aws:region}:${aws:accountId}:table/${self:service}-*"
functions:
  api:
    handler: h.handler
  audit:
    handler: h.audit
    iamRoleStatements:
      - Effect: Allow
        Action: dynamodb:Scan
        Resource: !Sub "arn:aws:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${UsersTable}"
  both:
    handler: h.both
    iamRoleStatementsInherit: true
    iamRoleStatements:
      - Effect: Allow
        Action: "dynamodb:*"
        Resource: "*"
        Condition: { StringEquals: { "aws:RequestedRegion": eu-west-1 } }
resources:
  Resources:
    UsersTable:
      Type: AWS::DynamoDB::Table
      Properties:
        TableName: ${self:service}-${sls:stage}
        BillingMode: PAY_PER_REQUEST
        AttributeDefinitions:
          - { AttributeName: id, AttributeType: S }
          - { AttributeName: email, AttributeType: S }
        KeySchema:
          - { AttributeName: id, KeyType: HASH }
        GlobalSecondaryIndexes:
          - IndexName: byEmail
            KeySchema: [{ AttributeName: email, KeyType: HASH }]
            Projection: { ProjectionType: ALL }
        StreamSpecification: { StreamViewType: NEW_AND_OLD_IMAGES }
        TimeToLiveSpecification: { AttributeName: expires, Enabled: true }
    Topic:
      Type: AWS::SNS::Topic
"#;

    const TABLE: &str = "arn:aws:dynamodb:eu-west-1:000000000000:table/users-dev";

    #[test]
    fn resources_refs_and_statements() {
        let l = load(USERS_SERVICE).unwrap();
        let f = |n: &str| &l.app.functions[&FunctionName::new(n).unwrap()];
        let api = f("api");
        assert_eq!(api.environment["USERS_TABLE"], "users-dev");
        assert_eq!(api.environment["USERS_ARN"], TABLE);
        let s = &api.aws;
        assert_eq!(decide(s, "dynamodb:PutItem", TABLE), Decision::Allowed);
        assert_eq!(
            decide(s, "dynamodb:Query", &format!("{TABLE}/index/byEmail")),
            Decision::Allowed
        );
        assert_eq!(decide(s, "dynamodb:Scan", TABLE), Decision::ImplicitDeny);
        assert_eq!(decide(s, "dynamodb:DeleteItem", TABLE), Decision::ExplicitDeny);
        // Its own statements replace the provider's...
        let audit = &f("audit").aws;
        assert_eq!(decide(audit, "dynamodb:Scan", TABLE), Decision::Allowed);
        assert_eq!(decide(audit, "dynamodb:GetItem", TABLE), Decision::ImplicitDeny);
        // ...unless inherited; a conditional Allow grants nothing.
        let both = &f("both").aws;
        assert_eq!(decide(both, "dynamodb:GetItem", TABLE), Decision::Allowed);
        assert_eq!(decide(both, "dynamodb:Scan", TABLE), Decision::ImplicitDeny);
        let t = &l.app.dynamodb_tables["users-dev"];
        assert_eq!(t.create["TableName"], "users-dev");
        assert_eq!(t.create["KeySchema"][0]["AttributeName"], "id");
        assert_eq!(t.create["GlobalSecondaryIndexes"][0]["IndexName"], "byEmail");
        assert_eq!(t.create["StreamSpecification"]["StreamViewType"], "NEW_AND_OLD_IMAGES");
        assert_eq!(t.ttl_attribute.as_deref(), Some("expires"));
        assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
        let w = &l.warnings[0];
        assert!(w.contains("resources.Resources.Topic (AWS::SNS::Topic)"), "{w}");
        assert!(w.contains("functions.both.iamRoleStatements[0].Condition"), "{w}");
    }

    #[test]
    fn bad_statements_and_references_name_the_key() {
        let cases = [
            (
                "Effect: Allow\n        Resource: '*'",
                "functions.f.iamRoleStatements[0].Action",
                "is required",
            ),
            (
                "Effect: Maybe\n        Action: '*'\n        Resource: '*'",
                "functions.f.iamRoleStatements[0].Effect",
                "neither Allow nor Deny",
            ),
            (
                "Effect: Allow\n        Action: GetItem\n        Resource: '*'",
                "functions.f.iamRoleStatements[0].Action",
                "service:Action",
            ),
            (
                "Effect: Allow\n        Principal: '*'\n        Action: '*'\n        Resource: '*'",
                "functions.f.iamRoleStatements[0].Principal",
                "not a key",
            ),
            (
                "Effect: Allow\n        Action: '*'\n        Resource: !GetAtt Missing.Arn",
                "functions.f.iamRoleStatements[0].Resource",
                "names no resource",
            ),
            (
                "Effect: Allow\n        Action: '*'\n        Resource: !ImportValue x",
                "functions.f.iamRoleStatements[0].Resource",
                "ImportValue",
            ),
        ];
        for (statement, key, message) in cases {
            let text = format!(
                "service: s\nprovider:\n  name: aws\n  runtime: nodejs20.x\nfunctions:\n  f:\n    handler: h.h\n    iamRoleStatements:\n      - {statement}\n"
            );
            let e = load(&text).unwrap_err();
            assert_eq!(e.key, key, "{statement}: {e}");
            assert!(e.message.contains(message), "{statement}: {e}");
        }
    }
}
