//! The gateway's own answers: no route, wrong method, body too large, CORS, payload 1.0,
//! and the admin API's refusals (bad names, bad JSON, no token).

use crate::support::*;

const MANIFEST: &str = r#"
[app]
name = "gw"

[functions.echo]
runtime = "nodejs20.x"
handler = "echo.handler"

[[routes]]
route = "GET /items/{id}"
function = "echo"

[[routes]]
route = "DELETE /items/{id}"
function = "echo"

[[routes]]
route = "POST /items"
function = "echo"

[[routes]]
route = "ANY /rest/{proxy+}"
function = "echo"
payload = "1.0"

[cors]
allow_origins = ["https://shop.example"]
max_age = 600
"#;

const ECHO: &str = r#"
exports.handler = async (event) => ({
  statusCode: 200,
  headers: { "content-type": "application/json" },
  multiValueHeaders: { "x-multi": ["a", "b"] },
  cookies: ["session=1; Path=/"],
  body: JSON.stringify(event),
});
"#;

async fn app() -> TestApp {
    TestApp::start(&[("gust.toml", MANIFEST), ("echo.js", ECHO)]).await
}

#[tokio::test]
async fn unknown_route_404_and_wrong_method_405_with_allow() {
    let app = app().await;
    let r = app.get("/nothing/here").await;
    assert_eq!(r.status(), 404);
    let v = json(&r.text().await.unwrap());
    assert_eq!(v["error"]["code"], "RouteNotFound");
    assert!(v["error"]["request_id"].as_str().is_some_and(|s| !s.is_empty()));

    let r = app.client.put(app.url("/items/1")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    // HEAD is answered by the GET route.
    assert_eq!(r.headers()["allow"], "DELETE, GET, HEAD");
    assert_eq!(json(&r.text().await.unwrap())["error"]["code"], "MethodNotAllowed");
    app.stop().await;
}

#[tokio::test]
async fn body_over_the_limit_is_413_before_reading_it() {
    let app = app().await;
    let big = vec![b'a'; 6 * 1024 * 1024 + 1];
    let r = app.client.post(app.url("/items")).body(big).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(json(&r.text().await.unwrap())["error"]["code"], "PayloadTooLarge");
    // Chunked (no Content-Length) is cut off while streaming.
    assert_eq!(chunked_upload_status(app.platform().gateway_addr, 7).await, 413);
    // Just under the limit is fine.
    let ok = vec![b'c'; 1024 * 1024];
    let r = app
        .client
        .post(app.url("/items"))
        .header("content-type", "text/plain")
        .body(ok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
}

/// Sends `mib` MiB as a chunked request over a raw socket and returns the status code.
async fn chunked_upload_status(addr: std::net::SocketAddr, mib: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /items HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = vec![b'b'; 1024 * 1024];
    for _ in 0..mib {
        // The server may answer and close before everything is sent.
        if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.is_err()
            || s.write_all(&chunk).await.is_err()
            || s.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    head.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn payload_v2_and_response_forms_reach_the_client() {
    let app = app().await;
    let r = app
        .client
        .get(app.url("/items/a%20b?x=1&x=2"))
        .header("cookie", "c1=v1; c2=v2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get_all("x-multi").iter().count(), 2);
    assert_eq!(r.headers()["set-cookie"], "session=1; Path=/");
    let e = json(&r.text().await.unwrap());
    assert_eq!(e["version"], "2.0");
    assert_eq!(e["routeKey"], "GET /items/{id}");
    assert_eq!(e["pathParameters"]["id"], "a b");
    assert_eq!(e["queryStringParameters"]["x"], "1,2");
    assert_eq!(e["cookies"], serde_json::json!(["c1=v1", "c2=v2"]));
    assert_eq!(e["requestContext"]["http"]["sourceIp"], "127.0.0.1");

    let r = app
        .client
        .patch(app.url("/rest/a/b?k=v"))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let e = json(&r.text().await.unwrap());
    assert_eq!(e["version"], "1.0");
    assert_eq!(e["httpMethod"], "PATCH");
    assert_eq!(e["resource"], "/rest/{proxy+}");
    assert_eq!(e["pathParameters"]["proxy"], "a/b");
    assert_eq!(e["multiValueQueryStringParameters"]["k"], serde_json::json!(["v"]));
    assert_eq!(e["body"], "hello");
    app.stop().await;
}

#[tokio::test]
async fn cors_preflight_and_headers() {
    let app = app().await;
    let r = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/items/1"))
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "DELETE")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["access-control-allow-origin"], "https://shop.example");
    assert_eq!(r.headers()["access-control-max-age"], "600");
    assert!(r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("DELETE"));
    let r = app
        .client
        .get(app.url("/items/1"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = app
        .client
        .get(app.url("/items/1"))
        .header("origin", "https://shop.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "https://shop.example");
    app.stop().await;
}

#[tokio::test]
async fn admin_api_refuses_bad_names_bad_json_and_missing_tokens() {
    let app = app().await;
    for name in ["..%2F..%2Fetc%2Fpasswd", "%00echo", "echo%20x", "ECHO.."] {
        let (status, _, body) = app.invoke(name, "{}").await;
        assert_eq!(status, 404, "{name}: {body}");
    }
    let r = app
        .op(reqwest::Method::POST, "/2015-03-31/functions/../invocations")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    let (status, _, body) = app.invoke("echo", "{not json").await;
    assert_eq!(status, 400, "{body}");
    let r = app
        .op(reqwest::Method::POST, "/2015-03-31/functions/echo/invocations")
        .header("x-amz-invocation-type", "DryRun")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // A full ARN works as the name, as with Lambda.
    let (status, fe, _) = app
        .invoke("arn:aws:lambda:us-east-1:000000000000:function:echo", "{}")
        .await;
    assert_eq!((status, fe), (200, None));
    // The platform API needs the function's token.
    let r = app.client.get(app.admin("/gust/v1/kv/x")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .client
        .get(app.admin("/gust/v1/kv/x"))
        .bearer_auth("forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn oversized_request_head_is_refused_with_431() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = app().await;
    let mut s = tokio::net::TcpStream::connect(app.platform().gateway_addr)
        .await
        .unwrap();
    let big = "a".repeat(100 * 1024);
    let req = format!("GET /items/1 HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n");
    let _ = s.write_all(req.as_bytes()).await;
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
    // The gateway still serves others.
    assert_eq!(app.get("/items/1").await.status(), 200);
    app.stop().await;
}
