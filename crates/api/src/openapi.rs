//! The OpenAPI 3.1 document of the admin address's operator, Lambda and public endpoints,
//! generated from the [`Endpoint`] table and the body types' schemas (`utoipa` derives them
//! from the structs and their `///` docs). Checked in as `docs/openapi.json`; the snapshot test
//! in `tests/openapi.rs` fails when the two differ.
//!
//! [`contract`] matches on every endpoint: a new one does not compile until it says its
//! parameters, body, answers and errors here. Error responses list the stable codes each
//! endpoint can answer with, grouped by status, besides the ones every endpoint of its face
//! shares (credentials, `Host`, `Origin`).

use crate::{endpoints::Face, Endpoint};
use std::collections::BTreeMap;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::OneOfBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    Components, Content, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref, RefOr, Required, ResponseBuilder, Schema,
    Tag,
};
use utoipa::{PartialSchema, ToSchema};

const OPERATOR_SCHEME: &str = "operatorToken";
const SIGV4_SCHEME: &str = "sigv4";

type Schemas = BTreeMap<String, RefOr<Schema>>;
/// A body's schema: registers the named schemas it needs and returns a reference or inline one.
type SchemaOf = fn(&mut Schemas) -> RefOr<Schema>;

/// A named schema from a `ToSchema` type, with the schemas it refers to.
fn named<T: ToSchema>(schemas: &mut Schemas) -> RefOr<Schema> {
    let mut deps = Vec::new();
    T::schemas(&mut deps);
    schemas.extend(deps);
    schemas.insert(T::name().into_owned(), T::schema());
    Ref::from_schema_name(T::name()).into()
}

fn inline<T: PartialSchema>(_: &mut Schemas) -> RefOr<Schema> {
    T::schema()
}

/// A request or response body.
#[derive(Clone, Copy)]
enum Body {
    Json(SchemaOf),
    /// Any JSON (a function's own event or answer).
    AnyJson,
    /// Raw bytes.
    Bytes,
    /// Prometheus' text exposition format.
    Prometheus,
    /// Server-sent events.
    EventStream,
    None,
}

struct Param {
    name: &'static str,
    place: ParameterIn,
    schema: SchemaOf,
    description: &'static str,
}

fn path(name: &'static str, description: &'static str) -> Param {
    Param {
        name,
        place: ParameterIn::Path,
        schema: inline::<String>,
        description,
    }
}

/// `?seq=1,2` of the dead-letter actions.
fn seq_list() -> Param {
    query(
        "seq",
        inline::<String>,
        "Only these, comma-separated (`1,2`); default: all.",
    )
}

fn query(name: &'static str, schema: SchemaOf, description: &'static str) -> Param {
    Param {
        name,
        place: ParameterIn::Query,
        schema,
        description,
    }
}

fn header(name: &'static str, description: &'static str) -> Param {
    Param {
        name,
        place: ParameterIn::Header,
        schema: inline::<String>,
        description,
    }
}

struct Answer {
    status: u16,
    description: &'static str,
    body: Body,
    headers: Vec<(&'static str, &'static str)>,
}

fn answer(status: u16, description: &'static str, body: Body) -> Answer {
    Answer {
        status,
        description,
        body,
        headers: vec![],
    }
}

/// What one endpoint takes and answers.
struct Contract {
    tag: &'static str,
    summary: &'static str,
    description: &'static str,
    params: Vec<Param>,
    body: Body,
    body_description: &'static str,
    answers: Vec<Answer>,
    /// `(status, code, when)` besides the face's own.
    errors: Vec<(u16, &'static str, &'static str)>,
}

impl Contract {
    fn new(tag: &'static str, summary: &'static str, ok: Answer) -> Self {
        Self {
            tag,
            summary,
            description: "",
            params: vec![],
            body: Body::None,
            body_description: "",
            answers: vec![ok],
            errors: vec![],
        }
    }

    fn describe(mut self, description: &'static str) -> Self {
        self.description = description;
        self
    }

    fn param(mut self, p: Param) -> Self {
        self.params.push(p);
        self
    }

    fn body(mut self, body: Body, description: &'static str) -> Self {
        self.body = body;
        self.body_description = description;
        self
    }

    fn also(mut self, a: Answer) -> Self {
        self.answers.push(a);
        self
    }

    fn error(mut self, status: u16, code: &'static str, when: &'static str) -> Self {
        self.errors.push((status, code, when));
        self
    }

    fn storage_error(self) -> Self {
        self.error(
            500,
            "StorageError",
            "the store behind the endpoint failed (see the Gust log)",
        )
    }

    fn too_large(self) -> Self {
        self.error(413, "PayloadTooLarge", "the body is over the endpoint's limit")
            .error(408, "RequestTimeout", "the body did not arrive in time")
    }
}

