//! The checked-in OpenAPI document (`docs/openapi.json`) against the types it is generated
//! from: the snapshot fails when they differ (bless with `GUST_BLESS=1 cargo test -p gust-api
//! --test openapi`), and the document's operations must be exactly the endpoint table the
//! server routes through, so that no endpoint is served without its contract.

use gust_api::{Endpoint, Face};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn checked_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

const BLESS: &str = "GUST_BLESS=1 cargo test -p gust-api --test openapi";

fn blessing() -> bool {
    std::env::var("GUST_BLESS").is_ok_and(|v| v == "1")
}

#[test]
fn the_checked_in_document_is_what_the_types_generate() {
    let generated = gust_api::openapi();
    let path = checked_in();
    if blessing() {
        std::fs::write(&path, &generated).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let stored = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; generate it with `{BLESS}`", path.display()));
    if stored != generated {
        let line = stored
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| stored.lines().count().min(generated.lines().count()));
        let at = |text: &str| text.lines().nth(line).unwrap_or("<end of document>").to_string();
        panic!(
            "docs/openapi.json is not what the gust-api types generate (first difference at line {}):\n  \
             checked in: {}\n  generated:  {}\nIf the change to the contract is meant, bless it with `{BLESS}` \
             and commit docs/openapi.json.",
            line + 1,
            at(&stored),
            at(&generated),
        );
    }
}

/// `(METHOD, path)` of every operation in a document.
fn operations(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("the document has paths") {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "patch", "head", "options"].contains(&method.as_str()) {
                out.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn the_document_has_exactly_the_routed_endpoints() {
    // The checked-in file, not the generated one: a stale document fails here too (unless it
    // is being blessed, by the test above, at the same time).
    let text = if blessing() {
        gust_api::openapi()
    } else {
        std::fs::read_to_string(checked_in()).unwrap_or_else(|e| panic!("{e}; run `{BLESS}`"))
    };
    let doc: serde_json::Value = serde_json::from_str(&text).expect("docs/openapi.json is JSON");
    let documented = operations(&doc);
    let routed: BTreeSet<(String, String)> = Endpoint::ALL
        .iter()
        .map(|e| (e.method().to_string(), e.path().to_string()))
        .collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "served but not in docs/openapi.json: {undocumented:?}; documented but not served: {unrouted:?} \
         (run `{BLESS}`)"
    );
    // Every operator and Lambda endpoint says how it is authenticated; public ones need nothing.
    for e in Endpoint::ALL {
        let op = &doc["paths"][e.path()][e.method().to_ascii_lowercase()];
        let schemes: Vec<&str> = op["security"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_object()?.keys().next().map(String::as_str))
                    .collect()
            })
            .unwrap_or_default();
        let want: &[&str] = match e.face() {
            Face::Operator => &["operatorToken"],
            Face::Lambda => &["sigv4", "operatorToken"],
            Face::Public => &[],
        };
        assert_eq!(schemes, want, "{} {}", e.method(), e.path());
        for scheme in want {
            assert!(
                doc["components"]["securitySchemes"][scheme].is_object(),
                "{scheme} is not defined"
            );
        }
    }
}

#[test]
fn the_document_is_openapi_3_with_every_path_parameter_declared() {
    let doc: serde_json::Value = serde_json::from_str(&gust_api::openapi()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);
    for e in Endpoint::ALL {
        let op = &doc["paths"][e.path()][e.method().to_ascii_lowercase()];
        let declared: Vec<&str> = op["parameters"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(declared, e.path_params().collect::<Vec<_>>(), "{}", e.path());
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{}",
            e.path()
        );
    }
}
