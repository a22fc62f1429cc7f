//! The Lambda API face: `Invoke` (`POST /2015-03-31/functions/{name}/invocations`) and the
//! reads `ListFunctions`, `GetFunction`, `GetFunctionConfiguration` and `GetAccountSettings`,
//! as AWS Lambda answers them, so the AWS CLI and SDKs work with `--endpoint-url`. Any other
//! Lambda operation is refused with its name (`lambda_operations.rs`).
//!
//! `Invoke` follows Lambda's conventions: `X-Amz-Log-Type: Tail` answers the last 4 KB of the
//! invocation's log (its output and the platform's `START`/`END`/`REPORT` lines), base64, in
//! `X-Amz-Log-Result`; `X-Amz-Client-Context` (base64 JSON) is decoded and handed to the
//! function as JSON (`Lambda-Runtime-Client-Context`), and one that is not base64 JSON is a
//! 400 `InvalidRequestContentException`, as Lambda answers, before anything runs.
//!
//! Credentials: AWS Signature Version 4 with an access key Gust issued
//! (`gust access-keys create`), or the operator token as a bearer token (`gust invoke`).
//! Refusals have Lambda's shape: 403, `x-amzn-ErrorType` (`MissingAuthenticationTokenException`,
//! `IncompleteSignatureException`, `UnrecognizedClientException`, `InvalidSignatureException`)
//! and `{"message"}`. Every error answer is made in [`super::lambda_errors`]. A function's `GUST_TOKEN` is not a credential here: functions invoke
//! what they were granted through the platform API.

use super::lambda_errors::{invoke_failure, lambda_error, refused, LambdaErrorType};
use super::{credentials::bearer, empty, json_response, trace_of, Admin, MAX_INVOKE_PAYLOAD};
use crate::codes::ErrorCode;
use crate::error::Body;
use crate::sigv4::{self, SigV4Error};
use base64::Engine as _;
use bytes::Bytes;
use gust_runtime::{Invocation, Trigger};
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;

/// The signing name of the Lambda API.
const SERVICE: &str = "lambda";

fn too_large(limit: usize, what: &str) -> Response<Body> {
    lambda_error(
        LambdaErrorType::RequestTooLargeException,
        &format!("Request must be smaller than {limit} bytes for {what}"),
    )
}

impl Admin {
    pub(super) async fn lambda_api(&self, req: Request<Incoming>, request_id: &str) -> Response<Body> {
        let mut resp = self.lambda_api_inner(req, request_id).await;
        if let Ok(v) = HeaderValue::from_str(request_id) {
            resp.headers_mut().entry("x-amzn-requestid").or_insert(v);
        }
        resp
    }

