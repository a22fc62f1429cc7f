//! Stages and `${...}` variables, through the public `parse`/`load_with` (both formats).

use crate::{load_with, parse, FunctionName, LoadOptions, Loaded, ManifestError, RouteTarget};
use std::path::Path;
use std::time::Duration;

fn yml(text: &str, options: &LoadOptions) -> Result<Loaded, ManifestError> {
    parse(Path::new("/svc/serverless.yml"), text, Path::new("/svc"), options)
}

fn toml(text: &str, options: &LoadOptions) -> Result<Loaded, ManifestError> {
    parse(Path::new("/app/gust.toml"), text, Path::new("/app"), options)
}

fn env(pairs: &[(&str, &str)]) -> LoadOptions {
    LoadOptions::from_env_map(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

fn no_env() -> LoadOptions {
    env(&[])
}

fn f<'a>(l: &'a Loaded, name: &str) -> &'a crate::FunctionSpec {
    &l.app.functions[&FunctionName::new(name).unwrap()]
}

/// A serverless.yml with one function `f`; `provider` and `extra` are inserted as written.
fn sls(provider: &str, function: &str, extra: &str) -> String {
    format!(
        "service: svc\nprovider:\n  name: aws\n  runtime: nodejs20.x\n{provider}functions:\n  f:\n    handler: h.handler\n{function}{extra}"
    )
}

// ---------------------------------------------------------------- serverless.yml variables

#[test]
fn env_variables_and_their_defaults() {
    let text = sls(
        "  environment:\n    DB_URL: ${env:DB_URL}\n    BARE: ${env:NOPE, fallback}\n    SINGLE: ${env:NOPE, 'a b, c'}\n    DOUBLE: ${env:NOPE, \"x}y\"}\n    EMBED: db=${env:DB_URL};bare=${env:NOPE, z}\n    EMPTY: ${env:EMPTY, 'unused'}\n",
        "",
        "",
    );
    let l = yml(&text, &env(&[("DB_URL", "postgres://db/app"), ("EMPTY", "")])).unwrap();
    let e = &f(&l, "f").environment;
    assert_eq!(e["DB_URL"], "postgres://db/app");
    assert_eq!(e["BARE"], "fallback");
    assert_eq!(e["SINGLE"], "a b, c");
    assert_eq!(e["DOUBLE"], "x}y");
    assert_eq!(e["EMBED"], "db=postgres://db/app;bare=z");
    assert_eq!(e["EMPTY"], "", "a variable set to the empty string is set");
    assert!(
        l.warnings.is_empty(),
        "no more `not resolved yet` warning: {:?}",
        l.warnings
    );
}

#[test]
fn an_unset_environment_variable_names_file_key_variable_and_reason() {
    let text = sls("  environment:\n    DB_URL: ${env:DB_URL}\n", "", "");
    let e = yml(&text, &no_env()).unwrap_err();
    assert_eq!(e.key, "provider.environment.DB_URL");
    assert_eq!(
        e.to_string(),
        "/svc/serverless.yml: `provider.environment.DB_URL`: cannot resolve ${env:DB_URL}: the environment variable is not set"
    );

    // Every fallback is named when none resolves.
    let text = sls("", "    environment:\n      X: ${env:A, env:B}\n", "");
    let e = yml(&text, &no_env()).unwrap_err();
    assert_eq!(e.key, "functions.f.environment.X");
    assert_eq!(
        e.message,
        "cannot resolve ${env:A, env:B}: `env:A`: the environment variable is not set; `env:B`: the environment variable is not set"
    );
}

#[test]
fn self_references_resolve_recursively_with_their_type() {
    let text = sls(
        "  memorySize: ${self:custom.memory}\n  timeout: ${env:TIMEOUT, 10}\n  environment: ${self:custom.env}\n  httpApi:\n    cors: ${self:custom.cors}\n",
        "    reservedConcurrency: ${self:custom.limits.1}\n    events:\n      - httpApi: ${self:custom.route}\n",
        "custom:\n  memory: 512\n  cors: true\n  limits: [1, 7]\n  table: ${self:service}-${sls:stage}-users\n  route:\n    method: GET\n    path: /users\n  env:\n    TABLE: ${self:custom.table}\n    LABEL: ${self:custom.memory}MB\n    ON: ${self:custom.cors}\n",
    );
    let l = yml(&text, &no_env()).unwrap();
    let fun = f(&l, "f");
    assert_eq!(fun.memory_mb, 512, "a number through ${{self:...}}");
    assert_eq!(fun.timeout, Duration::from_secs(10), "a bare number default");
    assert_eq!(fun.scaling.max_instances, 7, "a list index in the path");
    assert_eq!(fun.environment["TABLE"], "svc-dev-users", "resolved recursively");
    assert_eq!(fun.environment["LABEL"], "512MB", "a number interpolated as text");
    assert_eq!(fun.environment["ON"], "true");
    assert!(l.app.cors.is_some(), "a boolean through ${{self:...}}");
    assert_eq!(
        l.app.routes[0].key.to_string(),
        "GET /users",
        "a mapping through ${{self:...}}"
    );
}

