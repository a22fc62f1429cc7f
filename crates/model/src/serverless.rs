//! Serverless Framework v3 `serverless.yml`, read directly so existing projects run unmodified.
//!
//! Walks the YAML tree by hand instead of through serde structs: the file is full of keys Gust
//! does not act on yet (IAM, CloudFormation resources, plugins), and each one must become a
//! line in one warning rather than an error. Supported keys are listed in `docs/manifest.md`.

use crate::app::{defaults, CorsSpec, FunctionSpec, PayloadFormat, RouteAuth, RouteSpec, RouteTarget};
use crate::native::{
    check_memory, check_scaling, check_timeout, schedule, subscription, ScheduleInput, SubscriptionInput,
};
use crate::vars::{scalar_text, Resolver};
use crate::{
    App, AppName, EventFilter, EventShape, FunctionName, LoadOptions, Loaded, ManifestError, RouteKey, RuntimeKind,
    Scaling, TopicName,
};
use serde_yaml::{Mapping, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

#[path = "serverless_auth.rs"]
mod auth;
#[path = "serverless_aws.rs"]
mod aws;

/// The event types Gust maps (a bare string or any other type is refused or reported).
const EVENT_TYPES: &str = "http, httpApi, schedule, sqs, sns, rabbitmq, stream (dynamodb)";

/// Serverless Framework v3's own defaults, which a serverless.yml author relies on.
const SLS_MEMORY_MB: u32 = 1024;
const SLS_TIMEOUT_SECS: f64 = 6.0;

/// Keys that carry no behaviour for a local platform and are accepted without a warning.
const IGNORED_TOP: [&str; 5] = [
    "frameworkVersion",
    "custom",
    "configValidationMode",
    "variablesResolutionMode",
    "useDotenv",
];
const IGNORED_PROVIDER: [&str; 5] = ["name", "stage", "architecture", "versionFunctions", "deploymentMethod"];
const IGNORED_FUNCTION: [&str; 2] = ["name", "description"];

/// Reads the YAML tree. Every value it reads goes through [`Walker::val`] first, which resolves
/// `${...}` variables in it; keys Gust ignores are never resolved, so `${aws:accountId}` in
/// `provider.iam` or `Fn::Sub` strings in `resources` do not stop an app from loading.
struct Walker<'a> {
    file: &'a Path,
    unsupported: Vec<String>,
    vars: Resolver<'a>,
}

impl Walker<'_> {
    fn err(&self, key: impl Into<String>, msg: impl Into<String>) -> ManifestError {
        ManifestError::new(self.file, key, msg)
    }

    fn unsupported(&mut self, key: String) {
        self.unsupported.push(key);
    }

    /// `package`: `patterns` in order; the Framework v2 `exclude`/`include` lists become
    /// `!glob`/`glob` patterns; `individually` is how Gust always deploys (per code
    /// directory); `artifact` (a prebuilt zip) is not read.
    fn package(&mut self, v: &Value, path: &str) -> Result<Vec<String>, ManifestError> {
        let m = self.mapping(v, path)?.into_owned();
        let (mut patterns, mut exclude, mut include) = (Vec::new(), Vec::new(), Vec::new());
        for (k, v) in &m {
            let key = str_key(k);
            let kpath = format!("{path}.{key}");
            let list = |w: &mut Self| -> Result<Vec<String>, ManifestError> {
                let v = w.val(v, &kpath)?.into_owned();
                match v.as_sequence() {
                    Some(items) => items.iter().map(|i| w.string(i, &kpath)).collect(),
                    None => Err(w.err(kpath.clone(), "must be a list of glob patterns")),
                }
            };
            match key.as_str() {
                "patterns" => patterns.extend(list(self)?),
                "exclude" => exclude.extend(list(self)?.into_iter().map(|p| format!("!{p}"))),
                "include" => include.extend(list(self)?),
                "individually" | "excludeDevDependencies" => {}
                _ => self.unsupported(kpath),
            }
        }
        // As the Framework v2 applied them: `include` wins over `exclude`.
        patterns.extend(exclude);
        patterns.extend(include);
        Ok(patterns)
    }

    /// `v` with its variables resolved (a string that is one variable takes its value and type).
    fn val<'v>(&self, v: &'v Value, key: &str) -> Result<Cow<'v, Value>, ManifestError> {
        self.vars.value(v).map_err(|m| self.err(key, m))
    }

    /// `v` with every variable inside it resolved too (for values passed on whole).
    fn deep(&self, v: &Value, key: &str) -> Result<Value, ManifestError> {
        self.vars.deep(v).map_err(|m| self.err(key, m))
    }

    fn string(&self, v: &Value, key: &str) -> Result<String, ManifestError> {
        scalar_string(&*self.val(v, key)?).ok_or_else(|| self.err(key, "must be a string"))
    }

    fn number(&self, v: &Value, key: &str) -> Result<f64, ManifestError> {
        match &*self.val(v, key)? {
            Value::Number(n) => n.as_f64().ok_or_else(|| self.err(key, "must be a number")),
            Value::String(s) => s
                .trim()
                .parse()
                .map_err(|_| self.err(key, format!("`{s}` is not a number"))),
            _ => Err(self.err(key, "must be a number")),
        }
    }

    /// `true`/`false`, also as the strings an `${env:...}` variable gives.
    fn boolean(&self, v: &Value, key: &str) -> Result<bool, ManifestError> {
        match &*self.val(v, key)? {
            Value::Bool(b) => Ok(*b),
            Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
            Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(false),
            _ => Err(self.err(key, "must be true or false")),
        }
    }

    fn mapping<'v>(&self, v: &'v Value, key: &str) -> Result<Cow<'v, Mapping>, ManifestError> {
        match self.val(v, key)? {
            Cow::Borrowed(Value::Mapping(m)) => Ok(Cow::Borrowed(m)),
            Cow::Owned(Value::Mapping(m)) => Ok(Cow::Owned(m)),
            _ => Err(self.err(key, "must be a mapping")),
        }
    }
}

fn scalar_string(v: &Value) -> Option<String> {
    scalar_text(v)
}

fn str_key(k: &Value) -> String {
    scalar_string(k).unwrap_or_else(|| "?".into())
}

