//! API Gateway payloads: HTTP request -> Lambda event (HTTP API 2.0, REST 1.0), and the
//! Lambda proxy response forms -> HTTP response. Shapes follow AWS's documented examples so
//! existing handlers, `lambda_http` and other frameworks read them unchanged.

use base64::Engine;
use bytes::Bytes;
use gust_model::PayloadFormat;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

/// What the gateway knows about a request, independent of the payload version.
pub struct RequestParts<'a> {
    pub method: &'a str,
    pub raw_path: &'a str,
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
    pub route_key: &'a str,
    pub resource: &'a str,
    pub path_params: &'a [(Arc<str>, String)],
    pub request_id: &'a str,
    pub remote: SocketAddr,
    pub host: &'a str,
    /// Epoch milliseconds when the request arrived.
    pub time_epoch_ms: i64,
    /// What an authorizer established, in the payload's shape (2.0: `{"jwt": {"claims",
    /// "scopes"}}` or `{"lambda": {...}}`; 1.0: `{"claims", "scopes"}` or `{"principalId", ...}`),
    /// as API Gateway puts it in `requestContext.authorizer`.
    pub authorizer: Option<&'a Value>,
    /// Header names as the client spelled them (payload 1.0 keeps them); lower case without.
    pub header_case: Option<&'a crate::header_case::ClientCase>,
}

/// Content types API Gateway passes as text; everything else is base64-encoded.
fn is_text(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    ct.starts_with("text/")
        || ct.ends_with("+json")
        || ct.ends_with("+xml")
        || matches!(
            ct.as_str(),
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/x-www-form-urlencoded"
                | "application/graphql"
                | ""
        )
}

/// The `body` field and `isBase64Encoded`: text as it is, anything else in base64.
fn body_text<'a>(body: &'a Bytes, headers: &HeaderMap) -> (Option<Cow<'a, str>>, bool) {
    if body.is_empty() {
        return (None, false);
    }
    if is_text(headers) {
        if let Ok(s) = std::str::from_utf8(body) {
            return (Some(Cow::Borrowed(s)), false);
        }
    }
    (
        Some(Cow::Owned(base64::engine::general_purpose::STANDARD.encode(body))),
        true,
    )
}

fn body_field(body: &Bytes, headers: &HeaderMap) -> (Value, bool) {
    let (text, b64) = body_text(body, headers);
    (text.map_or(Value::Null, |t| Value::String(t.into_owned())), b64)
}

pub(crate) fn query_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| crate::routes::percent_decode(&s.replace('+', " "));
            (dec(k), dec(v))
        })
        .collect()
}

/// `04/Mar/2020:19:03:58 +0000`, the time format both payload versions use.
fn clf_time(epoch_ms: i64) -> String {
    let t = chrono::DateTime::from_timestamp_millis(epoch_ms).unwrap_or_default();
    t.format("%d/%b/%Y:%H:%M:%S +0000").to_string()
}

fn header_str(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

fn params_object(params: &[(Arc<str>, String)]) -> Value {
    if params.is_empty() {
        return Value::Null;
    }
    Value::Object(
        params
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
            .collect(),
    )
}

/// Builds the event for `format`.
pub fn build_event(format: PayloadFormat, r: &RequestParts<'_>) -> Vec<u8> {
    match format {
        PayloadFormat::V2 => v2_event(r),
        PayloadFormat::V1 => serde_json::to_vec(&v1_event(r)).expect("a JSON value always serialises"),
    }
}

/// The HTTP API 2.0 event, serialised straight from the request: this runs on every request,
/// and building a `serde_json::Value` tree first cost most of its time (maps, owned keys).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct V2Event<'a> {
    version: &'static str,
    route_key: &'a str,
    raw_path: &'a str,
    raw_query_string: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cookies: Vec<String>,
    headers: V2Headers<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "pairs_as_map")]
    query_string_parameters: Vec<(String, String)>,
    request_context: V2Context<'a>,
    #[serde(skip_serializing_if = "<[_]>::is_empty", serialize_with = "path_params_as_map")]
    path_parameters: &'a [(Arc<str>, String)],
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<Cow<'a, str>>,
    is_base64_encoded: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct V2Context<'a> {
    account_id: &'static str,
    api_id: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    authorizer: Option<&'a Value>,
    domain_name: &'a str,
    domain_prefix: &'a str,
    http: V2Http<'a>,
    request_id: &'a str,
    route_key: &'a str,
    stage: &'static str,
    time: String,
    time_epoch: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct V2Http<'a> {
    method: &'a str,
    path: &'a str,
    protocol: &'static str,
    source_ip: std::net::IpAddr,
    user_agent: &'a str,
}

