//! What SigV4 verification costs an Invoke on the Lambda API: the header checks, the key
//! derivation and the signature over a small and a 256 KiB body (`cargo bench -p gust-gateway
//! --bench sigv4`).

use criterion::{criterion_group, criterion_main, Criterion};
use gust_gateway::sigv4::{check_head, sign, RequestHead};
use http::{HeaderMap, HeaderValue};
use std::hint::black_box;

const SECRET: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCD";
const PATH: &str = "/2015-03-31/functions/get-user/invocations";

fn signed(body: &[u8]) -> HeaderMap {
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("127.0.0.1:8081"));
    h.insert("x-amz-date", HeaderValue::from_str(&now).unwrap());
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("x-amz-invocation-type", HeaderValue::from_static("RequestResponse"));
    let head = RequestHead {
        method: "POST",
        path: PATH,
        query: None,
        headers: &h,
    };
    let auth = sign(SECRET, "GKIAEXAMPLEEXAMPLE00", "us-east-1", "lambda", head, body);
    h.insert(http::header::AUTHORIZATION, HeaderValue::from_str(&auth).unwrap());
    h
}

fn verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("sigv4_verify");
    for (name, body) in [("small_body", vec![b'x'; 64]), ("body_256k", vec![b'x'; 256 * 1024])] {
        let headers = signed(&body);
        group.bench_function(name, |b| {
            b.iter(|| {
                let head = RequestHead {
                    method: "POST",
                    path: PATH,
                    query: None,
                    headers: &headers,
                };
                let pending = check_head(head, "lambda", chrono::Utc::now(), |_| Some(SECRET)).unwrap();
                black_box(pending.verify(black_box(&body)).unwrap())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
