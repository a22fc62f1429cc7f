//! The Lambda API's operations by method and path, so that a request for one Gust does not
//! have is refused with its name (`UnknownOperationException: Gust does not support the Lambda
//! operation DeleteFunction`) instead of a bare 404 that SDKs show as `UnknownError`. The
//! operations Gust has are in `gust_api::Endpoint`; this table is only for naming the others.

/// `(method, path template, operation)`: `{}` matches one segment; a template matches only a
/// path with exactly as many segments.
const OPERATIONS: &[(&str, &str, &str)] = &[
    ("POST", "/2015-03-31/functions", "CreateFunction"),
    ("DELETE", "/2015-03-31/functions/{}", "DeleteFunction"),
    ("PUT", "/2015-03-31/functions/{}/code", "UpdateFunctionCode"),
    (
        "PUT",
        "/2015-03-31/functions/{}/configuration",
        "UpdateFunctionConfiguration",
    ),
    ("GET", "/2015-03-31/functions/{}/versions", "ListVersionsByFunction"),
    ("POST", "/2015-03-31/functions/{}/versions", "PublishVersion"),
    ("GET", "/2015-03-31/functions/{}/aliases", "ListAliases"),
    ("POST", "/2015-03-31/functions/{}/aliases", "CreateAlias"),
    ("GET", "/2015-03-31/functions/{}/aliases/{}", "GetAlias"),
    ("PUT", "/2015-03-31/functions/{}/aliases/{}", "UpdateAlias"),
    ("DELETE", "/2015-03-31/functions/{}/aliases/{}", "DeleteAlias"),
    ("GET", "/2015-03-31/functions/{}/policy", "GetPolicy"),
    ("POST", "/2015-03-31/functions/{}/policy", "AddPermission"),
    ("DELETE", "/2015-03-31/functions/{}/policy/{}", "RemovePermission"),
    ("GET", "/2015-03-31/event-source-mappings", "ListEventSourceMappings"),
    ("POST", "/2015-03-31/event-source-mappings", "CreateEventSourceMapping"),
    ("GET", "/2015-03-31/event-source-mappings/{}", "GetEventSourceMapping"),
    (
        "PUT",
        "/2015-03-31/event-source-mappings/{}",
        "UpdateEventSourceMapping",
    ),
    (
        "DELETE",
        "/2015-03-31/event-source-mappings/{}",
        "DeleteEventSourceMapping",
    ),
    ("POST", "/2014-11-13/functions/{}/invoke-async", "InvokeAsync"),
    ("GET", "/2017-03-31/tags/{}", "ListTags"),
    ("POST", "/2017-03-31/tags/{}", "TagResource"),
    ("DELETE", "/2017-03-31/tags/{}", "UntagResource"),
    ("PUT", "/2017-10-31/functions/{}/concurrency", "PutFunctionConcurrency"),
    (
        "DELETE",
        "/2017-10-31/functions/{}/concurrency",
        "DeleteFunctionConcurrency",
    ),
    ("GET", "/2019-09-30/functions/{}/concurrency", "GetFunctionConcurrency"),
    ("GET", "/2018-10-31/layers", "ListLayers"),
    ("GET", "/2018-10-31/layers/{}/versions", "ListLayerVersions"),
    ("POST", "/2018-10-31/layers/{}/versions", "PublishLayerVersion"),
    (
        "GET",
        "/2019-09-25/functions/{}/event-invoke-config",
        "GetFunctionEventInvokeConfig",
    ),
    (
        "PUT",
        "/2019-09-25/functions/{}/event-invoke-config",
        "PutFunctionEventInvokeConfig",
    ),
    (
        "POST",
        "/2019-09-25/functions/{}/event-invoke-config",
        "UpdateFunctionEventInvokeConfig",
    ),
    (
        "DELETE",
        "/2019-09-25/functions/{}/event-invoke-config",
        "DeleteFunctionEventInvokeConfig",
    ),
    (
        "GET",
        "/2019-09-25/functions/{}/event-invoke-config/list",
        "ListFunctionEventInvokeConfigs",
    ),
    (
        "GET",
        "/2019-09-30/functions/{}/provisioned-concurrency",
        "GetProvisionedConcurrencyConfig",
    ),
    (
        "PUT",
        "/2019-09-30/functions/{}/provisioned-concurrency",
        "PutProvisionedConcurrencyConfig",
    ),
    ("GET", "/2020-04-22/code-signing-configs", "ListCodeSigningConfigs"),
    (
        "GET",
        "/2021-07-20/functions/{}/runtime-management-config",
        "GetRuntimeManagementConfig",
    ),
    ("GET", "/2021-10-31/functions/{}/url", "GetFunctionUrlConfig"),
    ("POST", "/2021-10-31/functions/{}/url", "CreateFunctionUrlConfig"),
    ("PUT", "/2021-10-31/functions/{}/url", "UpdateFunctionUrlConfig"),
    ("DELETE", "/2021-10-31/functions/{}/url", "DeleteFunctionUrlConfig"),
    ("GET", "/2021-10-31/functions/{}/urls", "ListFunctionUrlConfigs"),
    (
        "POST",
        "/2021-11-15/functions/{}/response-streaming-invocations",
        "InvokeWithResponseStream",
    ),
    (
        "GET",
        "/2020-06-30/functions/{}/code-signing-config",
        "GetFunctionCodeSigningConfig",
    ),
    (
        "GET",
        "/2025-10-31/functions/{}/recursion-config",
        "GetFunctionRecursionConfig",
    ),
];

/// Whether `path` is in the Lambda API's address space: its first segment is an API version
/// date (`/2015-03-31/...`, `/2016-08-19/...`).
pub(crate) fn is_lambda_path(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let b = first.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// The name of the Lambda operation `method path` asks for, when it is one Lambda has.
pub(crate) fn operation_name(method: &str, path: &str) -> Option<&'static str> {
    let got: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    OPERATIONS.iter().find_map(|(m, template, name)| {
        let want: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
        let fits = m.eq_ignore_ascii_case(method)
            && want.len() == got.len()
            && want.iter().zip(&got).all(|(w, g)| *w == "{}" || w == g);
        fits.then_some(*name)
    })
}

/// The refusal's message: the operation's name when known, else its method and path.
pub(crate) fn unsupported(method: &str, path: &str) -> String {
    match operation_name(method, path) {
        Some(name) => format!("Gust does not support the Lambda operation {name} ({method} {path})"),
        None => format!("Gust does not support the Lambda operation {method} {path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_by_method_and_path() {
        assert_eq!(
            operation_name("DELETE", "/2015-03-31/functions/f"),
            Some("DeleteFunction")
        );
        assert_eq!(
            operation_name("GET", "/2015-03-31/functions/f/versions/"),
            Some("ListVersionsByFunction")
        );
        assert_eq!(
            operation_name("GET", "/2017-03-31/tags/arn:aws:lambda:x"),
            Some("ListTags")
        );
        assert_eq!(operation_name("PATCH", "/2015-03-31/functions/f"), None);
        assert!(unsupported("DELETE", "/2015-03-31/functions/f").contains("DeleteFunction"));
        assert!(is_lambda_path("/2016-08-19/account-settings"));
        assert!(is_lambda_path("/2015-03-31/functions"));
        assert!(!is_lambda_path("/gust/v1/functions"));
        assert!(!is_lambda_path("/2015-3-31/x"));
    }
}