    async fn lambda_api_inner(&self, req: Request<Incoming>, request_id: &str) -> Response<Body> {
        let (parts, body) = req.into_parts();
        // Refuse what can be refused before reading the body.
        let pending = if bearer(&parts.headers).is_some() {
            if !self.is_operator(&parts.headers) {
                return refused(&SigV4Error::UnknownKey);
            }
            None
        } else {
            let head = sigv4::RequestHead {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                query: parts.uri.query(),
                headers: &parts.headers,
            };
            let keys = self.access_keys.as_ref();
            match sigv4::check_head(head, SERVICE, chrono::Utc::now(), |id| keys.and_then(|k| k.secret(id))) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::info!(reason = %e, "Lambda API request refused");
                    return refused(&e);
                }
            }
        };
        let payload = match crate::gateway::read_limited(&parts.headers, body, MAX_INVOKE_PAYLOAD).await {
            Ok(p) => p,
            Err(e) if e.code == ErrorCode::PayloadTooLarge => {
                return too_large(MAX_INVOKE_PAYLOAD, "the InvokeFunction operation")
            }
            Err(e) => return e.into_response(request_id),
        };
        // The access key the request was signed with (`None`: the operator token).
        let access_key = match pending {
            None => None,
            Some(p) => match p.verify(&payload) {
                Ok(id) => Some(id),
                Err(e) => {
                    tracing::info!(reason = %e, "Lambda API request refused");
                    return refused(&e);
                }
            },
        };
        tracing::debug!(
            caller = access_key.as_deref().unwrap_or("operator token"),
            "Lambda API request"
        );
        let path = parts.uri.path();
        use gust_api::Endpoint as E;
        match gust_api::Endpoint::resolve(parts.method.as_str(), path) {
            Ok(route) if route.endpoint == E::Invoke => {
                self.invoke(route.param("name"), &parts.headers, payload, request_id)
                    .await
            }
            Ok(route) if route.endpoint == E::LambdaListFunctions => {
                let functions = self
                    .invoker
                    .function_names()
                    .iter()
                    .filter_map(|n| self.invoker.deployed(n))
                    .map(|d| configuration(&d))
                    .collect();
                json_response(
                    StatusCode::OK,
                    gust_api::LambdaFunctionList {
                        functions,
                        next_marker: None,
                    },
                )
            }
            Ok(route) if route.endpoint == E::LambdaGetFunction => match self.deployed(route.param("name")) {
                Ok(d) => json_response(
                    StatusCode::OK,
                    gust_api::LambdaFunction {
                        configuration: configuration(&d),
                        code: gust_api::FunctionCodeLocation {
                            repository_type: "FileSystem".into(),
                            location: format!("file://{}", d.spec.code_dir.display()),
                        },
                        tags: Default::default(),
                    },
                ),
                Err(r) => *r,
            },
            Ok(route) if route.endpoint == E::LambdaGetFunctionConfiguration => {
                match self.deployed(route.param("name")) {
                    Ok(d) => json_response(StatusCode::OK, configuration(&d)),
                    Err(r) => *r,
                }
            }
            Ok(route) if route.endpoint == E::LambdaGetAccountSettings => {
                let deployed: Vec<_> = self
                    .invoker
                    .function_names()
                    .iter()
                    .filter_map(|n| self.invoker.deployed(n))
                    .collect();
                let concurrency: u64 = deployed.iter().map(|d| d.spec.scaling.max_instances as u64).sum();
                json_response(
                    StatusCode::OK,
                    gust_api::AccountSettings {
                        account_limit: gust_api::AccountLimit {
                            total_code_size: 75 * 1024 * 1024 * 1024,
                            code_size_unzipped: 250 * 1024 * 1024,
                            code_size_zipped: 50 * 1024 * 1024,
                            concurrent_executions: concurrency,
                            unreserved_concurrent_executions: concurrency,
                        },
                        account_usage: gust_api::AccountUsage {
                            total_code_size: deployed.iter().map(|d| code_size(&d.spec.code_dir)).sum(),
                            function_count: deployed.len() as u64,
                        },
                    },
                )
            }
            _ => lambda_error(
                LambdaErrorType::UnknownOperationException,
                &super::lambda_operations::unsupported(parts.method.as_str(), path),
            ),
        }
    }

    /// The function a Lambda API path names (a name, or a partial or full ARN).
    fn deployed(&self, name: &str) -> Result<gust_runtime::DeployedFunction, Box<Response<Body>>> {
        let name = function_name(name);
        self.invoker.deployed(&name).ok_or_else(|| {
            Box::new(lambda_error(
                LambdaErrorType::ResourceNotFoundException,
                &format!("Function not found: {name}"),
            ))
        })
    }

    async fn invoke(&self, name: &str, headers: &http::HeaderMap, payload: Bytes, request_id: &str) -> Response<Body> {
        let name = function_name(name);
        let kind = headers
            .get("x-amz-invocation-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("RequestResponse");
        if self.invoker.spec(&name).is_none() {
            return lambda_error(
                LambdaErrorType::ResourceNotFoundException,
                &format!("Function not found: {name}"),
            );
        }
        match kind {
            "DryRun" => return empty(StatusCode::NO_CONTENT),
            "RequestResponse" => {}
            "Event" => return self.invoke_async(&name, headers, payload).await,
            other => {
                return lambda_error(
                    LambdaErrorType::InvalidParameterValueException,
                    &format!("unknown InvocationType `{other}`"),
                )
            }
        }
        let client_context = match headers.get("x-amz-client-context").map(client_context) {
            None => None,
            Some(Ok(json)) => Some(json),
            Some(Err(())) => {
                return lambda_error(
                    LambdaErrorType::InvalidRequestContentException,
                    "Client context must be a valid Base64-encoded JSON object.",
                )
            }
        };
        let tail = headers
            .get("x-amz-log-type")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"tail"));
        let Some(payload) = json_payload(payload) else {
            return not_json();
        };
        let mut inv = Invocation::new(name.clone(), payload, Trigger::Direct);
        inv.request_id = Some(request_id.to_string());
        if let Some(parent) = trace_of(headers) {
            inv.parent_span = Some(parent.span_id.clone());
            inv.trace = Some(parent.child());
        }
        inv.client_context = client_context;
        let tail = self.log_tail.as_ref().filter(|_| tail);
        if let Some(t) = tail {
            t.follow(request_id);
        }
        let result = self.invoker.invoke(inv).await;
        let mut resp = match result {
            Ok(out) => {
                let mut r = Response::builder()
                    .status(StatusCode::OK)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .header("x-amz-executed-version", "$LATEST")
                    .body(Body::from(out.payload))
                    .expect("static response parts are valid");
                if out.function_error.is_some() {
                    r.headers_mut()
                        .insert("x-amz-function-error", HeaderValue::from_static("Unhandled"));
                }
                r
            }
            Err(e) => invoke_failure(&e),
        };
        if let Some(t) = tail {
            let log = base64::engine::general_purpose::STANDARD.encode(t.take(request_id));
            if let Ok(v) = HeaderValue::from_str(&log) {
                resp.headers_mut().insert("x-amz-log-result", v);
            }
        }
        resp
    }

    /// `InvocationType: Event`: durable first, then 202; the function runs from the queue with
    /// Lambda's retry policy and ends in the function's DLQ if every attempt fails.
    async fn invoke_async(&self, name: &str, headers: &http::HeaderMap, payload: Bytes) -> Response<Body> {
        let Some(events) = &self.events else {
            return lambda_error(
                LambdaErrorType::InvalidParameterValueException,
                "asynchronous invocation needs events enabled",
            );
        };
        if payload.len() > gust_events::MAX_EVENT_BYTES {
            return too_large(gust_events::MAX_EVENT_BYTES, "asynchronous invocation");
        }
        let Some(payload) = json_payload(payload) else {
            return not_json();
        };
        let trace = trace_of(headers).map(|t| t.to_string());
        match events.invoke_async(name, payload, trace).await {
            Ok(id) => {
                let mut r = empty(StatusCode::ACCEPTED);
                if let Ok(v) = HeaderValue::from_str(&id) {
                    r.headers_mut().insert("x-amzn-requestid", v);
                }
                r
            }
            Err(gust_events::PublishError::UnknownFunction(n)) => lambda_error(
                LambdaErrorType::ResourceNotFoundException,
                &format!("Function not found: {n}"),
            ),
            Err(e) => {
                tracing::error!(error = %e, "queueing an asynchronous invocation failed");
                lambda_error(LambdaErrorType::ServiceException, "the invocation could not be queued")
            }
        }
    }
}