fn ok<T: ToSchema>(status: u16, description: &'static str) -> Answer {
    answer(status, description, Body::Json(named::<T>))
}

/// The contract of every endpoint.
fn contract(e: Endpoint) -> Contract {
    use crate::*;
    match e {
        Endpoint::ListFunctions => Contract::new(
            "functions",
            "List the deployed functions",
            ok::<FunctionList>(200, "Every function with its instance pool now."),
        ),
        Endpoint::GetFunction => Contract::new(
            "functions",
            "Describe one function",
            ok::<FunctionDetail>(200, "Its configuration, instances, triggers and grants."),
        )
        .param(path("name", "The function's name."))
        .error(404, "FunctionNotFound", "no function has this name"),
        Endpoint::GetStatus => Contract::new(
            "console",
            "The platform's status",
            ok::<Status>(200, "The app and its version, the sandbox's protections and what needs attention."),
        ),
        Endpoint::CreateConsoleCode => Contract::new(
            "console",
            "A one-time login code for the web console",
            ok::<ConsoleCode>(201, "Open `path` on the admin address within `expires_in_s` seconds; it works once."),
        )
        .describe("`gust console` prints the link. Opening it sets the console's session cookie (`docs/console.md`)."),
        Endpoint::ListAccessKeys => Contract::new(
            "access keys",
            "List the Lambda API's access keys",
            ok::<AccessKeyList>(200, "Ids and creation times, never secrets."),
        )
        .error(404, "AccessKeysDisabled", "this Gust has no access key store")
        .storage_error(),
        Endpoint::CreateAccessKey => Contract::new(
            "access keys",
            "Create an access key for SigV4",
            ok::<NewAccessKey>(201, "The key; its secret is in this answer only."),
        )
        .error(404, "AccessKeysDisabled", "this Gust has no access key store")
        .storage_error(),
        Endpoint::RemoveAccessKey => Contract::new(
            "access keys",
            "Remove an access key",
            ok::<Removed>(200, "Removed: requests signed with it are refused from now on."),
        )
        .param(path("id", "The access key id (`GKIA...`)."))
        .error(404, "AccessKeyNotFound", "no access key with this id")
        .error(404, "AccessKeysDisabled", "this Gust has no access key store")
        .storage_error(),
        Endpoint::ListApiKeys => Contract::new(
            "api keys",
            "List the gateway's API keys",
            ok::<ApiKeyList>(200, "Names, ids and limits; keys are stored hashed."),
        )
        .error(404, "ApiKeysDisabled", "API keys are not enabled on this Gust")
        .storage_error(),
        Endpoint::CreateApiKey => Contract::new(
            "api keys",
            "Create a gateway API key",
            ok::<NewApiKey>(201, "The key, shown this once."),
        )
        .body(
            Body::Json(named::<CreateApiKey>),
            "The key's name and limits (16 KiB at most).",
        )
        .error(
            400,
            "InvalidParameter",
            "not the expected body, a bad name, or a rate that is not positive",
        )
        .error(404, "ApiKeysDisabled", "API keys are not enabled on this Gust")
        .error(409, "ApiKeyExists", "a key with this name exists")
        .too_large()
        .storage_error(),
        Endpoint::RemoveApiKey => Contract::new(
            "api keys",
            "Remove a gateway API key",
            ok::<Removed>(200, "Removed: the gateway refuses it from now on."),
        )
        .param(path("name", "The key's name."))
        .error(404, "ApiKeyNotFound", "no key with this name")
        .error(404, "ApiKeysDisabled", "API keys are not enabled on this Gust")
        .storage_error(),
        Endpoint::ListSecrets => Contract::new(
            "secrets",
            "List secrets",
            ok::<SecretList>(200, "Names, versions and grants, never values."),
        )
        .error(400, "SecretError", "the secret store failed")
        .error(404, "SecretsDisabled", "secrets are not enabled on this Gust"),
        Endpoint::SetSecret => Contract::new(
            "secrets",
            "Set or replace a secret",
            ok::<SecretSet>(200, "The new version; functions granted it were restarted with it."),
        )
        .describe("The body is the value, as bytes (64 KiB at most). It never comes back through this API.")
        .param(path("name", "The secret's name."))
        .body(Body::Bytes, "The secret's value.")
        .error(400, "SecretError", "a bad name or value, or the secret store failed")
        .error(404, "SecretsDisabled", "secrets are not enabled on this Gust")
        .too_large(),
        Endpoint::RemoveSecret => Contract::new(
            "secrets",
            "Remove a secret",
            ok::<Removed>(200, "Removed; functions granted it were restarted without it."),
        )
        .param(path("name", "The secret's name."))
        .error(400, "SecretError", "the secret store failed")
        .error(404, "SecretNotFound", "no secret with this name")
        .error(404, "SecretsDisabled", "secrets are not enabled on this Gust"),
        Endpoint::RotateMasterKey => Contract::new(
            "secrets",
            "Re-wrap every secret under a new master key",
            ok::<MasterKeyRotated>(200, "The new master key's id; values were not re-encrypted."),
        )
        .error(
            400,
            "SecretError",
            "the master key comes from GUST_MASTER_KEY, or the store failed",
        )
        .error(404, "SecretsDisabled", "secrets are not enabled on this Gust"),
        Endpoint::ListInvocations => Contract::new(
            "telemetry",
            "List recent invocations",
            ok::<InvocationList>(200, "The newest first."),
        )
        .param(query("function", inline::<String>, "Only this function's."))
        .param(query(
            "outcome",
            inline::<String>,
            "Only this outcome (`success`, `error`, `timeout`, `crash`, `out_of_memory`, `init_error`, `too_large`, `platform_error`).",
        ))
        .param(query(
            "trigger",
            inline::<String>,
            "Only this trigger (`http`, `event`, `schedule`, `direct`, `async`, `authorizer`).",
        ))
        .param(query("cold", inline::<bool>, "Only cold (`true`) or warm (`false`) starts."))
        .param(query("since_ms", inline::<i64>, "Only those accepted at or after this epoch millisecond."))
        .param(query("until_ms", inline::<i64>, "Only those accepted before this epoch millisecond."))
        .param(query("limit", inline::<i64>, "How many (default 50, 1 to 10000)."))
        .error(400, "InvalidParameter", "a parameter that is not a number, a boolean or a known value")
        .error(404, "TelemetryDisabled", "telemetry is not kept on this Gust")
        .storage_error(),
        Endpoint::ListLogs => Contract::new(
            "telemetry",
            "Read function output",
            ok::<LogLines>(200, "Oldest first; page on with `after` set to the last line's `id`."),
        )
        .param(query("function", inline::<String>, "Only this function's lines."))
        .param(query(
            "since_ms",
            inline::<i64>,
            "Only lines at or after this epoch millisecond.",
        ))
        .param(query(
            "request",
            inline::<String>,
            "Only this invocation's lines (its request id).",
        ))
        .param(query(
            "trace",
            inline::<String>,
            "Only lines of invocations in this trace.",
        ))
        .param(query("after", inline::<i64>, "Only lines with an `id` above this."))
        .param(query("limit", inline::<i64>, "How many (default 1000, 1 to 10000)."))
        .error(400, "InvalidParameter", "a number parameter that is not a number")
        .error(404, "TelemetryDisabled", "telemetry is not kept on this Gust")
        .storage_error(),
        Endpoint::StreamLogs => Contract::new(
            "telemetry",
            "Follow function output",
            answer(
                200,
                "Server-sent events: one `data:` line per log line (a `LogLine` as JSON, its `id` as the event id), from now on; a comment every 15 s keeps the connection open.",
                Body::EventStream,
            ),
        )
        .param(query("function", inline::<String>, "Only this function's lines."))
        .param(header("Last-Event-ID", "Resume after this line id (sent by `EventSource` on a reconnect)."))
        .error(404, "TelemetryDisabled", "telemetry is not kept on this Gust")
        .error(503, "TooManyStreams", "too many log streams are open (at most 32)"),
        Endpoint::GetSeries => Contract::new(
            "telemetry",
            "Time series of invocations",
            ok::<Series>(200, "One point per step in [since_ms, until_ms), zero-filled, oldest first."),
        )
        .describe("From per-minute rollups kept beside the invocation records (14 days); no raw record is read.")
        .param(query("function", inline::<String>, "Only this function (default: every function summed)."))
        .param(query("since_ms", inline::<i64>, "Start, epoch milliseconds (default: an hour ago)."))
        .param(query("until_ms", inline::<i64>, "End, epoch milliseconds (default: now)."))
        .param(query("step_s", inline::<i64>, "Step in seconds, a multiple of 60 (default 60); at most 1500 points."))
        .error(400, "InvalidParameter", "a parameter that is not a number, a step that is not a multiple of 60, or too many points")
        .error(404, "TelemetryDisabled", "telemetry is not kept on this Gust")
        .storage_error(),
        Endpoint::GetSubscriptionSeries => Contract::new(
            "events",
            "A subscription's backlog over time",
            ok::<BacklogSeries>(200, "One point per step in [since_ms, until_ms), oldest first; `null` where nothing was sampled."),
        )
        .describe("Gust samples every subscription's backlog, oldest record's age and dead letters once a minute; a step keeps the largest backlog and age sampled in it. Kept 14 days.")
        .param(path("name", "The subscription's name."))
        .param(query("since_ms", inline::<i64>, "Start, epoch milliseconds (default: an hour ago)."))
        .param(query("until_ms", inline::<i64>, "End, epoch milliseconds (default: now)."))
        .param(query("step_s", inline::<i64>, "Step in seconds, a multiple of 60 (default 60); at most 1500 points."))
        .error(400, "InvalidParameter", "a parameter that is not a number, a step that is not a multiple of 60, or too many points")
        .error(404, "SubscriptionNotFound", "no subscription has this name")
        .error(404, "TelemetryDisabled", "telemetry is not kept on this Gust")
        .storage_error(),
        Endpoint::GetStats => Contract::new(
            "telemetry",
            "Totals per function",
            ok::<StatsReport>(200, "Per function with invocations since `since_ms`, by name."),
        )
        .describe("From the per-minute rollups (minute resolution).")
        .param(query("since_ms", inline::<i64>, "Start, epoch milliseconds (default: an hour ago)."))
        .error(400, "InvalidParameter", "`since_ms` is not a number")
        .error(404, "TelemetryDisabled", "telemetry is not kept on this Gust")
        .storage_error(),
        Endpoint::GetTrace => Contract::new(
            "telemetry",
            "Read a trace's spans",
            ok::<Trace>(200, "Every span recorded for the trace."),
        )
        .param(path("trace_id", "32 hex digits."))
        .error(404, "TraceNotFound", "no spans were recorded for this trace")
        .error(404, "TelemetryDisabled", "telemetry is not kept on this Gust")
        .storage_error(),
        Endpoint::GetUsage => Contract::new(
            "telemetry",
            "Usage per function, for the bill",
            ok::<UsageReport>(
                200,
                "Requests, billed MB-milliseconds, cold starts and errors per function.",
            ),
        )
        .param(query(
            "since_ms",
            inline::<i64>,
            "From this epoch millisecond (default 0: all kept).",
        ))
        .error(400, "InvalidParameter", "`since_ms` is not a number")
        .error(404, "TelemetryDisabled", "telemetry is not kept on this Gust")
        .storage_error(),
        Endpoint::ListSchedules => Contract::new(
            "schedules",
            "List schedules with their next fire times",
            ok::<ScheduleList>(200, "Every schedule of the manifest."),
        )
        .error(404, "SchedulesDisabled", "schedules are not enabled on this Gust"),
        Endpoint::RunSchedule => Contract::new(
            "schedules",
            "Run a schedule now, outside its ticks",
            ok::<ScheduleRun>(202, "The run is queued (with the events machinery's retries)."),
        )
        .param(path(
            "name",
            "The schedule's name, or the name of a function with exactly one schedule.",
        ))
        .error(
            404,
            "ScheduleNotFound",
            "no schedule with this name, and no function with a schedule",
        )
        .error(
            409,
            "ScheduleAmbiguous",
            "a function name, and the function has more than one schedule (the message lists them)",
        )
        .error(404, "SchedulesDisabled", "schedules are not enabled on this Gust"),
        Endpoint::Redeploy => Contract::new(
            "deployments",
            "Redeploy the running app from its directory",
            ok::<Deployment>(
                200,
                "The new version is serving (or, when nothing changed, the running one still is).",
            ),
        )
        .error(
            422,
            "DeployRefused",
            "the new version does not validate or a new or changed function does not start; the message says why, and the running version keeps serving",
        )
        .error(404, "DeploymentsDisabled", "this Gust does not redeploy")
        .error(503, "ShuttingDown", "Gust is shutting down"),
        Endpoint::ListDeployments => Contract::new(
            "deployments",
            "List the running version and the versions kept for rollback",
            ok::<DeploymentList>(200, "Newest first."),
        )
        .error(404, "DeploymentsDisabled", "this Gust does not redeploy"),
        Endpoint::Rollback => Contract::new(
            "deployments",
            "Switch back to a kept version",
            ok::<Deployment>(200, "The version is serving again."),
        )
        .param(query(
            "to",
            inline::<u64>,
            "The version to go back to (default: the one before the running one).",
        ))
        .error(400, "InvalidParameter", "`to` is not a version number")
        .error(404, "DeploymentNotFound", "the version is not kept, or is the one serving (the message lists the kept ones)")
        .error(
            422,
            "DeployRefused",
            "the version's functions did not start; the running version keeps serving",
        )
        .error(404, "DeploymentsDisabled", "this Gust does not redeploy")
        .error(503, "ShuttingDown", "Gust is shutting down"),
        Endpoint::Publish => Contract::new(
            "events",
            "Publish events to a topic",
            ok::<Published>(202, "The events are durable; delivery follows."),
        )
        .describe(
            "CloudEvents in binary, structured or batch mode, or plain JSON (`docs/events.md`). \
             With the operator token this is `gust publish`; with a function's `GUST_TOKEN` the same \
             path is the platform API's publish.",
        )
        .param(path("topic", "The topic's name."))
        .param(header(
            "idempotency-key",
            "The event's id: a repeat inside the dedup window is not delivered twice.",
        ))
        .param(header(
            "x-event-type",
            "CloudEvents `type` for plain JSON (default: the topic).",
        ))
        .body(Body::AnyJson, "The event or events (6 MiB at most).")
        .error(400, "InvalidEvent", "not an event Gust can read; nothing was stored")
        .error(404, "EventsDisabled", "events are not enabled on this Gust")
        .error(404, "TopicNotFound", "no topic with this name")
        .error(413, "EventTooLarge", "an event is over the size limit")
        .too_large()
        .storage_error(),
        Endpoint::ListSubscriptions => Contract::new(
            "events",
            "List subscriptions with their backlogs",
            ok::<SubscriptionList>(200, "Every subscription, the functions' async queues included."),
        )
        .error(404, "EventsDisabled", "events are not enabled on this Gust")
        .storage_error(),
        Endpoint::ListDeadLetters => Contract::new(
            "events",
            "List dead letters",
            ok::<DeadLetterList>(200, "Dead letters with their events."),
        )
        .param(query("subscription", inline::<String>, "Only this subscription's."))
        .error(404, "EventsDisabled", "events are not enabled on this Gust")
        .storage_error(),
        Endpoint::GetDeadLetter => Contract::new(
            "events",
            "Show one dead letter",
            ok::<DeadLetter>(200, "The dead letter with its event."),
        )
        .param(path("subscription", "The subscription's name."))
        .param(path("seq", "The dead letter's `seq` (a number)."))
        .error(400, "InvalidParameter", "`seq` is not a number")
        .error(404, "DeadLetterNotFound", "no such dead letter in this subscription")
        .error(404, "EventsDisabled", "events are not enabled on this Gust")
        .storage_error(),
        Endpoint::RedriveDeadLetters => Contract::new(
            "events",
            "Deliver dead letters again",
            ok::<Redriven>(200, "How many were queued again."),
        )
        .param(path("subscription", "The subscription's name."))
        .param(seq_list())
        .error(400, "InvalidParameter", "`seq` is not a list of numbers")
        .error(404, "SubscriptionNotFound", "no subscription with this name")
        .error(404, "EventsDisabled", "events are not enabled on this Gust")
        .storage_error(),
        Endpoint::PurgeDeadLetters => Contract::new(
            "events",
            "Delete dead letters",
            ok::<Purged>(200, "How many were deleted."),
        )
        .param(path("subscription", "The subscription's name."))
        .param(seq_list())
        .error(400, "InvalidParameter", "`seq` is not a list of numbers")
        .error(404, "EventsDisabled", "events are not enabled on this Gust")
        .storage_error(),
        Endpoint::Metrics => Contract::new(
            "metrics",
            "Prometheus metrics",
            answer(
                200,
                "Counters kept by the runtime and gauges read now.",
                Body::Prometheus,
            ),
        )
        .describe("Metric names are listed in `docs/observability.md`."),
        Endpoint::Invoke => invoke_contract(),
        Endpoint::LambdaListFunctions => lambda_read_contract(
            "List the functions (Lambda's ListFunctions)",
            ok::<crate::LambdaFunctionList>(200, "Every deployed function, on one page."),
            false,
        ),
        Endpoint::LambdaGetFunction => lambda_read_contract(
            "Describe a function (Lambda's GetFunction)",
            ok::<crate::LambdaFunction>(200, "The function's configuration and where its code is."),
            true,
        ),
        Endpoint::LambdaGetFunctionConfiguration => lambda_read_contract(
            "A function's settings (Lambda's GetFunctionConfiguration)",
            ok::<crate::FunctionConfiguration>(200, "The function's configuration."),
            true,
        ),
        Endpoint::LambdaGetAccountSettings => lambda_read_contract(
            "Limits and usage (Lambda's GetAccountSettings)",
            ok::<crate::AccountSettings>(200, "Gust's limits in Lambda's terms, and what is deployed."),
            false,
        ),
        Endpoint::Health => Contract::new("admin", "Health check", ok::<Health>(200, "The admin address answers.")),
        Endpoint::OpenApi => Contract::new(
            "admin",
            "This document",
            answer(
                200,
                "The OpenAPI document, as checked in at `docs/openapi.json`.",
                Body::AnyJson,
            ),
        ),
    }
}