#[test]
fn self_errors_name_the_missing_path_and_the_inner_variable() {
    let text = sls("  environment:\n    T: ${self:custom.nope}\n", "", "");
    let e = yml(&text, &no_env()).unwrap_err();
    assert_eq!(e.key, "provider.environment.T");
    assert_eq!(
        e.message,
        "cannot resolve ${self:custom.nope}: serverless.yml has no `custom.nope`"
    );

    let text = sls(
        "  environment:\n    T: ${self:custom.db}\n",
        "",
        "custom:\n  db: ${env:DB_URL}\n",
    );
    let e = yml(&text, &no_env()).unwrap_err();
    assert_eq!(e.key, "provider.environment.T");
    assert_eq!(
        e.message,
        "cannot resolve ${self:custom.db}: `custom.db`: cannot resolve ${env:DB_URL}: the environment variable is not set"
    );

    // A mapping cannot be part of a longer string.
    let text = sls(
        "  environment:\n    T: x-${self:custom.m}\n",
        "",
        "custom:\n  m: {a: 1}\n",
    );
    let e = yml(&text, &no_env()).unwrap_err();
    assert!(
        e.message
            .contains("resolves to a mapping, which cannot be part of a longer string"),
        "{e}"
    );
}

#[test]
fn cycles_are_errors_not_hangs() {
    let text = sls(
        "  environment:\n    A: ${self:custom.a}\n",
        "",
        "custom:\n  a: ${self:custom.b}\n  b: x-${self:custom.a}\n",
    );
    let e = yml(&text, &no_env()).unwrap_err();
    assert_eq!(e.key, "provider.environment.A");
    assert_eq!(
        e.message,
        "cannot resolve ${self:custom.a}: circular reference: `custom.a` -> `custom.b` -> `custom.a`"
    );

    // A value referring to itself, and a mapping containing a reference to itself.
    let text = sls("  environment:\n    A: ${self:provider.environment.A}\n", "", "");
    let e = yml(&text, &no_env()).unwrap_err();
    assert!(e.message.contains("circular reference"), "{e}");
    let text = sls(
        "",
        "    events:\n      - schedule:\n          rate: rate(1 hour)\n          input: ${self:custom.box}\n",
        "custom:\n  box:\n    inner: ${self:custom.box}\n",
    );
    let e = yml(&text, &no_env()).unwrap_err();
    assert_eq!(e.key, "functions.f.events[0].schedule.input");
    assert!(
        e.message
            .contains("circular reference: `custom.box` -> `custom.box.inner` -> `custom.box`"),
        "{e}"
    );
}

#[test]
fn stage_comes_from_the_option_then_provider_stage_then_dev() {
    let text = sls("  environment:\n    S: ${sls:stage}\n    O: ${opt:stage}\n", "", "");
    let l = yml(&text, &no_env()).unwrap();
    assert_eq!(l.app.stage, "dev");
    assert_eq!(f(&l, "f").environment["S"], "dev");
    assert_eq!(f(&l, "f").environment["O"], "dev");
    assert_eq!(f(&l, "f").environment["GUST_STAGE"], "dev");

    let with_provider = sls("  stage: staging\n  environment:\n    S: ${sls:stage}\n", "", "");
    let l = yml(&with_provider, &no_env()).unwrap();
    assert_eq!(
        (l.app.stage.as_str(), f(&l, "f").environment["S"].as_str()),
        ("staging", "staging")
    );

    let l = yml(&with_provider, &no_env().with_stage("prod")).unwrap();
    assert_eq!(l.app.stage, "prod", "--stage wins over provider.stage");
    assert_eq!(f(&l, "f").environment["S"], "prod");
    assert_eq!(f(&l, "f").environment["GUST_STAGE"], "prod");
}

