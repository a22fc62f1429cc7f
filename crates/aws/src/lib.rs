//! `gust-aws`: the semantics of the AWS service APIs Gust serves to functions and operators,
//! so Lambda code that uses the AWS SDK runs unmodified (issue #20). DynamoDB first
//! ([`dynamodb`]); S3, SQS, SNS and the rest follow as modules of their own.
//!
//! This crate owns what each operation means (validation, expressions, errors in AWS's words,
//! limits) and where its data lives (SQLite through rusqlite); it takes a parsed JSON request
//! and gives back a JSON answer or a typed error. It knows nothing of HTTP, signatures or
//! credentials: the gateway's admin face (`gust_gateway::admin::aws_api`) verifies SigV4 and
//! carries the wire protocol. It must not depend on the gateway, runtime or binary crates
//! (the gateway depends on it).

pub mod dynamodb;