/// Lambda's `Invoke`: its answers and errors have Lambda's shapes (the kind of error is the
/// `x-amzn-ErrorType` header), since the AWS CLI and SDKs read them.
fn invoke_contract() -> Contract {
    use crate::{LambdaAuthError, LambdaError};
    let mut c = Contract::new(
        "lambda",
        "Invoke a function (Lambda's Invoke)",
        Answer {
            status: 200,
            description: "The function's answer (`RequestResponse`). With `X-Amz-Function-Error: Unhandled` \
                          the function failed: its own error object, or a `FunctionError` when it failed \
                          without answering (timeout, crash, out of memory, init failure, answer too large).",
            body: Body::AnyJson,
            headers: vec![
                ("X-Amz-Function-Error", "`Unhandled` when the function failed."),
                ("X-Amz-Executed-Version", "Always `$LATEST`."),
                ("x-amzn-RequestId", "The invocation's request id."),
            ],
        },
    )
    .describe(
        "As AWS Lambda answers it, so `aws lambda invoke --endpoint-url` and the SDKs work. \
         Signed with AWS Signature Version 4 with a Gust access key (any region, service `lambda`), \
         or with the operator token as a bearer token (`gust invoke`).",
    )
    .param(path(
        "name",
        "A function name, or a partial or full ARN (the name is the last part).",
    ))
    .param(header(
        "X-Amz-Invocation-Type",
        "`RequestResponse` (default), `Event` (queued, answered 202) or `DryRun` (checked, answered 204).",
    ))
    .param(header(
        "X-Amz-Client-Context",
        "Base64 JSON handed to the function as its client context.",
    ))
    .param(header(
        "traceparent",
        "W3C trace context the invocation joins (or `X-Amzn-Trace-Id`).",
    ))
    .body(
        Body::AnyJson,
        "The event, as JSON (empty means `{}`; 6 MiB at most, 256 KiB for `Event`).",
    )
    .also(Answer {
        status: 202,
        description: "`Event`: the invocation is durable and queued; it runs with Lambda's retry policy.",
        body: Body::None,
        headers: vec![("x-amzn-RequestId", "The queued invocation's id.")],
    })
    .also(answer(204, "`DryRun`: the function exists.", Body::None));
    c.errors.clear();
    let lambda = |status: u16, description: &'static str| answer(status, description, Body::Json(named::<LambdaError>));
    c.answers.extend([
        lambda(
            400,
            "`x-amzn-ErrorType`: `InvalidParameterValueException` (an unknown invocation type; `Event` \
             without events enabled) or `InvalidRequestContentException` (the body is not JSON).",
        ),
        Answer {
            status: 403,
            description: "Not authenticated. `x-amzn-ErrorType`: `MissingAuthenticationTokenException` (no \
                          `Authorization`), `IncompleteSignatureException` (not a complete SigV4 header; `host` \
                          or `x-amz-date` not signed), `UnrecognizedClientException` (an access key Gust did not \
                          issue; a bearer token that is not the operator's) or `InvalidSignatureException` (the \
                          signature does not match; signed more than 15 minutes away; a wrong scope).",
            body: Body::Json(named::<LambdaAuthError>),
            headers: vec![("x-amzn-ErrorType", "The error's kind.")],
        },
        lambda(
            404,
            "`x-amzn-ErrorType`: `ResourceNotFoundException` (no such function) or \
             `UnknownOperationException` (not a Lambda API operation).",
        ),
        lambda(413, "`x-amzn-ErrorType`: `RequestTooLargeException`."),
        Answer {
            headers: vec![("Retry-After", "Seconds to wait.")],
            ..lambda(
                429,
                "`x-amzn-ErrorType`: `TooManyRequestsException` (the function is at its concurrency and its queue is full).",
            )
        },
        lambda(500, "`x-amzn-ErrorType`: `ServiceException`."),
    ]);
    for a in &mut c.answers {
        if a.status >= 400 && a.status != 403 {
            a.headers.push(("x-amzn-ErrorType", "The error's kind."));
        }
    }
    c
}