#[test]
fn the_usual_fallback_patterns() {
    let text = sls(
        "  stage: ${opt:stage, 'dev'}\n  region: ${opt:region, self:custom.region, 'us-east-1'}\n  environment:\n    STAGE: ${opt:stage, self:provider.stage, 'dev'}\n    TABLE: users-${self:provider.stage}\n    DB: ${env:${sls:stage}_DB, 'sqlite'}\n    CONF: ${self:custom.${sls:stage}.level}\n    CONF2: ${self:custom.current.level}\n",
        "",
        "custom:\n  current: ${self:custom.${sls:stage}}\n  region: eu-central-1\n  dev:\n    level: debug\n  prod:\n    level: warn\n",
    );
    let l = yml(&text, &env(&[("prod_DB", "postgres://prod")])).unwrap();
    assert_eq!(l.app.stage, "dev");
    assert_eq!(l.app.region, "eu-central-1", "no --region: the next fallback");
    let e = &f(&l, "f").environment;
    assert_eq!(
        (
            e["STAGE"].as_str(),
            e["TABLE"].as_str(),
            e["DB"].as_str(),
            e["CONF"].as_str()
        ),
        ("dev", "users-dev", "sqlite", "debug")
    );
    assert_eq!(
        e["CONF2"], "debug",
        "a variable met on the way along a path is resolved"
    );

    let l = yml(&text, &env(&[("prod_DB", "postgres://prod")]).with_stage("prod")).unwrap();
    let e = &f(&l, "f").environment;
    assert_eq!(
        (
            e["STAGE"].as_str(),
            e["TABLE"].as_str(),
            e["DB"].as_str(),
            e["CONF"].as_str()
        ),
        ("prod", "users-prod", "postgres://prod", "warn")
    );

    // `${opt:region}` alone: Gust has no such option.
    let e = yml(&sls("  region: ${opt:region}\n", "", ""), &no_env()).unwrap_err();
    assert_eq!(e.key, "provider.region");
    assert_eq!(
        e.message,
        "cannot resolve ${opt:region}: Gust has no `--region` option (it takes only --stage)"
    );

    // provider.stage cannot be defined by the stage.
    let e = yml(&sls("  stage: ${sls:stage}\n", "", ""), &no_env()).unwrap_err();
    assert_eq!(e.key, "provider.stage");
    assert!(e.message.contains("cannot use ${sls:stage}"), "{e}");
    // ... but `--stage` decides it without reading provider.stage at all.
    assert_eq!(
        yml(&sls("  stage: ${sls:stage}\n", "", ""), &no_env().with_stage("qa"))
            .unwrap()
            .app
            .stage,
        "qa"
    );
}

#[test]
fn fallbacks_are_tried_in_order_and_only_as_needed() {
    let text = sls("  environment:\n    A: ${env:X, ssm:/never/read}\n", "", "");
    let l = yml(&text, &env(&[("X", "from-env")])).unwrap();
    assert_eq!(f(&l, "f").environment["A"], "from-env", "the first that resolves wins");
    let e = yml(&text, &no_env()).unwrap_err();
    assert_eq!(e.key, "provider.environment.A");
    assert!(
        e.message.contains("the `ssm` variable source is not supported by Gust"),
        "{e}"
    );

    // A literal URL is a literal; an unknown `word:` is not silently taken as text.
    let text = sls("  environment:\n    A: ${env:X, postgres://localhost/db}\n", "", "");
    assert_eq!(
        f(&yml(&text, &no_env()).unwrap(), "f").environment["A"],
        "postgres://localhost/db"
    );
    let text = sls("  environment:\n    A: ${env:X, localhost:5432}\n", "", "");
    let e = yml(&text, &no_env()).unwrap_err();
    assert!(
        e.message
            .contains("unknown variable source `localhost`: quote a literal fallback"),
        "{e}"
    );
}

