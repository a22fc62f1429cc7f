//! DynamoDB's errors as the SDKs read them: a JSON body with `__type` (the service's shape id
//! followed by `#` and the error code, which boto3 and the JS SDK turn into typed exceptions)
//! and `message`, with status 400 for every client error (DynamoDB answers refused signatures
//! with 400 too) and 500 for its own failures. The message texts are DynamoDB's own where the
//! case has one, so code that matches on them (and people searching for them) find what they
//! would on AWS.

use super::value::{item_to_json, Item};
use serde_json::{json, Value as Json};

const DYNAMODB: &str = "com.amazonaws.dynamodb.v20120810";
const CORAL_VALIDATE: &str = "com.amazon.coral.validate";
const CORAL_SERVICE: &str = "com.amazon.coral.service";

/// Why one write of a transaction was refused ([`DynamoError::TransactionCanceled`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CancellationReason {
    /// `None` for the writes that were fine, `ConditionalCheckFailed`, `ValidationError`.
    pub code: &'static str,
    pub message: Option<String>,
    /// The item as it was, when `ReturnValuesOnConditionCheckFailure` was `ALL_OLD`.
    pub item: Option<Item>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DynamoError {
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("{0}")]
    ResourceInUse(String),
    /// A `ConditionExpression` was false; `item` is the current item when the request asked
    /// for it (`ReturnValuesOnConditionCheckFailure: ALL_OLD`).
    #[error("The conditional request failed")]
    ConditionalCheckFailed { item: Option<Item> },
    #[error("Transaction cancelled, please refer cancellation reasons for specific reasons [{}]", .reasons.iter().map(|r| r.code).collect::<Vec<_>>().join(", "))]
    TransactionCanceled { reasons: Vec<CancellationReason> },
    #[error("{0}")]
    UnknownOperation(String),
    /// The request body is not the JSON the operation takes.
    #[error("{0}")]
    Serialization(String),
    /// Gust's own failure (the database); the detail goes to the log, not to the caller.
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = DynamoError> = std::result::Result<T, E>;

/// `ValidationException` with `message`.
pub fn validation(message: impl Into<String>) -> DynamoError {
    DynamoError::Validation(message.into())
}

impl DynamoError {
    /// The error code the SDKs match on (`ValidationException`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "ValidationException",
            Self::ResourceNotFound(_) => "ResourceNotFoundException",
            Self::ResourceInUse(_) => "ResourceInUseException",
            Self::ConditionalCheckFailed { .. } => "ConditionalCheckFailedException",
            Self::TransactionCanceled { .. } => "TransactionCanceledException",
            Self::UnknownOperation(_) => "UnknownOperationException",
            Self::Serialization(_) => "SerializationException",
            Self::Internal(_) => "InternalServerError",
        }
    }

    /// The `__type` DynamoDB sends: the code qualified by the shape's namespace.
    pub fn type_name(&self) -> String {
        let ns = match self {
            Self::Validation(_) => CORAL_VALIDATE,
            Self::UnknownOperation(_) | Self::Serialization(_) => CORAL_SERVICE,
            _ => DYNAMODB,
        };
        format!("{ns}#{}", self.code())
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::Internal(_) => 500,
            _ => 400,
        }
    }

    /// The JSON body of the error answer.
    pub fn body(&self) -> Json {
        let message = match self {
            Self::Internal(_) => "Internal server error".to_string(),
            e => e.to_string(),
        };
        let mut body = json!({ "__type": self.type_name(), "message": message });
        match self {
            Self::ConditionalCheckFailed { item: Some(item) } => {
                body["Item"] = item_to_json(item);
            }
            Self::TransactionCanceled { reasons } => {
                // DynamoDB spells this one `Message`.
                body["Message"] = body["message"].take();
                body.as_object_mut().expect("an object").remove("message");
                body["CancellationReasons"] = reasons
                    .iter()
                    .map(|r| {
                        let mut v = json!({ "Code": r.code });
                        if let Some(m) = &r.message {
                            v["Message"] = json!(m);
                        }
                        if let Some(item) = &r.item {
                            v["Item"] = item_to_json(item);
                        }
                        v
                    })
                    .collect();
            }
            _ => {}
        }
        body
    }
}

impl From<rusqlite::Error> for DynamoError {
    fn from(e: rusqlite::Error) -> Self {
        DynamoError::Internal(format!("DynamoDB storage: {e}"))
    }
}

impl From<super::number::NumberError> for DynamoError {
    fn from(e: super::number::NumberError) -> Self {
        DynamoError::Validation(e.to_string())
    }
}