pub(crate) fn parse(file: &Path, text: &str, root: &Path, options: &LoadOptions) -> Result<Loaded, ManifestError> {
    let doc: Value = serde_yaml::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" (line {}, column {})", l.line(), l.column()))
            .unwrap_or_default();
        ManifestError::new(file, "", format!("invalid YAML{at}: {e}"))
    })?;
    let file_name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let vars = Resolver::serverless(&file_name, &doc, &*options.env, options.stage.as_deref())
        .map_err(|(k, m)| ManifestError::new(file, k, m))?;
    let stage = vars.stage().to_string();
    let mut w = Walker {
        file,
        unsupported: Vec::new(),
        vars,
    };
    let top = w.mapping(&doc, "")?.into_owned();

    let mut service = None;
    let mut package_default = Vec::new();
    let mut provider = Mapping::new();
    let mut functions = Mapping::new();
    let custom_gust_rabbitmq = top
        .get("custom")
        .and_then(|c| c.as_mapping())
        .and_then(|c| c.get("gust"))
        .and_then(|g| g.as_mapping())
        .and_then(|g| g.get("rabbitmq"))
        .cloned();
    let mut resources = None;
    for (k, v) in &top {
        let key = str_key(k);
        match key.as_str() {
            "service" => {
                service = Some(match &*w.val(v, "service")? {
                    Value::Mapping(m) => w.string(m.get("name").unwrap_or(&Value::Null), "service.name")?,
                    v => w.string(v, "service")?,
                })
            }
            "provider" => provider = w.mapping(v, "provider")?.into_owned(),
            "package" => package_default = w.package(v, "package")?,
            "functions" => functions = w.mapping(v, "functions")?.into_owned(),
            "resources" => resources = Some(v.clone()),
            k if IGNORED_TOP.contains(&k) => {}
            _ => w.unsupported(key),
        }
    }
    let service = service.ok_or_else(|| w.err("service", "is required"))?;
    let name = AppName::new(&service).map_err(|e| w.err("service", e.to_string()))?;

    // Provider-level defaults.
    let mut runtime_default = None;
    let mut memory_default = None;
    let mut timeout_default = None;
    let mut env_raw = None;
    let mut iam_raw = Vec::new();
    let mut region = defaults::DEFAULT_REGION.to_string();
    let mut cors = None;
    let mut auth = auth::Auth::default();
    for (k, v) in &provider {
        let key = str_key(k);
        let path = format!("provider.{key}");
        match key.as_str() {
            "name" => {
                let p = w.string(v, &path)?;
                if p != "aws" {
                    return Err(w.err(
                        path,
                        format!("provider `{p}` is not supported: Gust runs AWS Lambda-style functions (`aws`)"),
                    ));
                }
            }
            "runtime" => runtime_default = Some(w.string(v, &path)?),
            "memorySize" => memory_default = Some(w.number(v, &path)? as u32),
            "timeout" => timeout_default = Some(w.number(v, &path)?),
            "environment" => env_raw = Some(v.clone()),
            "iamRoleStatements" => iam_raw.push((v.clone(), path)),
            "iam" => {
                for (ik, iv) in w.mapping(v, &path)?.iter() {
                    let ikey = str_key(ik);
                    let ipath = format!("{path}.{ikey}");
                    match (ikey.as_str(), &*w.val(iv, &ipath)?) {
                        ("role", Value::Mapping(role)) => {
                            for (rk, rv) in role {
                                let rkey = str_key(rk);
                                let rpath = format!("{ipath}.{rkey}");
                                match rkey.as_str() {
                                    "statements" => iam_raw.push((rv.clone(), rpath)),
                                    "name" | "path" | "tags" => {}
                                    _ => w.unsupported(rpath),
                                }
                            }
                        }
                        // An existing role: its policies live in AWS, out of Gust's reach.
                        ("role", _) => {
                            w.unsupported(format!("{ipath} (an existing role: its functions get no AWS grants)"))
                        }
                        ("deploymentRole", _) => {}
                        _ => w.unsupported(ipath),
                    }
                }
            }
            "region" => region = w.string(v, &path)?,
            "httpApi" => {
                for (hk, hv) in w.mapping(v, &path)?.iter() {
                    let hkey = str_key(hk);
                    match hkey.as_str() {
                        "cors" => cors = parse_cors(&w, hv, "provider.httpApi.cors")?,
                        "authorizers" => auth.http_api_authorizers(&w, hv, "provider.httpApi.authorizers")?,
                        "payload" | "name" => {}
                        _ => w.unsupported(format!("provider.httpApi.{hkey}")),
                    }
                }
            }
            "apiKeys" => auth.api_keys(&w, v, &path)?,
            "usagePlan" => auth.usage_plan(&w, v, &path)?,
            "apiGateway" => {
                for (gk, gv) in w.mapping(v, &path)?.iter() {
                    let gkey = str_key(gk);
                    let gpath = format!("{path}.{gkey}");
                    match gkey.as_str() {
                        "apiKeys" => auth.api_keys(&w, gv, &gpath)?,
                        "usagePlan" => auth.usage_plan(&w, gv, &gpath)?,
                        "apiKeySourceType" => {
                            let source = w.string(gv, &gpath)?;
                            if !source.eq_ignore_ascii_case("HEADER") {
                                return Err(w.err(
                                    gpath,
                                    format!("`{source}` cannot be mapped: Gust reads API keys from the x-api-key header (HEADER)"),
                                ));
                            }
                        }
                        _ => w.unsupported(gpath),
                    }
                }
            }
            k if IGNORED_PROVIDER.contains(&k) => {}
            _ => w.unsupported(path),
        }
    }
    let api_keys = auth.keys(&w)?;
    let (cfn, dynamodb_tables) = aws::Cfn::read(&mut w, resources.as_ref(), &region, format!("{service}-{stage}"))?;
    let env_default = match &env_raw {
        Some(v) => cfn.environment(&w, v, "provider.environment")?,
        None => BTreeMap::new(),
    };
    let mut provider_statements = Vec::new();
    for (v, path) in &iam_raw {
        provider_statements.extend(cfn.statements(&mut w, v, path)?);
    }

    let mut fns = BTreeMap::new();
    let mut runtime_warnings = Vec::new();
    let mut routes = Vec::new();
    let mut pending_subs = Vec::new();
    let mut schedules = Vec::new();
    for (k, v) in &functions {
        let fname = str_key(k);
        let base = format!("functions.{fname}");
        let name = FunctionName::new(&fname).map_err(|e| w.err(&base, e.to_string()))?;
        let body = w.mapping(v, &base)?.into_owned();
        let mut handler = None;
        let mut runtime = runtime_default.clone();
        let mut memory = memory_default;
        let mut ephemeral = None;
        let mut timeout = timeout_default;
        let mut env = env_default.clone();
        let mut scaling = Scaling::default();
        let mut package_own = Vec::new();
        let mut own_statements = None;
        let mut inherit = false;
        for (fk, fv) in &body {
            let key = str_key(fk);
            let path = format!("{base}.{key}");
            match key.as_str() {
                "handler" => handler = Some(w.string(fv, &path)?),
                "package" => package_own = w.package(fv, &path)?,
                "runtime" => runtime = Some(w.string(fv, &path)?),
                "memorySize" => memory = Some(w.number(fv, &path)? as u32),
                "ephemeralStorageSize" => ephemeral = Some(w.number(fv, &path)? as u32),
                "timeout" => timeout = Some(w.number(fv, &path)?),
                "environment" => env.extend(cfn.environment(&w, fv, &path)?),
                // The serverless-iam-roles-per-function plugin's keys.
                "iamRoleStatements" => own_statements = Some(cfn.statements(&mut w, fv, &path)?),
                "iamRoleStatementsInherit" => inherit = w.boolean(fv, &path)?,
                "iamRoleStatementsName" => {}
                "reservedConcurrency" => scaling.max_instances = w.number(fv, &path)? as u32,
                "provisionedConcurrency" => scaling.min_instances = w.number(fv, &path)? as u32,
                "events" => {
                    let fv = w.val(fv, &path)?;
                    let Some(events) = fv.as_sequence() else {
                        return Err(w.err(path, "must be a list"));
                    };
                    for (i, ev) in events.iter().enumerate() {
                        let epath = format!("{path}[{i}]");
                        if let Value::String(t) = &*w.val(ev, &epath)? {
                            return Err(w.err(
                                epath,
                                format!("event `{t}` has no settings and is not an event type Gust supports: Gust maps {EVENT_TYPES} events (each a mapping such as `- http: GET /path`)"),
                            ));
                        }
                        let m = w.mapping(ev, &epath)?;
                        for (ek, evv) in m.iter() {
                            let etype = str_key(ek);
                            let tpath = format!("{epath}.{etype}");
                            match etype.as_str() {
                                "http" => {
                                    let (key, route_cors, route_auth) = http_event(&mut w, &mut auth, evv, &tpath)?;
                                    if route_cors && cors.is_none() {
                                        cors = Some(CorsSpec::default());
                                    }
                                    routes.push(route(key, &name, PayloadFormat::V1, route_auth));
                                }
                                "httpApi" => {
                                    let (key, route_auth) = http_api_event(&mut w, &auth, evv, &tpath)?;
                                    routes.push(route(key, &name, PayloadFormat::V2, route_auth));
                                }
                                "schedule" => {
                                    for input in schedule_event(&mut w, evv, &tpath, &name, schedules.len())? {
                                        schedules
                                            .push(schedule(input).map_err(|(k, m)| w.err(format!("{tpath}.{k}"), m))?);
                                    }
                                }
                                "sqs" | "sns" => {
                                    let shape = if etype == "sqs" {
                                        EventShape::Sqs
                                    } else {
                                        EventShape::Sns
                                    };
                                    let input = queue_event(&mut w, evv, &tpath, &name, shape)?;
                                    pending_subs.push((input, tpath));
                                }
                                "rabbitmq" => {
                                    let broker = RabbitMqBroker::read(&w, custom_gust_rabbitmq.as_ref())?;
                                    if let Some(input) =
                                        rabbitmq_event(&mut w, evv, &tpath, &name, &broker, &mut runtime_warnings)?
                                    {
                                        pending_subs.push((input, tpath));
                                    }
                                }
                                "stream" => {
                                    if let Some(input) = stream_event(&mut w, &cfn, evv, &tpath, &name)? {
                                        pending_subs.push((input, tpath));
                                    }
                                }
                                _ => w.unsupported(tpath),
                            }
                        }
                    }
                }
                k if IGNORED_FUNCTION.contains(&k) => {}
                _ => w.unsupported(path),
            }
        }
        let runtime = runtime.ok_or_else(|| {
            w.err(
                format!("{base}.runtime"),
                "no runtime: set it on the function or on provider.runtime",
            )
        })?;
        let (kind, old) = RuntimeKind::check(&runtime).map_err(|m| w.err(format!("{base}.runtime"), m))?;
        if let Some(old) = old {
            runtime_warnings.push(format!("{}: `{base}.runtime`: {old}", file.display()));
        }
        let handler = handler.unwrap_or_default();
        if handler.is_empty() && kind != RuntimeKind::Provided {
            return Err(w.err(format!("{base}.handler"), "is required"));
        }
        let memory_mb =
            check_memory(Some(memory.unwrap_or(SLS_MEMORY_MB))).map_err(|m| w.err(format!("{base}.memorySize"), m))?;
        let ephemeral_storage_mb = crate::native::check_ephemeral_storage(ephemeral)
            .map_err(|m| w.err(format!("{base}.ephemeralStorageSize"), m))?;
        let timeout = check_timeout(Some(timeout.unwrap_or(SLS_TIMEOUT_SECS)))
            .map_err(|m| w.err(format!("{base}.timeout"), m))?;
        check_scaling(&scaling).map_err(|(k, m)| {
            w.err(
                format!(
                    "{base}.{}",
                    if k == "max_instances" {
                        "reservedConcurrency"
                    } else {
                        "provisionedConcurrency"
                    }
                ),
                m,
            )
        })?;
        fns.insert(
            name.clone(),
            FunctionSpec {
                name,
                runtime,
                kind,
                handler,
                code_dir: root.to_path_buf(),
                memory_mb,
                ephemeral_storage_mb,
                timeout,
                // serverless.yml has no such property (and Gust reads no `custom` key of its
                // own): Lambda's 10 s.
                init_timeout: defaults::INIT_TIMEOUT,
                environment: env,
                scaling,
                services: Vec::new(),
                invokes: Vec::new(),
                secrets: Vec::new(),
                publishes: Vec::new(),
                // serverless.yml has no such property: the host's network.
                network: crate::Network::Default,
                package: {
                    let mut p = package_default.clone();
                    p.extend(package_own);
                    p
                },
                // A function's own statements replace the provider's unless it inherits them
                // (the plugin's rule); without the plugin's key, the provider's role.
                aws: match own_statements {
                    Some(own) if inherit => provider_statements.iter().cloned().chain(own).collect(),
                    Some(own) => own,
                    None => provider_statements.clone(),
                },
            },
        );
    }

    let mut topics = std::collections::BTreeSet::new();
    let mut subscriptions = Vec::new();
    for (input, key) in pending_subs {
        let f = fns.get(&input.function);
        let sub = subscription(input, f.map(|f| f.timeout), f.map(|f| f.scaling.max_instances))
            .map_err(|(k, m)| w.err(format!("{key}.{k}"), m))?;
        // A broker source has no Gust topic (its dead letters live under its own name).
        if sub.source.is_none() {
            topics.insert(sub.topic.clone());
        }
        subscriptions.push(sub);
    }
    let app = App {
        name,
        stage,
        region,
        root: root.to_path_buf(),
        functions: fns,
        routes,
        cors,
        topics,
        public_topics: BTreeMap::new(),
        subscriptions,
        schedules,
        upstreams: BTreeMap::new(),
        authorizers: auth.jwt,
        lambda_authorizers: auth.lambda,
        api_keys,
        dynamodb_tables,
    };
    // An authorizer function named by an event or provider.httpApi.authorizers must exist.
    for (key, f) in &auth.functions_named {
        if !app.functions.contains_key(f) {
            return Err(w.err(
                key,
                format!("no function named `{f}` is declared in this file (Lambda authorizers are functions of this service)"),
            ));
        }
    }
    app.check_references().map_err(|(k, m)| w.err(k, m))?;
    let mut warnings = runtime_warnings;
    if !w.unsupported.is_empty() {
        warnings.push(format!(
            "{}: these keys are not supported by Gust yet and are ignored: {}",
            file.display(),
            w.unsupported.join(", ")
        ));
    }
    Ok(Loaded {
        app,
        warnings,
        file: file.to_path_buf(),
    })
}