/// A Lambda API read (`ListFunctions`, `GetFunction`, ...): Lambda's shapes, Lambda's errors.
fn lambda_read_contract(summary: &'static str, ok: Answer, named_function: bool) -> Contract {
    use crate::{LambdaAuthError, LambdaError};
    let mut c = Contract::new("lambda", summary, ok).describe(
        "As AWS Lambda answers it, for the AWS CLI and SDKs; signed as `Invoke` is. A Lambda API          operation Gust does not have answers 404 `UnknownOperationException` naming it.",
    );
    if named_function {
        c = c.param(path(
            "name",
            "A function name, or a partial or full ARN (the name is the last part).",
        ));
    }
    c.errors.clear();
    let error = |status: u16, description: &'static str| Answer {
        headers: vec![("x-amzn-ErrorType", "The error's kind.")],
        ..answer(status, description, Body::Json(named::<LambdaError>))
    };
    c.answers.extend([
        Answer {
            status: 403,
            description: "Not authenticated, as for `Invoke`.",
            body: Body::Json(named::<LambdaAuthError>),
            headers: vec![("x-amzn-ErrorType", "The error's kind.")],
        },
        error(
            404,
            "`x-amzn-ErrorType`: `ResourceNotFoundException` (no such function).",
        ),
    ]);
    c
}

