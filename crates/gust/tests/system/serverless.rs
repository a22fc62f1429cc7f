//! A Serverless Framework v3 project runs unmodified: `http` (REST, payload 1.0) and
//! `httpApi` (payload 2.0) events are served, and unsupported keys produce one warning.

use crate::support::*;

const SERVERLESS_YML: &str = r#"
service: legacy-api
frameworkVersion: '3'
plugins:
  - serverless-offline
provider:
  name: aws
  runtime: nodejs20.x
  stage: dev
  environment:
    GREETING: hello
  iam:
    role:
      statements:
        - Effect: Allow
          Action: dynamodb:*
          Resource: '*'
functions:
  restHello:
    handler: handler.rest
    events:
      - http:
          path: hello/{name}
          method: get
  apiHello:
    handler: handler.api
    events:
      - httpApi:
          method: POST
          path: /api/{proxy+}
  pyCatchAll:
    handler: py_handler.main
    runtime: python3.11
    events:
      - httpApi: '*'
      - schedule: rate(5 minutes)
resources:
  Resources:
    UsersTable:
      Type: AWS::DynamoDB::Table
      Properties:
        AttributeDefinitions: [{ AttributeName: id, AttributeType: S }]
        KeySchema: [{ AttributeName: id, KeyType: HASH }]
    Alerts:
      Type: AWS::SNS::Topic
"#;

const HANDLER: &str = r#"
module.exports.rest = async (event) => ({
  statusCode: 200,
  body: JSON.stringify({ greeting: process.env.GREETING, name: event.pathParameters.name, version: event.version, resource: event.resource }),
});
module.exports.api = async (event) => ({ proxy: event.pathParameters.proxy, version: event.version, body: event.body });
"#;

#[tokio::test]
async fn serverless_yml_http_and_http_api_events_are_served() {
    let app = TestApp::start(&[
        ("serverless.yml", SERVERLESS_YML),
        ("handler.js", HANDLER),
        (
            "py_handler.py",
            "def main(event, context):\n    return {'statusCode': 418, 'body': event['rawPath']}\n",
        ),
    ])
    .await;
    let r = app.get("/hello/ann").await;
    assert_eq!(r.status(), 200);
    let v = json(&r.text().await.unwrap());
    assert_eq!(v["greeting"], "hello");
    assert_eq!(v["name"], "ann");
    assert_eq!(v["version"], "1.0");
    assert_eq!(v["resource"], "/hello/{name}");

    let r = app.post("/api/a/b", r#"{"k":1}"#).await;
    assert_eq!(r.status(), 200);
    let v = json(&r.text().await.unwrap());
    assert_eq!(v["proxy"], "a/b");
    assert_eq!(v["version"], "2.0");
    assert_eq!(v["body"], r#"{"k":1}"#);

    let r = app.client.delete(app.url("/anything/else")).send().await.unwrap();
    assert_eq!(r.status(), 418);
    assert_eq!(r.text().await.unwrap(), "/anything/else");

    let platform_app = app.platform().app();
    let schedules = &platform_app.schedules;
    assert_eq!(schedules.len(), 1);
    assert_eq!(schedules[0].expression, "rate(5 minutes)");
    assert_eq!(schedules[0].function.as_str(), "pyCatchAll");
    let warnings = &app.platform().warnings;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    for key in ["plugins", "resources.Resources.Alerts (AWS::SNS::Topic)"] {
        assert!(warnings[0].contains(key), "{key} not in {}", warnings[0]);
    }
    app.stop().await;
}

#[tokio::test]
async fn manifest_errors_name_file_key_and_problem() {
    let dir = write_app(&[(
        "serverless.yml",
        "service: x\nprovider:\n  name: aws\nfunctions:\n  f:\n    handler: h.h\n    runtime: ruby3.2\n",
    )]);
    let mut config = gust::PlatformConfig::new(dir.path());
    config.gateway_addr = "127.0.0.1:0".parse().unwrap();
    config.admin_addr = "127.0.0.1:0".parse().unwrap();
    let err = gust::Platform::start(config).await.unwrap_err().to_string();
    assert!(err.contains("serverless.yml"), "{err}");
    assert!(err.contains("functions.f.runtime"), "{err}");
    assert!(err.contains("ruby3.2"), "{err}");

    // The CLI says the same and exits non-zero.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gust"))
        .args(["validate", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("functions.f.runtime"));
}

#[tokio::test]
async fn stages_overlay_the_manifest() {
    let dir = write_app(&[
        (
            "gust.toml",
            r#"
[app]
name = "staged"
environment = { LEVEL = "debug", SHARED = "all" }

[functions.show]
runtime = "nodejs20.x"
handler = "s.handler"
timeout = 3

[stages.prod.app]
environment = { LEVEL = "warn" }

[stages.prod.functions.show]
timeout = 7
"#,
        ),
        ("s.js", "exports.handler = async () => ({ level: process.env.LEVEL, shared: process.env.SHARED, stage: process.env.GUST_STAGE });"),
    ]);
    let app = TestApp::start_configured(dir, |c| c.stage = Some("prod".into())).await;
    assert_eq!(app.platform().app().stage, "prod");
    let spec = app.platform().invoker.spec("show").unwrap();
    assert_eq!(spec.timeout, std::time::Duration::from_secs(7));
    let (_, _, body) = app.invoke("show", "{}").await;
    let v = json(&body);
    assert_eq!(
        (v["level"].as_str(), v["shared"].as_str(), v["stage"].as_str()),
        (Some("warn"), Some("all"), Some("prod"))
    );
    app.stop().await;

    // An unknown stage is refused with the file and the known stages.
    let dir = write_app(&[(
        "gust.toml",
        "[app]\nname = \"s\"\n[stages.prod.app]\nenvironment = { A = \"1\" }\n",
    )]);
    let mut config = gust::PlatformConfig::new(dir.path());
    config.gateway_addr = "127.0.0.1:0".parse().unwrap();
    config.admin_addr = "127.0.0.1:0".parse().unwrap();
    config.stage = Some("prdo".into());
    let err = gust::Platform::start(config).await.unwrap_err().to_string();
    assert!(
        err.contains("gust.toml") && err.contains("prdo") && err.contains("prod"),
        "{err}"
    );
}

#[tokio::test]
async fn one_gust_per_state_directory() {
    let app = TestApp::start(&[(
        "gust.toml",
        "[app]\nname = \"solo\"\n[functions.f]\nruntime = \"nodejs20.x\"\nhandler = \"f.handler\"\n",
    )])
    .await;
    let mut config = gust::PlatformConfig::new(app.dir.path());
    config.gateway_addr = "127.0.0.1:0".parse().unwrap();
    config.admin_addr = "127.0.0.1:0".parse().unwrap();
    let err = gust::Platform::start(config).await.unwrap_err().to_string();
    assert!(err.contains("another Gust is running"), "{err}");
    // After a stop the directory is free again.
    let clock = gust_scheduler::ManualClock::new(chrono::Utc::now());
    let app = app.restart_with_clock(clock).await;
    app.stop().await;
}