/// Headers as HTTP API 2.0 gives them: lower-case names, repeated values joined with commas,
/// `cookie` left out (it becomes `cookies`).
struct V2Headers<'a>(&'a HeaderMap);

impl Serialize for V2Headers<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = ser.serialize_map(None)?;
        for name in self.0.keys() {
            if name == http::header::COOKIE {
                continue;
            }
            let mut values = self.0.get_all(name).iter();
            let first = values
                .next()
                .map(|v| String::from_utf8_lossy(v.as_bytes()))
                .unwrap_or_default();
            match values.next() {
                None => map.serialize_entry(name.as_str(), &first)?,
                Some(second) => {
                    let mut joined = first.into_owned();
                    for v in std::iter::once(second).chain(values) {
                        joined.push(',');
                        joined.push_str(&String::from_utf8_lossy(v.as_bytes()));
                    }
                    map.serialize_entry(name.as_str(), &joined)?;
                }
            }
        }
        map.end()
    }
}

/// Pairs with distinct keys as a JSON object.
fn pairs_as_map<S: serde::Serializer>(pairs: &[(String, String)], ser: S) -> Result<S::Ok, S::Error> {
    ser.collect_map(pairs.iter().map(|(k, v)| (k.as_str(), v)))
}

/// Path parameters as a JSON object; a name used twice in a route keeps its last value, as a
/// map would.
fn path_params_as_map<S: serde::Serializer>(params: &[(Arc<str>, String)], ser: S) -> Result<S::Ok, S::Error> {
    let last = |i: usize| !params[i + 1..].iter().any(|(k, _)| *k == params[i].0);
    ser.collect_map(
        params
            .iter()
            .enumerate()
            .filter(|(i, _)| last(*i))
            .map(|(_, (k, v))| (&**k, v)),
    )
}

pub(crate) fn v2_event(r: &RequestParts<'_>) -> Vec<u8> {
    let mut cookies = Vec::new();
    for v in r.headers.get_all(http::header::COOKIE) {
        let v = String::from_utf8_lossy(v.as_bytes());
        cookies.extend(
            v.split(';')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string),
        );
    }
    // Repeated query keys: values joined with commas, keys in the order they first came (an
    // index by key: a query string can hold thousands of keys).
    let mut query: Vec<(String, String)> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (k, v) in query_pairs(r.raw_query) {
        match index.get(&k) {
            Some(&at) => {
                let existing = &mut query[at].1;
                existing.push(',');
                existing.push_str(&v);
            }
            None => {
                index.insert(k.clone(), query.len());
                query.push((k, v));
            }
        }
    }
    let (body, b64) = body_text(r.body, r.headers);
    let event = V2Event {
        version: "2.0",
        route_key: r.route_key,
        raw_path: r.raw_path,
        raw_query_string: r.raw_query,
        cookies,
        headers: V2Headers(r.headers),
        query_string_parameters: query,
        request_context: V2Context {
            account_id: crate::ACCOUNT_ID,
            api_id: "gust",
            authorizer: r.authorizer,
            domain_name: r.host,
            domain_prefix: r.host.split('.').next().unwrap_or(""),
            http: V2Http {
                method: r.method,
                path: r.raw_path,
                protocol: "HTTP/1.1",
                source_ip: r.remote.ip(),
                user_agent: r.headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or(""),
            },
            request_id: r.request_id,
            route_key: r.route_key,
            stage: "$default",
            time: clf_time(r.time_epoch_ms),
            time_epoch: r.time_epoch_ms,
        },
        path_parameters: r.path_params,
        body,
        is_base64_encoded: b64,
    };
    serde_json::to_vec(&event).expect("the event serialises")
}