/// The errors every endpoint of a face can answer with.
fn face_errors(face: Face) -> Vec<(u16, &'static str, &'static str)> {
    let guard = [
        (
            403,
            "HostNotAllowed",
            "`Host` is not an IP address, `localhost` or a configured name",
        ),
        (
            403,
            "OriginNotAllowed",
            "a browser `Origin` other than the admin address's own",
        ),
    ];
    match face {
        Face::Operator => [
            (401, "OperatorTokenRequired", "no operator token, or a wrong one"),
            (
                403,
                "OperatorOnly",
                "a function's `GUST_TOKEN` instead of the operator token",
            ),
        ]
        .into_iter()
        .chain(guard)
        .collect(),
        Face::Public => guard.into(),
        // The Lambda face's own refusals are Lambda-shaped (in its contract); the guard's are
        // Gust's, before any face.
        Face::Lambda => guard.into(),
    }
}

fn method_of(e: Endpoint) -> HttpMethod {
    match e.method() {
        "GET" => HttpMethod::Get,
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "DELETE" => HttpMethod::Delete,
        other => panic!("{e:?}: method {other} has no HttpMethod"),
    }
}

fn content(body: Body, schemas: &mut Schemas) -> Option<(&'static str, Content)> {
    match body {
        Body::Json(schema) => Some(("application/json", Content::new(Some(schema(schemas))))),
        Body::AnyJson => Some(("application/json", Content::new(Some(serde_json::Value::schema())))),
        Body::Bytes => Some((
            "application/octet-stream",
            Content::new(Some(inline::<String>(schemas))),
        )),
        Body::EventStream => Some(("text/event-stream", Content::new(Some(inline::<String>(schemas))))),
        Body::Prometheus => Some((
            "text/plain; version=0.0.4",
            Content::new(Some(inline::<String>(schemas))),
        )),
        Body::None => None,
    }
}