#[test]
fn unsupported_sources_name_the_key_and_the_source() {
    for (var, source) in [
        ("${ssm:/app/db-url}", "ssm"),
        ("${file(./config.yml):db}", "file"),
        ("${cf:other-stack.Url}", "cf"),
        ("${param:dbUrl}", "param"),
        ("${s3:bucket/key}", "s3"),
    ] {
        let text = sls("", &format!("    environment:\n      DB: {var}\n"), "");
        let e = yml(&text, &no_env()).unwrap_err();
        assert_eq!(e.key, "functions.f.environment.DB", "{var}");
        assert_eq!(
            e.message,
            format!(
                "cannot resolve {var}: the `{source}` variable source is not supported by Gust (it resolves env, self, opt:stage, sls:stage, aws:accountId and aws:region)"
            )
        );
    }
    let e = yml(&sls("  environment:\n    A: ${vault:x}\n", "", ""), &no_env()).unwrap_err();
    assert!(e.message.contains("unknown variable source `vault`"), "{e}");
    let e = yml(&sls("  environment:\n    A: ${HOME}\n", "", ""), &no_env()).unwrap_err();
    assert!(e.message.contains("`HOME` names no variable source"), "{e}");
    let e = yml(&sls("  environment:\n    A: x${env:A\n", "", ""), &no_env()).unwrap_err();
    assert!(e.message.contains("the closing `}` is missing"), "{e}");
    let e = yml(&sls("  environment:\n    A: ${sls:instanceId}\n", "", ""), &no_env()).unwrap_err();
    assert!(e.message.contains("only `sls:stage`"), "{e}");
}

#[test]
fn keys_gust_ignores_are_not_resolved() {
    let text = sls(
        "  iam:\n    role:\n      managedPolicies:\n        - ${cf:policies.Arn}\n",
        "    layers:\n      - ${cf:layers.Arn}\n",
        "custom:\n  unused: ${ssm:/never}\nresources:\n  Outputs:\n    Url:\n      Value:\n        Fn::Sub: https://${ApiGateway}.execute-api.${AWS::Region}.amazonaws.com\n",
    );
    let l = yml(&text, &no_env()).unwrap();
    assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
    assert!(
        l.warnings[0].contains("provider.iam.role.managedPolicies"),
        "{:?}",
        l.warnings
    );
}

#[test]
fn scalars_from_the_environment_are_read_as_numbers_and_booleans() {
    let text = sls(
        "  memorySize: ${env:MEM}\n",
        "    events:\n      - schedule:\n          rate: ${env:RATE, 'rate(5 minutes)'}\n          enabled: ${env:ON}\n          input:\n            stage: ${sls:stage}\n            n: ${self:custom.n}\n",
        "custom:\n  n: 3\n",
    );
    let l = yml(&text, &env(&[("MEM", "256"), ("ON", "false")])).unwrap();
    assert_eq!(f(&l, "f").memory_mb, 256);
    let s = &l.app.schedules[0];
    assert_eq!(s.expression, "rate(5 minutes)");
    assert!(!s.enabled);
    assert_eq!(s.input, Some(serde_json::json!({"stage": "dev", "n": 3})));
}

#[test]
fn an_invalid_stage_name_is_refused() {
    let e = yml(&sls("", "", ""), &no_env().with_stage("../prod")).unwrap_err();
    assert!(e.message.contains("--stage: invalid stage name"), "{e}");
    let e = yml(&sls("  stage: 'a b'\n", "", ""), &no_env()).unwrap_err();
    assert_eq!(e.key, "provider.stage");
}

// ---------------------------------------------------------------- gust.toml stages

const STAGED: &str = r#"
[app]
name = "shop"
environment = { LOG_LEVEL = "debug", SHARED = "app" }

[functions.api]
runtime = "nodejs20.x"
handler = "api.handler"
memory = 256
timeout = 5
environment = { TABLE = "users" }
scaling = { max_instances = 4, max_queue = 7 }

[functions.worker]
runtime = "nodejs20.x"
handler = "worker.handler"

[stages.dev]

[stages.prod.app]
environment = { LOG_LEVEL = "warn", SENTRY = "on" }

[stages.prod.functions.api]
memory = 1024
timeout = 10
environment = { TABLE = "users-prod" }
scaling = { min_instances = 2, max_instances = 20 }
"#;