pub(crate) fn v1_event(r: &RequestParts<'_>) -> Value {
    let mut headers = Map::new();
    let mut multi: Map<String, Value> = Map::new();
    for (name, value) in r.headers {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        let name = match r.header_case {
            Some(case) => case.spell(name.as_str()),
            None => name.as_str().to_string(),
        };
        headers.insert(name.clone(), Value::String(v.clone()));
        match multi.get_mut(&name) {
            Some(Value::Array(a)) => a.push(Value::String(v)),
            _ => {
                multi.insert(name, json!([v]));
            }
        }
    }
    let mut query = Map::new();
    let mut mquery: Map<String, Value> = Map::new();
    for (k, v) in query_pairs(r.raw_query) {
        query.insert(k.clone(), Value::String(v.clone()));
        match mquery.get_mut(&k) {
            Some(Value::Array(a)) => a.push(Value::String(v)),
            _ => {
                mquery.insert(k, json!([v]));
            }
        }
    }
    let or_null = |m: Map<String, Value>| {
        if m.is_empty() {
            Value::Null
        } else {
            Value::Object(m)
        }
    };
    let (body, b64) = body_field(r.body, r.headers);
    let mut e = json!({
        "version": "1.0",
        "resource": r.resource,
        "path": r.raw_path,
        "httpMethod": r.method,
        "headers": headers,
        "multiValueHeaders": multi,
        "queryStringParameters": or_null(query),
        "multiValueQueryStringParameters": or_null(mquery),
        "requestContext": {
            "accountId": crate::ACCOUNT_ID,
            "apiId": "gust",
            "domainName": r.host,
            "extendedRequestId": r.request_id,
            "httpMethod": r.method,
            "identity": {
                "sourceIp": r.remote.ip().to_string(),
                "userAgent": header_str(r.headers, "user-agent"),
            },
            "path": r.raw_path,
            "protocol": "HTTP/1.1",
            "requestId": r.request_id,
            "requestTime": clf_time(r.time_epoch_ms),
            "requestTimeEpoch": r.time_epoch_ms,
            "resourceId": "gust",
            "resourcePath": r.resource,
            "stage": "$default",
        },
        "pathParameters": params_object(r.path_params),
        "stageVariables": Value::Null,
        "body": body,
        "isBase64Encoded": b64,
    });
    if let Some(a) = r.authorizer {
        // The gateway gives the 1.0 shape: a JWT's `{claims, scopes}`, a Lambda authorizer's
        // `{principalId, ...context}`.
        e["requestContext"]["authorizer"] = a.clone();
    }
    e
}

/// A response ready to send.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why a function's answer could not become an HTTP response.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error("the function's response is not valid JSON")]
    NotJson,
    #[error("the function's response has no valid `statusCode`")]
    NoStatusCode,
    #[error("the function's response field `{0}` is malformed")]
    BadField(&'static str),
}

fn scalar_to_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn json_answer(body: Vec<u8>) -> HttpAnswer {
    let mut headers = HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    HttpAnswer {
        status: StatusCode::OK,
        headers,
        body: body.into(),
    }
}