fn operation(e: Endpoint, schemas: &mut Schemas) -> utoipa::openapi::path::Operation {
    let c = contract(e);
    let declared: Vec<&str> = c
        .params
        .iter()
        .filter(|p| matches!(p.place, ParameterIn::Path))
        .map(|p| p.name)
        .collect();
    let template: Vec<&str> = e.path_params().collect();
    assert_eq!(
        declared, template,
        "{e:?}: the contract's path parameters are not the template's"
    );

    let mut op = OperationBuilder::new()
        .operation_id(Some(e.name()))
        .tag(c.tag)
        .summary(Some(c.summary))
        .description((!c.description.is_empty()).then_some(c.description));
    for p in &c.params {
        op = op.parameter(
            ParameterBuilder::new()
                .name(p.name)
                .parameter_in(p.place.clone())
                .required(if matches!(p.place, ParameterIn::Path) {
                    Required::True
                } else {
                    Required::False
                })
                .description(Some(p.description))
                .schema(Some((p.schema)(schemas))),
        );
    }
    if let Some((media, body)) = content(c.body, schemas) {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .description(Some(c.body_description))
                .required(Some(Required::True))
                .content(media, body)
                .build(),
        ));
    }
    // One response per status. Gust's own errors are grouped by status, one response listing
    // its codes; where an endpoint has an answer of its own at that status (the Lambda API's
    // 403), the body is either (`oneOf`).
    let mut by_status: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for (status, code, when) in c.errors.into_iter().chain(face_errors(e.face())) {
        by_status.entry(status).or_default().push(format!("`{code}`: {when}."));
    }
    let error_body = named::<crate::ErrorBody>(schemas);
    let gust_error =
        |lines: &[String]| format!("Gust's error body; `error.code` is one of:\n\n- {}", lines.join("\n- "));
    for a in c.answers {
        let mut description = a.description.to_string();
        let mut body = content(a.body, schemas);
        if let Some(lines) = by_status.remove(&a.status) {
            description = format!("{description}\n\nOr {}", gust_error(&lines));
            body = body.map(|(media, own)| {
                let either = OneOfBuilder::new()
                    .item(own.schema.expect("an answer's content has a schema"))
                    .item(error_body.clone());
                (media, Content::new(Some(either)))
            });
        }
        let mut r = ResponseBuilder::new().description(description);
        if let Some((media, body)) = body {
            r = r.content(media, body);
        }
        for (name, description) in a.headers {
            r = r.header(
                name,
                utoipa::openapi::HeaderBuilder::new()
                    .schema(inline::<String>(schemas))
                    .description(Some(description))
                    .build(),
            );
        }
        op = op.response(a.status.to_string(), r.build());
    }
    for (status, lines) in by_status {
        let r = ResponseBuilder::new()
            .description(gust_error(&lines))
            .content("application/json", Content::new(Some(error_body.clone())));
        op = op.response(status.to_string(), r.build());
    }
    op = match e.face() {
        Face::Operator => op.security(SecurityRequirement::new(OPERATOR_SCHEME, Vec::<String>::new())),
        Face::Lambda => op
            .security(SecurityRequirement::new(SIGV4_SCHEME, Vec::<String>::new()))
            .security(SecurityRequirement::new(OPERATOR_SCHEME, Vec::<String>::new())),
        Face::Public => op,
    };
    op.build()
}