#[test]
fn a_stage_merges_over_the_base_manifest() {
    let l = toml(STAGED, &no_env().with_stage("prod")).unwrap();
    assert_eq!(l.app.stage, "prod");
    let api = f(&l, "api");
    assert_eq!(api.memory_mb, 1024);
    assert_eq!(api.timeout, Duration::from_secs(10));
    assert_eq!(
        (
            api.scaling.min_instances,
            api.scaling.max_instances,
            api.scaling.max_queue
        ),
        (2, 20, 7),
        "scaling keys not given keep the base value"
    );
    let e = &api.environment;
    assert_eq!(e["LOG_LEVEL"], "warn", "the stage's app environment wins");
    assert_eq!(e["SHARED"], "app", "and is merged, not replaced");
    assert_eq!(e["SENTRY"], "on");
    assert_eq!(e["TABLE"], "users-prod");
    assert_eq!(e["GUST_STAGE"], "prod");
    let worker = f(&l, "worker");
    assert_eq!(worker.environment["LOG_LEVEL"], "warn");
    assert_eq!(worker.environment["GUST_STAGE"], "prod");
    assert_eq!(worker.memory_mb, 128);

    let l = toml(STAGED, &no_env()).unwrap();
    assert_eq!(l.app.stage, "dev");
    let api = f(&l, "api");
    assert_eq!((api.memory_mb, api.environment["LOG_LEVEL"].as_str()), (256, "debug"));
    assert_eq!(api.environment["GUST_STAGE"], "dev");
    assert!(!api.environment.contains_key("SENTRY"));
}

#[test]
fn an_unknown_stage_names_the_file_the_key_and_the_known_stages() {
    let e = toml(STAGED, &no_env().with_stage("prdo")).unwrap_err();
    assert_eq!(e.key, "stages");
    assert_eq!(
        e.to_string(),
        "/app/gust.toml: `stages`: unknown stage `prdo`: the known stages are dev, prod (add a [stages.prdo] table)"
    );
    // `dev` is always known, and without any [stages] table every stage is fine.
    let base = "[app]\nname = \"a\"\n[functions.f]\nruntime = \"nodejs20.x\"\nhandler = \"h.h\"\n";
    let only_prod = format!("{base}[stages.prod]\n");
    assert_eq!(toml(&only_prod, &no_env()).unwrap().app.stage, "dev");
    let e = toml(&only_prod, &no_env().with_stage("qa")).unwrap_err();
    assert!(e.message.contains("the known stages are dev, prod"), "{e}");
    let l = toml(base, &no_env().with_stage("qa")).unwrap();
    assert_eq!(l.app.stage, "qa");
    assert_eq!(f(&l, "f").environment["GUST_STAGE"], "qa");
}

#[test]
fn stage_tables_are_strict_and_checked() {
    let base = "[app]\nname = \"a\"\n[functions.f]\nruntime = \"nodejs20.x\"\nhandler = \"h.h\"\n";
    let e = toml(&format!("{base}[stages.prod.functions.f]\nmemroy = 3\n"), &no_env()).unwrap_err();
    assert_eq!(e.key, "stages.prod.functions.f.memroy");
    assert!(e.message.contains("unknown field `memroy`"), "{e}");
    let e = toml(
        &format!("{base}[stages.prod.functions.f]\nruntime = \"python3.12\"\n"),
        &no_env(),
    )
    .unwrap_err();
    assert_eq!(
        e.key, "stages.prod.functions.f.runtime",
        "only environment, memory, timeout, scaling"
    );
    let e = toml(&format!("{base}[stages.prod]\nregion = \"x\"\n"), &no_env()).unwrap_err();
    assert_eq!(e.key, "stages.prod.region");
    let e = toml(
        &format!("{base}[stages.prod.functions.nope]\nmemory = 256\n"),
        &no_env(),
    )
    .unwrap_err();
    assert_eq!(e.key, "stages.prod.functions.nope");
    assert!(e.message.contains("no function named `nope`"), "{e}");
    let e = toml(
        &format!("{base}[stages.prod.functions.f]\nmemory = 99999\n"),
        &no_env().with_stage("prod"),
    )
    .unwrap_err();
    assert_eq!(e.key, "stages.prod.functions.f.memory");
    let e = toml(
        &format!(
            "{base}scaling = {{ max_instances = 2 }}\n[stages.prod.functions.f]\nscaling = {{ min_instances = 3 }}\n"
        ),
        &no_env().with_stage("prod"),
    )
    .unwrap_err();
    assert_eq!(e.key, "stages.prod.functions.f.scaling.min_instances");
    assert!(e.message.contains("with stage `prod` applied"), "{e}");
    let e = toml(&format!("{base}[stages.\"bad stage\"]\n"), &no_env()).unwrap_err();
    assert_eq!(e.key, "stages.bad stage");
}

// ---------------------------------------------------------------- gust.toml variables

