//! The typed contract of Gust's admin address: the request and response bodies of the
//! operator API and of the Lambda Invoke API, the table of their endpoints, and the OpenAPI
//! document generated from both (`docs/openapi.json`, `docs/control-plane.md`).
//!
//! The server (`gust-gateway`) builds its answers from these types and routes requests through
//! [`Endpoint::resolve`]; the CLI (`gust`) reads answers into the same types. A field the
//! server stops sending is then an error in the CLI naming the endpoint, not a silent default,
//! and an endpoint cannot be served without being in [`Endpoint::ALL`], which is what the
//! document is generated from. The snapshot test (`tests/openapi.rs`) fails when the checked-in
//! document differs from what the types say; `GUST_BLESS=1 cargo test -p gust-api` rewrites it.
//!
//! What this crate must not depend on: the rest of Gust. It holds plain serde structs (and
//! their schemas), so that the console and other clients can build on it without the server.
//!
//! Conventions kept from the JSON the server answered with before the types existed: field
//! names are `snake_case`; times are RFC 3339 strings (`*_at`, `now`, `next`) or epoch numbers
//! named with their unit (`start_ms`, `start_us`); a field that has no value is sent as `null`
//! rather than left out. A nullable field is still required when reading (see [`nullable`]).

pub mod console;
pub mod deployments;
mod endpoints;
pub mod error;
pub mod events;
pub mod functions;
pub mod keys;
pub mod lambda;
mod openapi;
pub mod schedules;
pub mod secrets;
pub mod telemetry;

pub use console::{
    Attention, BacklogPoint, BacklogSeries, ConsoleCode, FunctionDetail, FunctionStats, Protection, Series,
    SeriesPoint, StatsReport, Status, Trigger,
};
pub use deployments::{DeployedVersion, Deployment, DeploymentList, GeneratedApiKey};
pub use endpoints::{Endpoint, Face, Miss, Route};
pub use error::{ErrorBody, ErrorDetail};
pub use events::{
    DeadLetter, DeadLetterEvent, DeadLetterList, Published, PublishedEvent, Purged, Redriven, Subscription,
    SubscriptionList, SubscriptionSource,
};
pub use functions::{Function, FunctionList, Health, Instances};
pub use keys::{AccessKey, AccessKeyList, ApiKey, ApiKeyList, CreateApiKey, NewAccessKey, NewApiKey};
pub use lambda::{
    AccountLimit, AccountSettings, AccountUsage, EphemeralStorage, FunctionCodeLocation, FunctionConfiguration,
    FunctionEnvironment, FunctionError, LambdaAuthError, LambdaError, LambdaFunction, LambdaFunctionList,
    TracingConfig,
};
pub use openapi::{document, openapi};
pub use schedules::{Schedule, ScheduleList, ScheduleRun};
pub use secrets::{MasterKeyRotated, Secret, SecretList, SecretSet};
pub use telemetry::{FunctionUsage, Invocation, InvocationList, LogLine, LogLines, Span, Trace, UsageReport};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a `DELETE` of a named thing (a secret, an API key, an access key) answers: the name
/// or id that was removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Removed {
    pub removed: String,
}

/// Reads a field that may be `null` but must be present: serde would read a missing
/// `Option` field as `None`, which is the silent default this contract exists to avoid.
/// Used as `#[serde(deserialize_with = "crate::nullable")]` (a field with `deserialize_with`
/// and no `default` is an error when missing).
pub fn nullable<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nullable_field_may_be_null_but_not_missing() {
        let ok: telemetry::LogLine =
            serde_json::from_str(r#"{"id":1,"ts_ms":2,"function":"f","request_id":null,"stream":"stdout","line":"x"}"#)
                .unwrap();
        assert_eq!(ok.request_id, None);
        let missing = serde_json::from_str::<telemetry::LogLine>(
            r#"{"id":1,"ts_ms":2,"function":"f","stream":"stdout","line":"x"}"#,
        )
        .unwrap_err();
        assert!(missing.to_string().contains("missing field `request_id`"), "{missing}");
    }
}