/// The document as a value.
pub fn document() -> OpenApi {
    let mut schemas = Schemas::new();
    let mut paths = Paths::new();
    for &e in Endpoint::ALL {
        let op = operation(e, &mut schemas);
        paths.add_path_operation(e.path(), vec![method_of(e)], op);
    }
    // Not referenced by a response (a failed function's 200 is any JSON), listed so that
    // clients have its type.
    named::<crate::FunctionError>(&mut schemas);
    let mut components = Components::new();
    components.schemas = schemas;
    components.add_security_scheme(
        OPERATOR_SCHEME,
        SecurityScheme::Http({
            let mut h = Http::new(HttpAuthScheme::Bearer);
            h.description = Some(
                "The operator token: `<state>/operator.token` (`gop_` and 64 hex digits), sent as \
                 `Authorization: Bearer`. A function's `GUST_TOKEN` is refused (`OperatorOnly`)."
                    .into(),
            );
            h
        }),
    );
    components.add_security_scheme(
        SIGV4_SCHEME,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "Authorization",
            "AWS Signature Version 4 (`AWS4-HMAC-SHA256 Credential=GKIA.../<date>/<region>/lambda/aws4_request, \
             SignedHeaders=..., Signature=...`) with an access key from `POST /gust/v1/access-keys`, plus \
             `X-Amz-Date` within 15 minutes and the body's SHA-256. As the AWS CLI and SDKs sign.",
        ))),
    );
    let tags = [
        ("functions", "What is deployed."),
        ("access keys", "Access keys for the Lambda API (SigV4)."),
        ("api keys", "API keys for the public gateway (`x-api-key`)."),
        ("secrets", "Encrypted secrets; values go in, never out."),
        ("telemetry", "Invocation records, function output, traces, usage."),
        ("schedules", "Schedules of the manifest."),
        ("deployments", "Redeploying the running app without downtime."),
        ("events", "Publishing, subscriptions and dead-letter queues."),
        ("metrics", "Prometheus metrics."),
        (
            "console",
            "What the web console reads besides the records (`docs/console.md`).",
        ),
        ("lambda", "The Lambda Invoke API."),
        ("admin", "The admin address itself."),
    ];
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Gust admin API")
                .version("1")
                .description(Some(
                    "The admin address of Gust (`gust up --admin-port`, 127.0.0.1:8081 by default): the \
                     operator API, the Lambda Invoke API and the health check. Generated from the types \
                     of the `gust-api` crate; `docs/control-plane.md` says how to regenerate it. The \
                     platform API that functions reach through `GUST_API` is described in `docs/kv.md` \
                     and `docs/events.md`.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components))
        .tags(Some(tags.map(|(name, description)| {
            let mut t = Tag::new(name);
            t.description = Some(description.into());
            t
        })))
        .build()
}

/// The document as pretty JSON with a final newline: what `docs/openapi.json` holds, what
/// `gust openapi` prints and `GET /gust/v1/openapi.json` answers.
pub fn openapi() -> String {
    let mut text = document()
        .to_pretty_json()
        .expect("an OpenAPI document serialises to JSON");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_has_one_operation_with_its_error_body() {
        let doc: serde_json::Value = serde_json::from_str(&openapi()).unwrap();
        for &e in Endpoint::ALL {
            let op = &doc["paths"][e.path()][e.method().to_ascii_lowercase()];
            assert_eq!(op["operationId"], e.name(), "{e:?}");
            if e.face() == Face::Operator {
                assert_eq!(
                    op["responses"]["401"]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{e:?}"
                );
                assert!(op["security"][0][OPERATOR_SCHEME].is_array(), "{e:?}");
            }
        }
        // Every referenced schema is defined.
        let text = openapi();
        for part in text.split("\"#/components/schemas/").skip(1) {
            let name = &part[..part.find('"').unwrap()];
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{name} is referenced, not defined"
            );
        }
    }

    #[test]
    fn nullable_fields_are_required_in_the_schema() {
        let doc = document();
        let json = serde_json::to_value(&doc.components.unwrap().schemas["LogLine"]).unwrap();
        let required: Vec<&str> = json["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(required.contains(&"request_id"), "{json}");
    }
}