#[test]
fn gust_toml_resolves_env_variables_in_strings() {
    let text = r#"
[app]
name = "shop"
region = "${env:REGION, eu-west-1}"
environment = { DB_URL = "${env:DB_URL}", MODE = "${env:MODE, 'local'}", PORT = "${env:NOPE, 8080}" }

[functions.api]
runtime = "nodejs20.x"
handler = "api.handler"
environment = { URL = "http://${env:HOST}:80" }

[upstreams.orders]
command = "node server.js --port ${PORT} ${X:-y}"
port = 4001

[stages.prod.app]
environment = { DB_URL = "${env:PROD_DB_URL}" }
"#;
    let vars = env(&[("DB_URL", "postgres://db"), ("HOST", "h")]);
    let l = toml(text, &vars).unwrap();
    assert_eq!(l.app.region, "eu-west-1");
    let e = &f(&l, "api").environment;
    assert_eq!(e["DB_URL"], "postgres://db");
    assert_eq!(e["MODE"], "local");
    assert_eq!(e["PORT"], "8080", "values stay strings");
    assert_eq!(e["URL"], "http://h:80");
    let u = &l.app.upstreams[&FunctionName::new("orders").unwrap()];
    assert_eq!(
        u.command.as_deref(),
        Some("node server.js --port ${PORT} ${X:-y}"),
        "shell syntax is not a Gust variable"
    );
    assert_eq!(u.environment["GUST_STAGE"], "dev");

    // The prod overlay is resolved only when prod is chosen.
    let e = toml(text, &vars.clone().with_stage("prod")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/app/gust.toml: `stages.prod.app.environment.DB_URL`: cannot resolve ${env:PROD_DB_URL}: the environment variable is not set"
    );
    let l = toml(
        text,
        &env(&[("DB_URL", "a"), ("HOST", "h"), ("PROD_DB_URL", "postgres://prod")]).with_stage("prod"),
    )
    .unwrap();
    assert_eq!(f(&l, "api").environment["DB_URL"], "postgres://prod");

    let e = toml(text, &env(&[("HOST", "h")])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/app/gust.toml: `app.environment.DB_URL`: cannot resolve ${env:DB_URL}: the environment variable is not set"
    );
}

#[test]
fn gust_toml_refuses_other_variable_sources() {
    let base = "[app]\nname = \"a\"\n[functions.f]\nruntime = \"nodejs20.x\"\nhandler = \"h.h\"\n";
    let e = toml(
        &format!("{base}environment = {{ S = \"${{opt:stage}}\" }}\n"),
        &no_env(),
    )
    .unwrap_err();
    assert_eq!(e.key, "functions.f.environment.S");
    assert!(
        e.message
            .contains("the `opt` variable source is not supported in gust.toml"),
        "{e}"
    );
    let e = toml(
        &format!("{base}[[routes]]\nroute = \"GET /${{ssm:/x}}\"\nfunction = \"f\"\n"),
        &no_env(),
    )
    .unwrap_err();
    assert_eq!(e.key, "routes[0].route");
    assert!(e.message.contains("the `ssm` variable source is not supported"), "{e}");
}

// ---------------------------------------------------------------- loading from disk

#[test]
fn load_with_reads_the_file_for_a_stage_with_a_private_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("serverless.yml"),
        "service: svc\nprovider:\n  name: aws\n  runtime: nodejs20.x\n  environment:\n    TOKEN: ${env:GUST_TEST_TOKEN_NOT_IN_PROCESS}\nfunctions:\n  f:\n    handler: h.handler\n    events:\n      - httpApi: GET /${sls:stage}/f\n",
    )
    .unwrap();
    let options = env(&[("GUST_TEST_TOKEN_NOT_IN_PROCESS", "t0k")]).with_stage("qa");
    let l = load_with(dir.path(), &options).unwrap();
    assert_eq!(l.app.stage, "qa");
    assert_eq!(f(&l, "f").environment["TOKEN"], "t0k");
    assert_eq!(l.app.routes[0].key.to_string(), "GET /qa/f");
    assert!(matches!(&l.app.routes[0].target, RouteTarget::Function { .. }));
    // `load` reads the process environment, where the variable is not set.
    let e = crate::load(dir.path()).unwrap_err();
    assert_eq!(e.key, "provider.environment.TOKEN");
    assert!(e.file.ends_with("serverless.yml"));
}