/// The topic a queue or topic reference names: the last part of an ARN, or the name itself.
fn arn_name(w: &Walker<'_>, v: &Value, key: &str) -> Result<TopicName, ManifestError> {
    let raw = match &*w.val(v, key)? {
        // `arn: { "Fn::GetAtt": [Queue, Arn] }` and other CloudFormation forms name a resource.
        Value::Mapping(m) => m
            .values()
            .next()
            .and_then(|v| v.as_sequence()?.first()?.as_str().map(str::to_string))
            .ok_or_else(|| w.err(key, "must be a queue/topic name or ARN"))?,
        v => w.string(v, key)?,
    };
    let name = raw.rsplit(':').next().unwrap_or(&raw).to_string();
    TopicName::new(&name).map_err(|e| w.err(key, e.to_string()))
}

/// `sqs: arn` / `sqs: {arn, batchSize, maximumBatchingWindow, functionResponseType, maximumConcurrency}`,
/// `sns: name` / `sns: {topicName | arn, filterPolicy}`: a local topic plus a subscription.
fn queue_event(
    w: &mut Walker<'_>,
    v: &Value,
    path: &str,
    function: &FunctionName,
    shape: EventShape,
) -> Result<SubscriptionInput, ManifestError> {
    let mut input = SubscriptionInput {
        name: TopicName::new("x").expect("valid"),
        topic: TopicName::new("x").expect("valid"),
        function: function.clone(),
        filter: EventFilter::default(),
        shape,
        batch_size: if shape == EventShape::Sns { Some(1) } else { None },
        batch_window: None,
        max_concurrency: None,
        max_attempts: None,
        max_event_age: None,
        visibility_timeout: None,
        report_batch_item_failures: false,
        retry_delay: None,
        source: None,
    };
    let mut topic = None;
    match &*w.val(v, path)? {
        Value::Mapping(m) => {
            for (k, v) in m {
                let key = str_key(k);
                let kpath = format!("{path}.{key}");
                match (shape, key.as_str()) {
                    (_, "arn") | (EventShape::Sns, "topicName") => topic = Some(arn_name(w, v, &kpath)?),
                    (EventShape::Sqs, "batchSize") => input.batch_size = Some(w.number(v, &kpath)? as u32),
                    (EventShape::Sqs, "maximumBatchingWindow") => input.batch_window = Some(w.number(v, &kpath)?),
                    (EventShape::Sqs, "maximumConcurrency") => {
                        input.max_concurrency = Some(w.number(v, &kpath)? as u32)
                    }
                    (EventShape::Sqs, "functionResponseType") => {
                        input.report_batch_item_failures = w.string(v, &kpath)? == "ReportBatchItemFailures"
                    }
                    (_, "enabled") => {}
                    _ => w.unsupported(kpath),
                }
            }
        }
        other => topic = Some(arn_name(w, other, path)?),
    }
    let topic = topic.ok_or_else(|| w.err(format!("{path}.arn"), "is required"))?;
    input.name = TopicName::new(format!("{function}.{topic}")).map_err(|e| w.err(path, e.to_string()))?;
    input.topic = topic;
    Ok(input)
}