/// Lambda accepts a name, a partial or a full ARN; the function name is the last part.
fn function_name(raw: &str) -> String {
    let name = crate::routes::percent_decode(raw);
    name.rsplit(':').next().unwrap_or(&name).to_string()
}

/// `X-Amz-Client-Context`: base64 of a JSON object, handed to the function as that JSON.
fn client_context(v: &HeaderValue) -> Result<String, ()> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(v.as_bytes().trim_ascii())
        .map_err(|_| ())?;
    match serde_json::from_slice::<serde_json::Value>(&raw) {
        Ok(serde_json::Value::Object(_)) => String::from_utf8(raw).map_err(|_| ()),
        _ => Err(()),
    }
}

/// A function in Lambda's `FunctionConfiguration` shape.
fn configuration(d: &gust_runtime::DeployedFunction) -> gust_api::FunctionConfiguration {
    use sha2::Digest as _;
    let spec = &d.spec;
    let settings = format!(
        "{}\n{}\n{}\n{}\n{}\n{:?}",
        spec.name,
        spec.runtime,
        spec.handler,
        spec.memory_mb,
        spec.timeout.as_millis(),
        spec.environment
    );
    let account = d.arn.split(':').nth(4).unwrap_or(crate::ACCOUNT_ID);
    gust_api::FunctionConfiguration {
        function_name: spec.name.to_string(),
        function_arn: d.arn.clone(),
        runtime: spec.runtime.clone(),
        role: format!("arn:aws:iam::{account}:role/gust"),
        handler: spec.handler.clone(),
        code_size: code_size(&spec.code_dir),
        description: String::new(),
        timeout: spec.timeout.as_secs().max(1),
        memory_size: spec.memory_mb,
        last_modified: chrono::DateTime::<chrono::Utc>::from(d.at)
            .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
            .to_string(),
        code_sha256: base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(settings.as_bytes())),
        version: "$LATEST".into(),
        environment: gust_api::FunctionEnvironment {
            variables: spec.environment.clone().into_iter().collect(),
        },
        tracing_config: gust_api::TracingConfig {
            mode: "PassThrough".into(),
        },
        state: "Active".into(),
        last_update_status: "Successful".into(),
        package_type: "Zip".into(),
        architectures: vec![if cfg!(target_arch = "aarch64") {
            "arm64"
        } else {
            "x86_64"
        }
        .into()],
        ephemeral_storage: gust_api::EphemeralStorage {
            size: spec.ephemeral_storage_mb,
        },
    }
}

/// Bytes of the files under `dir` (links not followed), counting at most 100,000 entries.
fn code_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut seen = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            seen += 1;
            if seen > 100_000 {
                return total;
            }
            match e.metadata() {
                Ok(m) if m.is_dir() => todo.push(e.path()),
                Ok(m) if m.is_file() => total += m.len(),
                _ => {}
            }
        }
    }
    total
}

/// An Invoke payload: `{}` when empty; `None` when it is not JSON (Lambda refuses it).
fn json_payload(payload: Bytes) -> Option<Bytes> {
    let payload = if payload.is_empty() {
        Bytes::from_static(b"{}")
    } else {
        payload
    };
    serde_json::from_slice::<serde::de::IgnoredAny>(&payload).ok()?;
    Some(payload)
}

fn not_json() -> Response<Body> {
    lambda_error(
        LambdaErrorType::InvalidRequestContentException,
        "Could not parse request body into json",
    )
}