/// Maps a Lambda proxy response to HTTP. For 2.0, anything without `statusCode` is a 200 JSON
/// body (a JSON string is sent as its text), as HTTP APIs do; 1.0 requires `statusCode`.
pub fn parse_response(format: PayloadFormat, payload: &[u8]) -> Result<HttpAnswer, ResponseError> {
    let value: Value = serde_json::from_slice(payload).map_err(|_| ResponseError::NotJson)?;
    let structured = value.as_object().filter(|o| o.contains_key("statusCode"));
    let Some(o) = structured else {
        return match (format, value) {
            (PayloadFormat::V1, _) => Err(ResponseError::NoStatusCode),
            (PayloadFormat::V2, Value::String(s)) => Ok(json_answer(s.into_bytes())),
            (PayloadFormat::V2, _) => Ok(json_answer(payload.to_vec())),
        };
    };
    let status = o
        .get("statusCode")
        .and_then(|s| s.as_u64().or_else(|| s.as_str()?.parse().ok()))
        .and_then(|s| u16::try_from(s).ok())
        // HTTP's status range; `http` would take up to 999.
        .filter(|s| (100..=599).contains(s))
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or(ResponseError::NoStatusCode)?;
    let mut headers = HeaderMap::new();
    let mut add = |name: &str, value: &str, append: bool| -> Result<(), ResponseError> {
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| ResponseError::BadField("headers"))?;
        let v = HeaderValue::from_str(value).map_err(|_| ResponseError::BadField("headers"))?;
        if append {
            headers.append(n, v);
        } else {
            headers.insert(n, v);
        }
        Ok(())
    };
    if let Some(h) = o.get("headers").filter(|h| !h.is_null()) {
        let h = h.as_object().ok_or(ResponseError::BadField("headers"))?;
        for (k, v) in h {
            let v = scalar_to_string(v).ok_or(ResponseError::BadField("headers"))?;
            add(k, &v, false)?;
        }
    }
    if let Some(h) = o.get("multiValueHeaders").filter(|h| !h.is_null()) {
        let h = h.as_object().ok_or(ResponseError::BadField("multiValueHeaders"))?;
        for (k, vs) in h {
            let vs = vs.as_array().ok_or(ResponseError::BadField("multiValueHeaders"))?;
            // multiValueHeaders replace a same-named single header, as API Gateway merges them.
            let mut first = true;
            for v in vs {
                let v = scalar_to_string(v).ok_or(ResponseError::BadField("multiValueHeaders"))?;
                add(k, &v, !first)?;
                first = false;
            }
        }
    }
    if let Some(c) = o.get("cookies").filter(|c| !c.is_null()) {
        let c = c.as_array().ok_or(ResponseError::BadField("cookies"))?;
        for cookie in c {
            let cookie = cookie.as_str().ok_or(ResponseError::BadField("cookies"))?;
            add("set-cookie", cookie, true)?;
        }
    }
    let b64 = o.get("isBase64Encoded").and_then(Value::as_bool).unwrap_or(false);
    let body = match o.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(s)) if b64 => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|_| ResponseError::BadField("body"))?
            .into(),
        Some(Value::String(s)) => Bytes::from(s.clone()),
        // A non-string body is a common mistake; API Gateway rejects it, so do we.
        Some(_) => return Err(ResponseError::BadField("body")),
    };
    if format == PayloadFormat::V2 && !headers.contains_key(http::header::CONTENT_TYPE) && !body.is_empty() {
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    Ok(HttpAnswer { status, headers, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(headers: &'a HeaderMap, body: &'a Bytes, params: &'a [(Arc<str>, String)]) -> RequestParts<'a> {
        RequestParts {
            method: "POST",
            raw_path: "/users/42",
            raw_query: "a=1&a=2&b=x%20y&flag",
            headers,
            body,
            route_key: "POST /users/{id}",
            resource: "/users/{id}",
            path_params: params,
            request_id: "req-1",
            remote: "127.0.0.1:5000".parse().unwrap(),
            host: "localhost",
            time_epoch_ms: 1_583_348_638_390,
            authorizer: None,
            header_case: None,
        }
    }

    #[test]
    fn v2_event_has_the_http_api_shape() {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.append("x-multi", HeaderValue::from_static("1"));
        h.append("x-multi", HeaderValue::from_static("2"));
        h.insert("cookie", HeaderValue::from_static("a=1; b=2"));
        let body = Bytes::from_static(b"{\"email\":\"a@b.c\"}");
        let params = [(Arc::from("id"), "42".to_string())];
        let e: Value = serde_json::from_slice(&build_event(PayloadFormat::V2, &parts(&h, &body, &params))).unwrap();
        assert_eq!(e["version"], "2.0");
        assert_eq!(e["routeKey"], "POST /users/{id}");
        assert_eq!(e["rawQueryString"], "a=1&a=2&b=x%20y&flag");
        assert_eq!(e["queryStringParameters"], json!({"a": "1,2", "b": "x y", "flag": ""}));
        assert_eq!(e["headers"]["x-multi"], "1,2");
        assert_eq!(e["cookies"], json!(["a=1", "b=2"]));
        assert!(e["headers"].get("cookie").is_none());
        assert_eq!(e["pathParameters"], json!({"id": "42"}));
        assert_eq!(e["body"], "{\"email\":\"a@b.c\"}");
        assert_eq!(e["isBase64Encoded"], false);
        assert_eq!(e["requestContext"]["http"]["method"], "POST");
        assert_eq!(e["requestContext"]["time"], "04/Mar/2020:19:03:58 +0000");
        assert_eq!(e["requestContext"]["timeEpoch"], 1_583_348_638_390i64);
    }

    #[test]
    fn v2_event_joins_repeated_keys_among_many_and_keeps_the_last_of_a_repeated_path_name() {
        let h = HeaderMap::new();
        let body = Bytes::new();
        // Thousands of keys (a head may be 64 KiB): each distinct key once, `k7` three times.
        let mut raw: Vec<String> = (0..5000).map(|i| format!("k{i}={i}")).collect();
        raw.push("k7=x".into());
        raw.push("k7=y".into());
        let raw = raw.join("&");
        let params = [(Arc::from("id"), "1".to_string()), (Arc::from("id"), "2".to_string())];
        let mut p = parts(&h, &body, &params);
        p.raw_query = &raw;
        let bytes = build_event(PayloadFormat::V2, &p);
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(
            text.contains(r#""pathParameters":{"id":"2"}"#),
            "one key per name: {}",
            &text[text.len() - 300..]
        );
        let e: Value = serde_json::from_slice(&bytes).unwrap();
        let q = e["queryStringParameters"].as_object().unwrap();
        assert_eq!(q.len(), 5000);
        assert_eq!(q["k7"], "7,x,y");
        assert_eq!(q["k4999"], "4999");
        assert_eq!(e["pathParameters"], json!({"id": "2"}));
        assert!(e.get("body").is_none(), "no body field for an empty body");
        assert_eq!(e["isBase64Encoded"], false);
    }

    #[test]
    fn v1_event_has_the_rest_shape_and_binary_is_base64() {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("image/png"));
        let body = Bytes::from_static(&[0x89, 0x50, 0x4e, 0x47]);
        let e: Value = serde_json::from_slice(&build_event(PayloadFormat::V1, &parts(&h, &body, &[]))).unwrap();
        assert_eq!(e["httpMethod"], "POST");
        assert_eq!(e["resource"], "/users/{id}");
        assert_eq!(e["queryStringParameters"]["a"], "2");
        assert_eq!(e["multiValueQueryStringParameters"]["a"], json!(["1", "2"]));
        assert_eq!(e["multiValueHeaders"]["content-type"], json!(["image/png"]));
        assert_eq!(e["pathParameters"], Value::Null);
        assert_eq!(e["isBase64Encoded"], true);
        assert_eq!(e["body"], "iVBORw==");
    }

    #[test]
    fn response_forms() {
        let r = parse_response(PayloadFormat::V2, br#"{"statusCode":201,"headers":{"x-a":"1","x-n":2},"multiValueHeaders":{"x-m":["a","b"]},"cookies":["c=1","d=2"],"body":"hi"}"#).unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.headers["x-n"], "2");
        assert_eq!(r.headers.get_all("x-m").iter().count(), 2);
        assert_eq!(r.headers.get_all("set-cookie").iter().count(), 2);
        assert_eq!(r.body, "hi");
        let r = parse_response(
            PayloadFormat::V2,
            br#"{"statusCode":200,"isBase64Encoded":true,"body":"aGk=","headers":{"content-type":"text/plain"}}"#,
        )
        .unwrap();
        assert_eq!(r.body, "hi");
        assert_eq!(r.headers["content-type"], "text/plain");
        // 2.0: plain object and plain string mean 200 JSON.
        let r = parse_response(PayloadFormat::V2, br#"{"hello":"world"}"#).unwrap();
        assert_eq!((r.status.as_u16(), &r.body[..]), (200, &br#"{"hello":"world"}"#[..]));
        assert_eq!(r.headers["content-type"], "application/json");
        let r = parse_response(PayloadFormat::V2, br#""Hello from Lambda!""#).unwrap();
        assert_eq!(r.body, "Hello from Lambda!");
        // 1.0 needs statusCode; neither version takes non-JSON or a non-string body.
        assert!(matches!(
            parse_response(PayloadFormat::V1, br#"{"a":1}"#),
            Err(ResponseError::NoStatusCode)
        ));
        assert!(matches!(
            parse_response(PayloadFormat::V2, b"not json"),
            Err(ResponseError::NotJson)
        ));
        assert!(matches!(
            parse_response(PayloadFormat::V2, br#"{"statusCode":200,"body":{"a":1}}"#),
            Err(ResponseError::BadField("body"))
        ));
        for bad in [99, 600, 700, 999] {
            let answer = format!(r#"{{"statusCode":{bad}}}"#);
            assert!(
                matches!(
                    parse_response(PayloadFormat::V2, answer.as_bytes()),
                    Err(ResponseError::NoStatusCode)
                ),
                "{bad}"
            );
        }
    }
}
