//! Micro-benchmarks of the gateway's per-request work: route lookup (1 and 1,000 routes),
//! API Gateway event building (2.0 and 1.0, and 2.0 with the largest query string a request
//! head allows) and proxy response parsing.
//!
//! Run: `cargo bench -p gust-gateway --bench hot_path`

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use gust_gateway::routes::RouteTable;
use gust_gateway::{build_event, parse_response, RequestParts};
use gust_model::{FunctionName, PayloadFormat, RouteKey, RouteSpec, RouteTarget};
use http::{HeaderMap, HeaderValue};
use std::hint::black_box;
use std::sync::Arc;

fn table(n: usize) -> RouteTable {
    let specs: Vec<RouteSpec> = (0..n)
        .map(|i| RouteSpec {
            key: RouteKey::parse(&format!("GET /svc{i}/items/{{id}}")).unwrap(),
            target: RouteTarget::Function {
                function: FunctionName::new(format!("f{i}")).unwrap(),
                payload: PayloadFormat::V2,
            },
            auth: Default::default(),
        })
        .collect();
    RouteTable::new(&specs)
}

fn routes(c: &mut Criterion) {
    let one = table(1);
    let thousand = table(1000);
    c.bench_function("route lookup, 1 route", |b| {
        b.iter(|| black_box(one.lookup("GET", black_box("/svc0/items/42"))))
    });
    c.bench_function("route lookup, 1000 routes", |b| {
        b.iter(|| black_box(thousand.lookup("GET", black_box("/svc777/items/42"))))
    });
}

fn payloads(c: &mut Criterion) {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("user-agent", HeaderValue::from_static("bench/1.0"));
    headers.insert("accept", HeaderValue::from_static("*/*"));
    let body = Bytes::from_static(br#"{"email":"a@b.c","name":"Ann"}"#);
    let params = [(Arc::from("id"), "42".to_string())];
    let parts = RequestParts {
        method: "POST",
        raw_path: "/users/42",
        raw_query: "a=1&b=2",
        headers: &headers,
        body: &body,
        route_key: "POST /users/{id}",
        resource: "/users/{id}",
        path_params: &params,
        request_id: "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        remote: "127.0.0.1:5000".parse().unwrap(),
        host: "localhost",
        time_epoch_ms: 1_583_348_638_390,
        authorizer: None,
        header_case: None,
    };
    c.bench_function("build event, payload 2.0", |b| {
        b.iter(|| black_box(build_event(PayloadFormat::V2, black_box(&parts))))
    });
    c.bench_function("build event, payload 1.0", |b| {
        b.iter(|| black_box(build_event(PayloadFormat::V1, black_box(&parts))))
    });
    // The largest query string a 64 KiB request head allows, about 11,000 distinct keys: what
    // one anonymous request can make the gateway do.
    let big_query: String = (0..11_000).map(|i| format!("k{i}=1")).collect::<Vec<_>>().join("&");
    let big = RequestParts {
        raw_query: &big_query,
        ..parts
    };
    c.bench_function("build event, payload 2.0, 11,000 query keys", |b| {
        b.iter(|| black_box(build_event(PayloadFormat::V2, black_box(&big))))
    });
    let response = br#"{"statusCode":201,"headers":{"content-type":"application/json","location":"/users/42"},"body":"{\"id\":\"42\"}"}"#;
    c.bench_function("parse proxy response", |b| {
        b.iter(|| black_box(parse_response(PayloadFormat::V2, black_box(response)).unwrap()))
    });
}

criterion_group!(benches, routes, payloads);
criterion_main!(benches);