/// Where serverless.yml `rabbitmq` events connect: an Amazon MQ ARN names no reachable
/// broker, so `custom.gust.rabbitmq` says it (`url`, `username`, `passwordSecret`, the name of
/// a Gust secret); without it, the local default broker with a warning.
struct RabbitMqBroker {
    /// `None`: not set (the default URL is used, with a warning).
    url: Option<String>,
    username: Option<String>,
    password_secret: Option<String>,
}

impl RabbitMqBroker {
    const DEFAULT_URL: &'static str = "amqp://127.0.0.1:5672";

    fn read(w: &Walker<'_>, custom: Option<&Value>) -> Result<Self, ManifestError> {
        let mut out = Self {
            url: None,
            username: None,
            password_secret: None,
        };
        let Some(custom) = custom else {
            return Ok(out);
        };
        let base = "custom.gust.rabbitmq";
        for (k, v) in w.mapping(custom, base)?.iter() {
            let key = str_key(k);
            let path = format!("{base}.{key}");
            match key.as_str() {
                "url" => out.url = Some(w.string(v, &path)?),
                "username" => out.username = Some(w.string(v, &path)?),
                "passwordSecret" => out.password_secret = Some(w.string(v, &path)?),
                _ => {
                    return Err(w.err(
                        path,
                        "unknown key: custom.gust.rabbitmq takes url, username and passwordSecret",
                    ))
                }
            }
        }
        Ok(out)
    }
}

/// `rabbitmq: {arn, queue, virtualHost, basicAuthArn, batchSize, maximumBatchingWindow,
/// enabled}`: a rabbitmq source subscription (`None` when `enabled: false`).
fn rabbitmq_event(
    w: &mut Walker<'_>,
    v: &Value,
    path: &str,
    function: &FunctionName,
    broker: &RabbitMqBroker,
    warnings: &mut Vec<String>,
) -> Result<Option<SubscriptionInput>, ManifestError> {
    let m = w.mapping(v, path)?.into_owned();
    let (mut arn, mut queue, mut vhost, mut auth_arn, mut enabled) = (None, None, None, None, true);
    let mut batch_size = None;
    let mut batch_window = None;
    for (k, v) in &m {
        let key = str_key(k);
        let kpath = format!("{path}.{key}");
        match key.as_str() {
            "arn" => arn = Some(w.string(v, &kpath)?),
            "queue" => queue = Some(w.string(v, &kpath)?),
            "virtualHost" => vhost = Some(w.string(v, &kpath)?),
            "basicAuthArn" => auth_arn = Some(w.string(v, &kpath)?),
            "batchSize" => batch_size = Some(w.number(v, &kpath)? as u32),
            "maximumBatchingWindow" => batch_window = Some(w.number(v, &kpath)?),
            "enabled" => enabled = w.boolean(v, &kpath)?,
            _ => w.unsupported(kpath),
        }
    }
    let queue = queue.ok_or_else(|| w.err(format!("{path}.queue"), "is required"))?;
    if !enabled {
        return Ok(None);
    }
    let base = match &broker.url {
        Some(u) => u.clone(),
        None => {
            warnings.push(format!(
                "{}: `{path}`: an Amazon MQ ARN names no broker Gust can reach; connecting to {} (set `custom.gust.rabbitmq.url`)",
                w.file.display(),
                RabbitMqBroker::DEFAULT_URL
            ));
            RabbitMqBroker::DEFAULT_URL.to_string()
        }
    };
    let url = match &vhost {
        // `virtualHost` replaces the URL's path (RabbitMQ's URI spec: the path is the vhost).
        Some(vh) => {
            let (scheme, rest) = base.split_once("://").unwrap_or(("amqp", base.as_str()));
            let authority = rest.split('/').next().unwrap_or("");
            format!("{scheme}://{authority}/{}", crate::source::percent_encode(vh))
        }
        None => base,
    };
    if auth_arn.is_some() && broker.password_secret.is_none() {
        warnings.push(format!(
            "{}: `{path}.basicAuthArn` names an AWS Secrets Manager secret Gust cannot read; connecting as {} (set `custom.gust.rabbitmq.username` and `passwordSecret`, a Gust secret)",
            w.file.display(),
            broker.username.as_deref().unwrap_or("guest")
        ));
    }
    let source = crate::source::rabbitmq(url, queue, broker.username.clone(), broker.password_secret.clone(), arn)
        .map_err(|(k, msg)| {
            let key = match k.as_str() {
                "url" => "custom.gust.rabbitmq.url".to_string(),
                "password_secret" => "custom.gust.rabbitmq.passwordSecret".to_string(),
                "queue" => format!("{path}.queue"),
                other => format!("{path}.{other}"),
            };
            w.err(key, msg)
        })?;
    let name =
        TopicName::new(format!("{function}.{}", source.default_name())).map_err(|e| w.err(path, e.to_string()))?;
    Ok(Some(SubscriptionInput {
        name: name.clone(),
        topic: name,
        function: function.clone(),
        filter: EventFilter::default(),
        shape: EventShape::RabbitMq,
        batch_size,
        batch_window,
        max_concurrency: None,
        max_attempts: None,
        max_event_age: None,
        visibility_timeout: None,
        report_batch_item_failures: false,
        retry_delay: None,
        source: Some(source),
    }))
}

