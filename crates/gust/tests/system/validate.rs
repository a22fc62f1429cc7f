//! `gust validate` checks that each handler is where its runtime will look for it, and prints
//! what the app holds on stdout.

use crate::support::*;

fn validate_args(dir: &std::path::Path) -> Vec<String> {
    vec!["validate".into(), dir.display().to_string()]
}

#[tokio::test]
async fn validate_finds_missing_handlers_and_names_file_and_key() {
    let dir = write_app(&[
        (
            "serverless.yml",
            "service: v\nprovider:\n  name: aws\n  runtime: nodejs20.x\nfunctions:\n  good:\n    handler: src/users.create\n  noExport:\n    handler: src/users.remove\n  noFile:\n    handler: src/missing.handler\n  py:\n    runtime: python3.12\n    handler: pkg.mod.main\n  prov:\n    runtime: provided.al2023\n",
        ),
        ("src/users.js", "exports.create = async () => ({ statusCode: 200 });\n"),
    ]);
    let out = gust_cli(validate_args(dir.path()), Vec::new()).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "serverless.yml: `functions.noExport.handler`: ",
        "does not export `remove`",
        "`functions.noFile.handler`: no module `src/missing`",
        "`functions.py.handler`: no module `pkg.mod`",
        "`functions.prov.handler`: ",
        "bootstrap does not exist",
        "4 handler(s) would not be found",
    ] {
        assert!(err.contains(needle), "`{needle}` missing from:\n{err}");
    }
    assert!(!err.contains("functions.good.handler"), "{err}");
}

#[tokio::test]
async fn validate_prints_what_it_found_on_stdout() {
    let dir = write_app(&[
        (
            "serverless.yml",
            r#"
service: shop
provider:
  name: aws
  runtime: nodejs20.x
functions:
  api:
    handler: api.handler
    events:
      - httpApi: 'GET /items'
      - schedule: rate(1 hour)
  esm:
    handler: esm.handler
  worker:
    runtime: python3.12
    handler: worker.main
    events:
      - sqs: arn:aws:sqs:us-east-1:1:jobs
"#,
        ),
        ("api.js", "exports.handler = async () => ({});\n"),
        ("esm.mjs", "export const handler = async () => ({});\n"),
        ("worker.py", "def main(event, context):\n    return None\n"),
    ]);
    let out = gust_cli(validate_args(dir.path()), Vec::new()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "app `shop` (stage `dev`) is valid",
        "function api",
        "route    GET /items",
        "topic    jobs",
        "subscription worker.jobs",
        "schedule api-schedule-1",
        "exports `handler` (a function)",
        "esm.mjs exports `handler`",
        "worker.py defines `main`",
    ] {
        assert!(stdout.contains(needle), "`{needle}` missing from:\n{stdout}");
    }
}