/// `stream: <arn>` / `stream: {type: dynamodb, arn, batchSize, startingPosition,
/// maximumRetryAttempts, enabled}`: a dynamodb-stream source subscription on a table Gust
/// serves (`None` when `enabled: false`). The ARN is a string or `Fn::GetAtt: [T, StreamArn]`.
fn stream_event(
    w: &mut Walker<'_>,
    cfn: &aws::Cfn,
    v: &Value,
    path: &str,
    function: &FunctionName,
) -> Result<Option<SubscriptionInput>, ManifestError> {
    let (mut arn, mut batch_size, mut start, mut max_retries, mut enabled) =
        (None, None, crate::StartPosition::Latest, None, true);
    let mut patterns = Vec::new();
    let is_string = matches!(&*w.val(v, path)?, Value::String(_));
    if is_string {
        arn = Some(cfn.string(w, v, path)?);
    } else {
        let m = w.mapping(v, path)?.into_owned();
        let mut kind = None;
        for (k, v) in &m {
            let key = str_key(k);
            let kpath = format!("{path}.{key}");
            match key.as_str() {
                "type" => kind = Some(w.string(v, &kpath)?),
                "arn" => arn = Some(cfn.string(w, v, &kpath)?),
                "batchSize" => batch_size = Some(w.number(v, &kpath)? as u32),
                "startingPosition" => {
                    start = match w.string(v, &kpath)?.as_str() {
                        "LATEST" => crate::StartPosition::Latest,
                        "TRIM_HORIZON" => crate::StartPosition::Earliest,
                        other => return Err(w.err(kpath, format!("`{other}`: Gust supports LATEST and TRIM_HORIZON"))),
                    }
                }
                "maximumRetryAttempts" => {
                    // -1 is Lambda's "until the record expires": then the event age limit ends it.
                    max_retries = Some(match w.number(v, &kpath)? {
                        -1.0 => u32::MAX - 1,
                        n if (0.0..=10_000.0).contains(&n) && n.fract() == 0.0 => n as u32,
                        _ => return Err(w.err(kpath, "must be -1 (until the record expires) or 0 to 10000")),
                    })
                }
                "enabled" => enabled = w.boolean(v, &kpath)?,
                // Lambda's event filtering: a list of patterns (objects, or `{pattern: "<json>"}`
                // as CloudFormation writes them).
                "filterPatterns" => {
                    let list = w.val(v, &kpath)?.into_owned();
                    let Value::Sequence(items) = list else {
                        return Err(w.err(kpath, "must be a list of patterns"));
                    };
                    for (j, item) in items.iter().enumerate() {
                        let at = format!("{kpath}[{j}]");
                        let json = serde_json::to_value(item).map_err(|e| w.err(at.clone(), e.to_string()))?;
                        let json = match json.get("pattern") {
                            Some(p) if json.as_object().is_some_and(|o| o.len() == 1) => p.clone(),
                            _ => json,
                        };
                        patterns.push(crate::FilterPattern::new(&json).map_err(|m| w.err(at, m))?);
                    }
                }
                _ => w.unsupported(kpath),
            }
        }
        match kind.as_deref() {
            None | Some("dynamodb") => {}
            Some(other) => {
                return Err(w.err(
                    format!("{path}.type"),
                    format!("`{other}`: Gust serves DynamoDB streams only (type: dynamodb)"),
                ))
            }
        }
    }
    let arn = arn.ok_or_else(|| w.err(format!("{path}.arn"), "is required"))?;
    let table = arn
        .split_once(":table/")
        .and_then(|(_, rest)| rest.split('/').next())
        .filter(|t| !t.is_empty() && arn.contains("/stream/"))
        .ok_or_else(|| {
            w.err(
                path,
                format!("`{arn}` is not a DynamoDB stream ARN (use `Fn::GetAtt: [Table, StreamArn]`)"),
            )
        })?
        .to_string();
    if !enabled {
        return Ok(None);
    }
    let source = crate::SourceSpec::DynamoDbStream(crate::DynamoDbStreamSource {
        table,
        stream_arn: arn,
        start,
    });
    let name =
        TopicName::new(format!("{function}.{}", source.default_name())).map_err(|e| w.err(path, e.to_string()))?;
    Ok(Some(SubscriptionInput {
        name: name.clone(),
        topic: name,
        function: function.clone(),
        filter: EventFilter {
            patterns,
            ..Default::default()
        },
        shape: EventShape::DynamoDb,
        batch_size,
        batch_window: None,
        max_concurrency: None,
        // Lambda's maximumRetryAttempts counts retries after the first attempt.
        max_attempts: max_retries.map(|r| r.saturating_add(1)),
        max_event_age: None,
        visibility_timeout: None,
        report_batch_item_failures: false,
        retry_delay: None,
        source: Some(source),
    }))
}

/// `schedule: rate(5 minutes)` or `schedule: {rate: expr | [expr, ...], enabled, input, name, description}`.
/// Each expression becomes one schedule (EventBridge creates one rule per expression too).
fn schedule_event(
    w: &mut Walker<'_>,
    v: &Value,
    path: &str,
    function: &FunctionName,
    index: usize,
) -> Result<Vec<ScheduleInput>, ManifestError> {
    let base = |expression: String, n: usize| ScheduleInput {
        name: format!("{function}-schedule-{}", index + n + 1),
        function: function.to_string(),
        expression,
        timezone: None,
        input: None,
        description: None,
        enabled: None,
        catch_up: None,
        max_catch_up: None,
        overlap: Some("allow".into()),
        jitter: None,
        max_attempts: None,
        retry_delay: None,
    };
    let m = match w.val(v, path)?.into_owned() {
        Value::String(s) => return Ok(vec![base(s, 0)]),
        Value::Mapping(m) => m,
        _ => return Err(w.err(path, "must be an expression or a mapping with `rate`")),
    };
    let mut exprs = Vec::new();
    let mut name = None;
    let mut enabled = None;
    let mut input = None;
    let mut description = None;
    for (k, v) in &m {
        let key = str_key(k);
        let kpath = format!("{path}.{key}");
        match key.as_str() {
            "rate" => match &*w.val(v, &kpath)? {
                Value::Sequence(items) => {
                    for (i, item) in items.iter().enumerate() {
                        exprs.push(w.string(item, &format!("{kpath}[{i}]"))?);
                    }
                }
                other => exprs.push(w.string(other, &kpath)?),
            },
            "enabled" => enabled = Some(w.boolean(v, &kpath)?),
            "name" => name = Some(w.string(v, &kpath)?),
            "description" => description = Some(w.string(v, &kpath)?),
            "input" => {
                input = Some(match w.deep(v, &kpath)? {
                    // EventBridge takes input as a JSON string or as a structure.
                    Value::String(s) => {
                        serde_json::from_str(&s).map_err(|e| w.err(&kpath, format!("is not valid JSON: {e}")))?
                    }
                    other => serde_json::to_value(other).map_err(|e| w.err(&kpath, e.to_string()))?,
                })
            }
            _ => w.unsupported(kpath),
        }
    }
    if exprs.is_empty() {
        return Err(w.err(format!("{path}.rate"), "is required"));
    }
    let count = exprs.len();
    Ok(exprs
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let mut s = base(e, i);
            if let Some(n) = &name {
                s.name = if count == 1 {
                    n.clone()
                } else {
                    format!("{n}-{}", i + 1)
                };
            }
            s.enabled = enabled;
            s.input = input.clone();
            s.description = description.clone();
            s
        })
        .collect())
}

fn route(key: RouteKey, function: &FunctionName, payload: PayloadFormat, auth: RouteAuth) -> RouteSpec {
    RouteSpec {
        auth,
        key,
        target: RouteTarget::Function {
            function: function.clone(),
            payload,
        },
    }
}

/// `http: GET users/{id}` or `http: { path, method, cors, private, authorizer }` (REST API,
/// payload 1.0).
fn http_event(
    w: &mut Walker<'_>,
    auth: &mut auth::Auth,
    v: &Value,
    path: &str,
) -> Result<(RouteKey, bool, RouteAuth), ManifestError> {
    match &*w.val(v, path)? {
        Value::String(s) => Ok((
            RouteKey::parse(s).map_err(|m| w.err(path, m))?,
            false,
            RouteAuth::default(),
        )),
        Value::Mapping(m) => {
            let mut method = None;
            let mut rpath = None;
            let mut cors = false;
            let mut route_auth = RouteAuth::default();
            for (k, v) in m {
                let key = str_key(k);
                let kpath = format!("{path}.{key}");
                match key.as_str() {
                    "method" => method = Some(w.string(v, &kpath)?),
                    "path" => rpath = Some(w.string(v, &kpath)?),
                    "cors" => cors = !matches!(&*w.val(v, &kpath)?, Value::Bool(false) | Value::Null),
                    "private" => route_auth.api_key = w.boolean(v, &kpath)?,
                    "authorizer" => route_auth.lambda = Some(auth.rest_authorizer(w, v, &kpath)?),
                    "integration" => {
                        let i = w.string(v, &kpath)?;
                        if !matches!(i.to_ascii_lowercase().as_str(), "lambda-proxy" | "aws_proxy") {
                            w.unsupported(kpath);
                        }
                    }
                    _ => w.unsupported(kpath),
                }
            }
            let method = method.ok_or_else(|| w.err(format!("{path}.method"), "is required"))?;
            let rpath = rpath.ok_or_else(|| w.err(format!("{path}.path"), "is required"))?;
            Ok((
                RouteKey::from_parts(&method, &rpath).map_err(|m| w.err(path, m))?,
                cors,
                route_auth,
            ))
        }
        _ => Err(w.err(path, "must be `METHOD path` or a mapping with `method` and `path`")),
    }
}

/// `httpApi: '*'`, `httpApi: 'GET /users/{id}'` or `httpApi: { method, path, authorizer }`
/// (payload 2.0).
fn http_api_event(
    w: &mut Walker<'_>,
    auth: &auth::Auth,
    v: &Value,
    path: &str,
) -> Result<(RouteKey, RouteAuth), ManifestError> {
    match &*w.val(v, path)? {
        Value::String(s) => Ok((RouteKey::parse(s).map_err(|m| w.err(path, m))?, RouteAuth::default())),
        Value::Mapping(m) => {
            let mut method = None;
            let mut rpath = None;
            let mut route_auth = RouteAuth::default();
            for (k, v) in m {
                let key = str_key(k);
                let kpath = format!("{path}.{key}");
                match key.as_str() {
                    "method" => method = Some(w.string(v, &kpath)?),
                    "path" => rpath = Some(w.string(v, &kpath)?),
                    "authorizer" => auth.http_api_route(w, v, &kpath, &mut route_auth)?,
                    _ => w.unsupported(kpath),
                }
            }
            let method = method.unwrap_or_else(|| "*".into());
            match rpath {
                Some(p) => Ok((
                    RouteKey::from_parts(&method, &p).map_err(|m| w.err(path, m))?,
                    route_auth,
                )),
                None => Err(w.err(format!("{path}.path"), "is required")),
            }
        }
        _ => Err(w.err(
            path,
            "must be `'*'`, `METHOD /path` or a mapping with `method` and `path`",
        )),
    }
}

fn parse_cors(w: &Walker<'_>, v: &Value, path: &str) -> Result<Option<CorsSpec>, ManifestError> {
    match &*w.val(v, path)? {
        Value::Bool(true) => Ok(Some(CorsSpec::default())),
        Value::Bool(false) | Value::Null => Ok(None),
        Value::Mapping(m) => {
            let mut c = CorsSpec::default();
            let list = |v: &Value, key: &str| -> Result<Vec<String>, ManifestError> {
                match &*w.val(v, key)? {
                    Value::Sequence(s) => s.iter().map(|x| w.string(x, key)).collect(),
                    other => Ok(vec![w.string(other, key)?]),
                }
            };
            for (k, v) in m {
                let key = str_key(k);
                let kpath = format!("{path}.{key}");
                match key.as_str() {
                    "allowedOrigins" => c.allow_origins = list(v, &kpath)?,
                    "allowedHeaders" => c.allow_headers = list(v, &kpath)?,
                    "allowedMethods" => c.allow_methods = list(v, &kpath)?,
                    "exposedResponseHeaders" => c.expose_headers = list(v, &kpath)?,
                    "allowCredentials" => c.allow_credentials = w.boolean(v, &kpath)?,
                    "maxAge" => c.max_age_secs = Some(w.number(v, &kpath)? as u64),
                    _ => return Err(w.err(kpath, "unknown CORS key")),
                }
            }
            Ok(Some(c))
        }
        _ => Err(w.err(path, "must be true, false or a mapping")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn load(text: &str) -> Result<Loaded, ManifestError> {
        parse(
            Path::new("/svc/serverless.yml"),
            text,
            Path::new("/svc"),
            &LoadOptions::from_env_map([("UNUSED", "")]),
        )
    }

    const RMQ_BASE: &str = "service: s\nprovider:\n  name: aws\n  runtime: nodejs20.x\n";

    #[test]
    fn package_patterns_and_the_v2_lists_become_ordered_patterns() {
        let yml = format!(
            "{RMQ_BASE}package:\n  individually: true\n  include:\n    - docs/keep.md\n  exclude:\n    - docs/**\n  patterns:\n    - '!tests/**'\n  artifact: build.zip\nfunctions:\n  a:\n    handler: h.h\n    package:\n      patterns:\n        - '!big/**'\n  b:\n    handler: h.h\n"
        );
        let l = load(&yml).unwrap();
        let f = |n: &str| {
            l.app
                .functions
                .values()
                .find(|f| f.name.as_str() == n)
                .unwrap()
                .package
                .clone()
        };
        assert_eq!(
            f("b"),
            ["!tests/**", "!docs/**", "docs/keep.md"],
            "include wins over exclude"
        );
        assert_eq!(f("a"), ["!tests/**", "!docs/**", "docs/keep.md", "!big/**"]);
        assert!(
            l.warnings.iter().any(|w| w.contains("package.artifact")),
            "{:?}",
            l.warnings
        );
    }

    const STREAM_BASE: &str = "service: shop\nprovider:\n  name: aws\n  runtime: nodejs20.x\n  region: us-east-1\nresources:\n  Resources:\n    Orders:\n      Type: AWS::DynamoDB::Table\n      Properties:\n        TableName: orders\n        AttributeDefinitions: [{AttributeName: id, AttributeType: S}]\n        KeySchema: [{AttributeName: id, KeyType: HASH}]\n        StreamSpecification: {StreamViewType: NEW_AND_OLD_IMAGES}\n";

    #[test]
    fn dynamodb_stream_events_become_dynamodb_stream_sources() {
        let yml = format!(
            "{STREAM_BASE}functions:\n  audit:\n    handler: h.h\n    events:\n      - stream:\n          type: dynamodb\n          arn: !GetAtt Orders.StreamArn\n          batchSize: 5\n          startingPosition: TRIM_HORIZON\n          maximumRetryAttempts: 2\n      - stream: arn:aws:dynamodb:us-east-1:000000000000:table/other/stream/2024-01-01T00:00:00.000\n      - stream: {{ arn: !GetAtt Orders.StreamArn, enabled: false }}\n"
        );
        let l = load(&yml).unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        assert_eq!(l.app.subscriptions.len(), 2, "`enabled: false` makes no subscription");
        let s = &l.app.subscriptions[0];
        assert_eq!(s.name.as_str(), "audit.orders-stream");
        assert_eq!(s.shape, EventShape::DynamoDb);
        assert_eq!(
            (s.batch_size, s.max_attempts),
            (5, 3),
            "maximumRetryAttempts counts retries"
        );
        let Some(crate::SourceSpec::DynamoDbStream(d)) = &s.source else {
            panic!("{:?}", s.source)
        };
        assert_eq!(d.table, "orders");
        assert_eq!(d.start, crate::StartPosition::Earliest);
        let Some(crate::SourceSpec::DynamoDbStream(d)) = &l.app.subscriptions[1].source else {
            panic!()
        };
        assert_eq!((d.table.as_str(), d.start), ("other", crate::StartPosition::Latest));
    }

    #[test]
    fn stream_filter_patterns_are_read_as_objects_or_cloudformation_text() {
        let yml = format!(
            "{STREAM_BASE}functions:\n  audit:\n    handler: h.h\n    events:\n      - stream:\n          arn: !GetAtt Orders.StreamArn\n          filterPatterns:\n            - eventName: [INSERT]\n            - pattern: '{{\"dynamodb\": {{\"NewImage\": {{\"status\": {{\"S\": [\"paid\"]}}}}}}}}'\n"
        );
        let l = load(&yml).unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let f = &l.app.subscriptions[0].filter;
        assert_eq!(f.patterns.len(), 2);
        let insert = br#"{"eventName":"INSERT","dynamodb":{"NewImage":{"status":{"S":"new"}}}}"#;
        let paid = br#"{"eventName":"MODIFY","dynamodb":{"NewImage":{"status":{"S":"paid"}}}}"#;
        let other = br#"{"eventName":"MODIFY","dynamodb":{"NewImage":{"status":{"S":"new"}}}}"#;
        assert!(f.matches_data(insert) && f.matches_data(paid) && !f.matches_data(other));
    }

    #[test]
    fn bad_stream_events_name_the_key() {
        for (event, key, msg) in [
            (
                "{ type: kinesis, arn: !GetAtt Orders.StreamArn }",
                "functions.audit.events[0].stream.type",
                "Gust serves DynamoDB streams only",
            ),
            (
                "{ arn: !GetAtt Orders.StreamArn, startingPosition: AT_TIMESTAMP }",
                "functions.audit.events[0].stream.startingPosition",
                "LATEST and TRIM_HORIZON",
            ),
            (
                "arn:aws:sqs:us-east-1:0:queue",
                "functions.audit.events[0].stream",
                "is not a DynamoDB stream ARN",
            ),
            (
                "{ batchSize: 2 }",
                "functions.audit.events[0].stream.arn",
                "is required",
            ),
            (
                "{ arn: !GetAtt Orders.StreamArn, filterPatterns: [{ eventName: [{ regex: x }] }] }",
                "functions.audit.events[0].stream.filterPatterns[0]",
                "unknown or malformed matcher `regex`",
            ),
        ] {
            let yml =
                format!("{STREAM_BASE}functions:\n  audit:\n    handler: h.h\n    events:\n      - stream: {event}\n");
            let e = load(&yml).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains(msg), "{event}: {e}");
        }
        let yml = format!("{STREAM_BASE}functions:\n  audit:\n    handler: h.h\n    events:\n      - stream: {{ arn: !GetAtt Orders.StreamArn, parallelizationFactor: 2 }}\n");
        let l = load(&yml).unwrap();
        assert!(
            l.warnings
                .iter()
                .any(|w| w.contains("functions.audit.events[0].stream.parallelizationFactor")),
            "an unsupported key is named, not silently taken: {:?}",
            l.warnings
        );
    }

    #[test]
    fn rabbitmq_events_become_rabbitmq_sources() {
        let yml = format!(
            "{RMQ_BASE}custom:\n  gust:\n    rabbitmq:\n      url: amqps://mq.internal:5671\n      username: orders\n      passwordSecret: RMQ_PASSWORD\nfunctions:\n  compute:\n    handler: h.h\n    events:\n      - rabbitmq:\n          arn: arn:aws:mq:us-east-1:0000:broker:B:b-1\n          queue: orders\n          virtualHost: shop/prod\n          basicAuthArn: arn:aws:secretsmanager:us-east-1:0:secret:S\n          batchSize: 5\n          maximumBatchingWindow: 2\n      - rabbitmq:\n          arn: arn:aws:mq:us-east-1:0000:broker:B:b-1\n          queue: paused\n          enabled: false\n"
        );
        let l = load(&yml).unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        assert_eq!(l.app.subscriptions.len(), 1, "`enabled: false` makes no subscription");
        assert!(l.app.topics.is_empty(), "a broker source has no Gust topic");
        let s = &l.app.subscriptions[0];
        assert_eq!(s.name.as_str(), "compute.orders");
        assert_eq!(s.shape, EventShape::RabbitMq);
        assert_eq!((s.batch_size, s.batch_window), (5, Duration::from_secs(2)));
        let Some(crate::SourceSpec::RabbitMq(r)) = &s.source else {
            panic!("{:?}", s.source)
        };
        assert_eq!(r.url, "amqps://mq.internal:5671/shop%2Fprod");
        assert_eq!(r.vhost(), "shop/prod");
        assert_eq!(r.username.as_deref(), Some("orders"));
        assert_eq!(r.password_secret.as_deref(), Some("RMQ_PASSWORD"));
        assert_eq!(r.broker_arn.as_deref(), Some("arn:aws:mq:us-east-1:0000:broker:B:b-1"));
    }

    #[test]
    fn rabbitmq_events_without_a_broker_url_use_the_local_one_and_say_so() {
        let yml = format!(
            "{RMQ_BASE}functions:\n  compute:\n    handler: h.h\n    events:\n      - rabbitmq:\n          arn: arn:aws:mq:us-east-1:0000:broker:B:b-1\n          queue: orders\n          basicAuthArn: arn:aws:secretsmanager:us-east-1:0:secret:S\n"
        );
        let l = load(&yml).unwrap();
        let Some(crate::SourceSpec::RabbitMq(r)) = &l.app.subscriptions[0].source else {
            panic!()
        };
        assert_eq!(r.url, "amqp://127.0.0.1:5672");
        let all = l.warnings.join("\n");
        assert!(all.contains("custom.gust.rabbitmq.url"), "{all}");
        assert!(all.contains("basicAuthArn") && all.contains("passwordSecret"), "{all}");

        let e = load(&format!(
            "{RMQ_BASE}custom:\n  gust:\n    rabbitmq:\n      url: amqp://u:p@h\nfunctions:\n  f:\n    handler: h.h\n    events:\n      - rabbitmq: {{ arn: a, queue: q }}\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "custom.gust.rabbitmq.url", "{e}");
        let e = load(&format!(
            "{RMQ_BASE}custom:\n  gust:\n    rabbitmq:\n      host: h\nfunctions:\n  f:\n    handler: h.h\n    events:\n      - rabbitmq: {{ arn: a, queue: q }}\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "custom.gust.rabbitmq.host", "{e}");
        let e = load(&format!(
            "{RMQ_BASE}functions:\n  f:\n    handler: h.h\n    events:\n      - rabbitmq: {{ arn: a }}\n"
        ))
        .unwrap_err();
        assert!(e.key.ends_with("rabbitmq.queue"), "{e}");
    }

    const SAMPLE: &str = r#"
service: users-api
frameworkVersion: '3'
plugins:
  - serverless-offline
provider:
  name: aws
  runtime: nodejs20.x
  region: eu-west-1
  timeout: 10
  environment:
    TABLE: users
    RETRIES: 3
  iam:
    role:
      statements: []
  httpApi:
    cors: true
functions:
  createUser:
    handler: src/users.create
    memorySize: 256
    reservedConcurrency: 5
    events:
      - httpApi:
          method: POST
          path: /users
      - http:
          path: legacy/users
          method: post
          cors: true
  getUser:
    handler: src/users.get
    runtime: python3.11
    environment:
      TABLE: users-read
    events:
      - httpApi: 'GET /users/{id}'
      - http: ANY /proxy/{proxy+}
      - sqs: arn:aws:sqs:eu-west-1:1:q
  catchAll:
    handler: src/all.handler
    layers: [arn:aws:lambda:x]
    events:
      - httpApi: '*'
resources:
  Resources: {}
"#;

    #[test]
    fn reads_a_serverless_project() {
        let l = load(SAMPLE).unwrap();
        let app = &l.app;
        assert_eq!(app.name.as_str(), "users-api");
        assert_eq!(app.region, "eu-west-1");
        let create = &app.functions[&FunctionName::new("createUser").unwrap()];
        assert_eq!(create.memory_mb, 256);
        assert_eq!(create.timeout, Duration::from_secs(10));
        assert_eq!(
            create.init_timeout,
            Duration::from_secs(10),
            "Lambda's, whatever the timeout"
        );
        assert_eq!(create.environment["RETRIES"], "3");
        assert_eq!(create.scaling.max_instances, 5);
        let get = &app.functions[&FunctionName::new("getUser").unwrap()];
        assert_eq!(get.kind, RuntimeKind::Python);
        assert_eq!(get.environment["TABLE"], "users-read");
        assert_eq!(get.memory_mb, 1024, "Serverless Framework's default");
        let keys: Vec<String> = app
            .routes
            .iter()
            .map(|r| {
                let RouteTarget::Function { function, payload } = &r.target else {
                    panic!("a function route")
                };
                format!("{} -> {function} {payload:?}", r.key)
            })
            .collect();
        assert_eq!(
            keys,
            [
                "POST /users -> createUser V2",
                "POST /legacy/users -> createUser V1",
                "GET /users/{id} -> getUser V2",
                "ANY /proxy/{proxy+} -> getUser V1",
                "$default -> catchAll V2",
            ]
        );
        assert!(app.cors.is_some());
        assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
        let w = &l.warnings[0];
        for key in ["plugins", "functions.catchAll.layers"] {
            assert!(w.contains(key), "{key} missing from {w}");
        }
        assert!(!w.contains("frameworkVersion"));
        assert!(!w.contains(".sqs"), "sqs events are supported");
        let sub = &app.subscriptions[0];
        assert_eq!(
            (sub.topic.as_str(), sub.function.as_str(), sub.name.as_str()),
            ("q", "getUser", "getUser.q")
        );
        assert_eq!(sub.shape, EventShape::Sqs);
    }

    #[test]
    fn every_lambda_runtime_name_and_a_warning_for_the_old_ones() {
        for (id, kind, old) in [
            ("nodejs24.x", RuntimeKind::Node, false),
            ("nodejs20.x", RuntimeKind::Node, false),
            ("nodejs18.x", RuntimeKind::Node, true),
            ("nodejs12.x", RuntimeKind::Node, true),
            ("nodejs4.3-edge", RuntimeKind::Node, true),
            ("python3.13", RuntimeKind::Python, false),
            ("python3.8", RuntimeKind::Python, true),
            ("python2.7", RuntimeKind::Python, true),
            ("provided.al2023", RuntimeKind::Provided, false),
        ] {
            let l = load(&format!(
                "service: s\nprovider:\n  name: aws\n  runtime: {id}\nfunctions:\n  f:\n    handler: h.h\n"
            ))
            .unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(l.app.functions[&FunctionName::new("f").unwrap()].kind, kind, "{id}");
            let warned = l
                .warnings
                .iter()
                .any(|w| w.contains("functions.f.runtime") && w.contains("deprecated"));
            assert_eq!(warned, old, "{id}: {:?}", l.warnings);
        }
        let e = load("service: s\nprovider:\n  name: aws\n  runtime: python3.x\nfunctions:\n  f:\n    handler: h.h\n")
            .unwrap_err();
        assert!(e.message.contains("python3.N"), "the message lists what is valid: {e}");
        let valid = e.message.split_once(": use ").unwrap().1;
        assert!(!valid.contains("python3.x"), "and not the name it refuses: {e}");
    }

    #[test]
    fn errors_name_the_key() {
        let e = load("service: s\nprovider:\n  name: aws\nfunctions:\n  f:\n    handler: h.h\n").unwrap_err();
        assert_eq!(e.key, "functions.f.runtime");
        let e = load("service: s\nprovider:\n  name: aws\n  runtime: nodejs20.x\nfunctions:\n  f:\n    handler: h.h\n    events:\n      - http:\n          path: /a\n").unwrap_err();
        assert_eq!(e.key, "functions.f.events[0].http.method");
        let e = load("service: s\nprovider:\n  name: azure\n").unwrap_err();
        assert_eq!(e.key, "provider.name");
        let e = load("service: s\nprovider: [\n").unwrap_err();
        assert!(e.message.starts_with("invalid YAML"), "{e}");
        let e = load("provider:\n  name: aws\n").unwrap_err();
        assert_eq!(e.key, "service");
        let e = load("service: s\nprovider:\n  name: aws\n  runtime: nodejs20.x\nfunctions:\n  f:\n    handler: h.h\n    timeout: 901\n").unwrap_err();
        assert_eq!(e.key, "functions.f.timeout");
    }
}
