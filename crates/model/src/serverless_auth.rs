//! serverless.yml authorizers and API keys, mapped onto Gust's route checks.
//!
//! Authorizers are a security feature, so nothing here is ever a warning: a key Gust reads is
//! mapped, and anything else under an authorizer (an unknown key, a Cognito or IAM authorizer,
//! an authorizer by ARN, a usage plan Gust cannot enforce) refuses to start with the key and
//! what Gust supports. A route is never served with less protection than its manifest asks.
//!
//! - `provider.httpApi.authorizers.NAME` of `type: jwt` -> a JWT authorizer (JWKS by OpenID
//!   discovery from `issuerUrl`); of `type: request` -> a Lambda authorizer.
//! - `http.authorizer` (`fnName`, `{name, type, identitySource, resultTtlInSeconds,
//!   identityValidationExpression}`) -> a Lambda authorizer of the REST shape.
//! - `httpApi.authorizer: {name, scopes}` -> the named JWT or Lambda authorizer.
//! - `http.private: true` -> an API key is required; `provider.apiGateway.apiKeys` (also the
//!   older `provider.apiKeys`) and `usagePlan` -> Gust API keys with their limits.

use super::{str_key, Walker};
use crate::app::{add_lambda_authorizer, DEFAULT_AUTHORIZER_TTL_SECS, MAX_AUTHORIZER_TTL_SECS};
use crate::{
    ApiKeySpec, AuthorizerFormat, FunctionName, IdentitySource, JwtAuthorizerSpec, LambdaAuthorizerKind,
    LambdaAuthorizerSpec, ManifestError, RouteAuth,
};
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// What the authorizers support, for refusals.
const SUPPORTED: &str = "Gust supports Lambda authorizers that are functions of this service \
(`authorizer: fnName` or `authorizer: {name: fnName, type: token|request}` on `http` events; \
`provider.httpApi.authorizers.NAME: {type: request, functionName}` for `httpApi` events) and JWT \
authorizers (`provider.httpApi.authorizers.NAME: {type: jwt, issuerUrl, audience}`)";

/// The authorizers and keys of one serverless.yml, filled while it is read.
#[derive(Default)]
pub(super) struct Auth {
    /// `provider.httpApi.authorizers`, by name.
    http_api: BTreeMap<String, HttpApiAuthorizer>,
    pub(super) jwt: BTreeMap<FunctionName, JwtAuthorizerSpec>,
    pub(super) lambda: BTreeMap<FunctionName, LambdaAuthorizerSpec>,
    /// Lambda authorizers whose function must exist: (its key, function).
    pub(super) functions_named: Vec<(String, FunctionName)>,
    /// Keys as written, before their usage plans are known: (plan or None, key, its key path).
    raw_keys: Vec<(Option<String>, RawKey, String)>,
    /// Usage plans by name (`None`: the single plan of a flat `usagePlan`).
    plans: BTreeMap<Option<String>, Plan>,
    plans_key: String,
}

enum HttpApiAuthorizer {
    Jwt(FunctionName),
    Lambda(FunctionName),
}

struct RawKey {
    name: String,
    value: Option<String>,
    enabled: bool,
}

#[derive(Default, Clone)]
struct Plan {
    rate: Option<f64>,
    burst: Option<u32>,
    quota_per_day: Option<u64>,
}

/// API Gateway's shortest key value.
const MIN_KEY_VALUE: usize = 20;

fn unknown(w: &Walker<'_>, key: String) -> ManifestError {
    w.err(
        key,
        "is not a key Gust knows here; authorizer settings are never ignored, so Gust refuses to start",
    )
}

fn ttl(w: &Walker<'_>, v: &Value, key: &str) -> Result<Duration, ManifestError> {
    let n = w.number(v, key)?;
    if !(0.0..=MAX_AUTHORIZER_TTL_SECS as f64).contains(&n) || n.fract() != 0.0 {
        return Err(w.err(
            key,
            format!("must be a whole number of seconds from 0 to {MAX_AUTHORIZER_TTL_SECS}"),
        ));
    }
    Ok(Duration::from_secs(n as u64))
}

fn string_list(w: &Walker<'_>, v: &Value, key: &str) -> Result<Vec<String>, ManifestError> {
    match &*w.val(v, key)? {
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .map(|(i, x)| w.string(x, &format!("{key}[{i}]")))
            .collect(),
        other => Ok(vec![w.string(other, key)?]),
    }
}

fn identity_sources(
    w: &Walker<'_>,
    v: &Value,
    key: &str,
    comma_separated: bool,
) -> Result<Vec<IdentitySource>, ManifestError> {
    let mut out = Vec::new();
    for text in string_list(w, v, key)? {
        let parts: Vec<&str> = if comma_separated {
            text.split(',').collect()
        } else {
            vec![text.as_str()]
        };
        for p in parts {
            out.push(IdentitySource::parse(p).map_err(|m| w.err(key, m))?);
        }
    }
    if out.is_empty() {
        return Err(w.err(key, "must name at least one header or query string parameter"));
    }
    Ok(out)
}

fn refuse_arn(w: &Walker<'_>, key: &str, arn: &str) -> ManifestError {
    let what = if arn.contains(":cognito-idp:") {
        "a Cognito user pool authorizer"
    } else {
        "an authorizer given by ARN"
    };
    w.err(key, format!("{what} (`{arn}`) cannot be mapped: {SUPPORTED}"))
}

fn function_name(w: &Walker<'_>, name: &str, key: &str) -> Result<FunctionName, ManifestError> {
    if name.starts_with("arn:") {
        return Err(refuse_arn(w, key, name));
    }
    if name.eq_ignore_ascii_case("aws_iam") {
        return Err(w.err(
            key,
            format!("IAM authorization (`aws_iam`) cannot be mapped: {SUPPORTED}"),
        ));
    }
    FunctionName::new(name).map_err(|e| w.err(key, e.to_string()))
}

impl Auth {
    /// `provider.httpApi.authorizers`.
    pub(super) fn http_api_authorizers(&mut self, w: &Walker<'_>, v: &Value, path: &str) -> Result<(), ManifestError> {
        for (k, a) in w.mapping(v, path)?.iter() {
            let name = str_key(k);
            let base = format!("{path}.{name}");
            let m = w.mapping(a, &base)?;
            let kind = match m.get("type") {
                Some(t) => w.string(t, &format!("{base}.type"))?.to_ascii_lowercase(),
                None => "jwt".into(),
            };
            let entry = match kind.as_str() {
                "jwt" => HttpApiAuthorizer::Jwt(self.http_api_jwt(w, &name, &m, &base)?),
                "request" => HttpApiAuthorizer::Lambda(self.http_api_lambda(w, &name, &m, &base)?),
                other => {
                    return Err(w.err(
                        format!("{base}.type"),
                        format!("authorizer type `{other}` cannot be mapped: use `jwt` or `request`"),
                    ))
                }
            };
            self.http_api.insert(name, entry);
        }
        Ok(())
    }

    fn http_api_jwt(
        &mut self,
        w: &Walker<'_>,
        name: &str,
        m: &Mapping,
        base: &str,
    ) -> Result<FunctionName, ManifestError> {
        let mut issuer = None;
        let mut audiences = Vec::new();
        for (k, v) in m {
            let key = str_key(k);
            let kpath = format!("{base}.{key}");
            match key.as_str() {
                "type" | "name" => {}
                "identitySource" => {
                    let sources = identity_sources(w, v, &kpath, false)?;
                    if sources != [IdentitySource::Header("authorization".into())] {
                        return Err(w.err(
                            kpath,
                            "Gust's JWT authorizers read the token from `$request.header.Authorization` only",
                        ));
                    }
                }
                "issuerUrl" => issuer = Some(w.string(v, &kpath)?),
                "audience" => audiences = string_list(w, v, &kpath)?,
                _ => return Err(unknown(w, kpath)),
            }
        }
        let issuer = issuer.ok_or_else(|| w.err(format!("{base}.issuerUrl"), "is required"))?;
        if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
            return Err(w.err(format!("{base}.issuerUrl"), "must be an https:// URL"));
        }
        if audiences.is_empty() {
            return Err(w.err(format!("{base}.audience"), "at least one audience is required"));
        }
        let fname = FunctionName::new(name).map_err(|e| w.err(base, e.to_string()))?;
        self.jwt.insert(
            fname.clone(),
            JwtAuthorizerSpec {
                name: fname.clone(),
                issuer,
                audiences,
                jwks_file: None,
                jwks_url: None,
                hs256_secret: None,
                openid_discovery: true,
            },
        );
        Ok(fname)
    }

    fn http_api_lambda(
        &mut self,
        w: &Walker<'_>,
        name: &str,
        m: &Mapping,
        base: &str,
    ) -> Result<FunctionName, ManifestError> {
        let mut function = None;
        let mut sources = None;
        let mut simple = false;
        let mut format = AuthorizerFormat::HttpV2;
        let mut ttl_value = Duration::from_secs(DEFAULT_AUTHORIZER_TTL_SECS);
        for (k, v) in m {
            let key = str_key(k);
            let kpath = format!("{base}.{key}");
            match key.as_str() {
                "type" | "name" => {}
                "functionName" => function = Some(function_name(w, &w.string(v, &kpath)?, &kpath)?),
                "functionArn" => return Err(refuse_arn(w, &kpath, &w.string(v, &kpath)?)),
                "identitySource" => sources = Some(identity_sources(w, v, &kpath, false)?),
                "enableSimpleResponses" => simple = w.boolean(v, &kpath)?,
                "payloadVersion" => {
                    format = match w.string(v, &kpath)?.as_str() {
                        "2.0" => AuthorizerFormat::HttpV2,
                        "1.0" => AuthorizerFormat::HttpV1,
                        other => return Err(w.err(kpath, format!("`{other}`: use '1.0' or '2.0'"))),
                    }
                }
                "resultTtlInSeconds" => ttl_value = ttl(w, v, &kpath)?,
                "managedExternally" if !w.boolean(v, &kpath)? => {}
                _ => return Err(unknown(w, kpath)),
            }
        }
        let function = function.ok_or_else(|| w.err(format!("{base}.functionName"), "is required"))?;
        if simple && format != AuthorizerFormat::HttpV2 {
            return Err(w.err(
                format!("{base}.enableSimpleResponses"),
                "simple responses exist only with payloadVersion '2.0'",
            ));
        }
        // Without identity sources there is nothing to key a cache on: every request invokes.
        let identity_sources = sources.unwrap_or_default();
        if identity_sources.is_empty() {
            ttl_value = Duration::ZERO;
        }
        let fname = FunctionName::new(name).map_err(|e| w.err(base, e.to_string()))?;
        self.functions_named
            .push((format!("{base}.functionName"), function.clone()));
        self.lambda.insert(
            fname.clone(),
            LambdaAuthorizerSpec {
                name: fname.clone(),
                function,
                kind: LambdaAuthorizerKind::Request,
                format,
                identity_sources,
                ttl: ttl_value,
                validation: None,
                simple_responses: simple,
            },
        );
        Ok(fname)
    }

    /// `authorizer` of an `http` (REST) event: the name of the Lambda authorizer it uses.
    pub(super) fn rest_authorizer(
        &mut self,
        w: &Walker<'_>,
        v: &Value,
        path: &str,
    ) -> Result<FunctionName, ManifestError> {
        let mut kind = LambdaAuthorizerKind::Token;
        let mut function = None;
        let mut sources = None;
        let mut ttl_value = Duration::from_secs(DEFAULT_AUTHORIZER_TTL_SECS);
        let mut validation = None;
        match &*w.val(v, path)? {
            Value::Mapping(m) => {
                for (k, v) in m {
                    let key = str_key(k);
                    let kpath = format!("{path}.{key}");
                    match key.as_str() {
                        "name" => function = Some(function_name(w, &w.string(v, &kpath)?, &kpath)?),
                        "arn" => {
                            let arn = match &*w.val(v, &kpath)? {
                                Value::String(s) => s.clone(),
                                _ => "a CloudFormation reference".into(),
                            };
                            return Err(refuse_arn(w, &kpath, &arn));
                        }
                        "type" => {
                            kind = match w.string(v, &kpath)?.to_ascii_lowercase().as_str() {
                                "token" => LambdaAuthorizerKind::Token,
                                "request" => LambdaAuthorizerKind::Request,
                                "aws_iam" => {
                                    return Err(w.err(
                                        kpath,
                                        format!("IAM authorization (`aws_iam`) cannot be mapped: {SUPPORTED}"),
                                    ))
                                }
                                other => {
                                    return Err(w.err(
                                        kpath,
                                        format!("authorizer type `{other}` cannot be mapped: {SUPPORTED}"),
                                    ))
                                }
                            }
                        }
                        "identitySource" => sources = Some(identity_sources(w, v, &kpath, true)?),
                        "resultTtlInSeconds" => ttl_value = ttl(w, v, &kpath)?,
                        "identityValidationExpression" => validation = Some(w.string(v, &kpath)?),
                        "authorizerId" => {
                            return Err(w.err(
                                kpath,
                                format!("an authorizer defined outside this file cannot be mapped: {SUPPORTED}"),
                            ))
                        }
                        "managedExternally" if !w.boolean(v, &kpath)? => {}
                        _ => return Err(unknown(w, kpath)),
                    }
                }
            }
            other => function = Some(function_name(w, &w.string(other, path)?, path)?),
        }
        let function = function.ok_or_else(|| w.err(format!("{path}.name"), "is required"))?;
        let identity_sources = sources.unwrap_or_else(|| vec![IdentitySource::Header("authorization".into())]);
        if kind == LambdaAuthorizerKind::Token {
            if !matches!(identity_sources.as_slice(), [IdentitySource::Header(_)]) {
                return Err(w.err(
                    format!("{path}.identitySource"),
                    "a TOKEN authorizer reads exactly one header (`method.request.header.NAME`)",
                ));
            }
        } else if validation.is_some() {
            return Err(w.err(
                format!("{path}.identityValidationExpression"),
                "applies to TOKEN authorizers only",
            ));
        }
        self.functions_named.push((format!("{path}.name"), function.clone()));
        let spec = LambdaAuthorizerSpec {
            name: function.clone(),
            function,
            kind,
            format: AuthorizerFormat::Rest,
            identity_sources,
            ttl: ttl_value,
            validation,
            simple_responses: false,
        };
        Ok(add_lambda_authorizer(&mut self.lambda, spec))
    }

    /// `authorizer` of an `httpApi` event: fills the route's checks.
    pub(super) fn http_api_route(
        &self,
        w: &Walker<'_>,
        v: &Value,
        path: &str,
        auth: &mut RouteAuth,
    ) -> Result<(), ManifestError> {
        let mut name = None;
        let mut scopes = Vec::new();
        match &*w.val(v, path)? {
            Value::Mapping(m) => {
                for (k, v) in m {
                    let key = str_key(k);
                    let kpath = format!("{path}.{key}");
                    match key.as_str() {
                        "name" => name = Some(w.string(v, &kpath)?),
                        "scopes" => scopes = string_list(w, v, &kpath)?,
                        "type" => {
                            let t = w.string(v, &kpath)?;
                            return Err(w.err(
                                kpath,
                                format!("authorizer type `{t}` cannot be mapped on a route: {SUPPORTED}"),
                            ));
                        }
                        "id" => {
                            return Err(w.err(
                                kpath,
                                format!("an authorizer defined outside this file cannot be mapped: {SUPPORTED}"),
                            ))
                        }
                        _ => return Err(unknown(w, kpath)),
                    }
                }
            }
            other => name = Some(w.string(other, path)?),
        }
        let name = name.ok_or_else(|| w.err(format!("{path}.name"), "is required"))?;
        match self.http_api.get(&name) {
            Some(HttpApiAuthorizer::Jwt(a)) => {
                auth.jwt = Some(a.clone());
                auth.scopes = scopes;
            }
            Some(HttpApiAuthorizer::Lambda(a)) => {
                if !scopes.is_empty() {
                    return Err(w.err(
                        format!("{path}.scopes"),
                        "scopes are checked by JWT authorizers only (API Gateway ignores them for Lambda authorizers)",
                    ));
                }
                auth.lambda = Some(a.clone());
            }
            None => {
                return Err(w.err(
                    format!("{path}.name"),
                    format!("no authorizer `{name}` in provider.httpApi.authorizers"),
                ))
            }
        }
        Ok(())
    }

    /// `provider.apiKeys` / `provider.apiGateway.apiKeys`: names, `{name, value, enabled}`, or
    /// `{PLAN: [keys]}` groups.
    pub(super) fn api_keys(&mut self, w: &Walker<'_>, v: &Value, path: &str) -> Result<(), ManifestError> {
        let v = w.val(v, path)?;
        let Some(items) = v.as_sequence() else {
            return Err(w.err(path, "must be a list of keys"));
        };
        for (i, item) in items.iter().enumerate() {
            let ipath = format!("{path}[{i}]");
            let item = w.val(item, &ipath)?;
            // `- free: [keys]`: a usage plan's keys.
            if let Value::Mapping(m) = &*item {
                if m.len() == 1 && !m.contains_key("name") {
                    let (plan, keys) = m.iter().next().expect("one entry");
                    let plan = str_key(plan);
                    let gpath = format!("{ipath}.{plan}");
                    let keys = w.val(keys, &gpath)?;
                    let Some(keys) = keys.as_sequence() else {
                        return Err(w.err(gpath, "must be a list of keys"));
                    };
                    for (j, key) in keys.iter().enumerate() {
                        let kpath = format!("{gpath}[{j}]");
                        let raw = self.raw_key(w, key, &kpath)?;
                        self.raw_keys.push((Some(plan.clone()), raw, kpath));
                    }
                    continue;
                }
            }
            let raw = self.raw_key(w, &item, &ipath)?;
            self.raw_keys.push((None, raw, ipath));
        }
        Ok(())
    }

    fn raw_key(&self, w: &Walker<'_>, v: &Value, path: &str) -> Result<RawKey, ManifestError> {
        let mut key = RawKey {
            name: String::new(),
            value: None,
            enabled: true,
        };
        match &*w.val(v, path)? {
            Value::Mapping(m) => {
                for (k, v) in m {
                    let kname = str_key(k);
                    let kpath = format!("{path}.{kname}");
                    match kname.as_str() {
                        "name" => key.name = w.string(v, &kpath)?,
                        "value" => key.value = Some(w.string(v, &kpath)?),
                        "enabled" => key.enabled = w.boolean(v, &kpath)?,
                        "description" | "customerId" => {}
                        _ => return Err(unknown(w, kpath)),
                    }
                }
            }
            other => key.name = w.string(other, path)?,
        }
        if FunctionName::new(&key.name).is_err() {
            return Err(w.err(
                path,
                format!(
                    "key name `{}`: names are letters, digits, '-' and '_' (64 at most)",
                    key.name
                ),
            ));
        }
        if let Some(value) = &key.value {
            if value.len() < MIN_KEY_VALUE || value.len() > crate::app::MAX_API_KEY_VALUE {
                return Err(w.err(
                    format!("{path}.value"),
                    format!(
                        "an API key value is {MIN_KEY_VALUE} to {} characters (as API Gateway's)",
                        crate::app::MAX_API_KEY_VALUE
                    ),
                ));
            }
        }
        Ok(key)
    }

    /// `usagePlan`: one plan (`{quota, throttle}`) or a list of named ones (`- free: {...}`).
    pub(super) fn usage_plan(&mut self, w: &Walker<'_>, v: &Value, path: &str) -> Result<(), ManifestError> {
        self.plans_key = path.to_string();
        match &*w.val(v, path)? {
            Value::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    let ipath = format!("{path}[{i}]");
                    let m = w.mapping(item, &ipath)?;
                    for (name, plan) in m.iter() {
                        let name = str_key(name);
                        let p = plan_of(w, plan, &format!("{ipath}.{name}"))?;
                        self.plans.insert(Some(name), p);
                    }
                }
            }
            other => {
                let p = plan_of(w, other, path)?;
                self.plans.insert(None, p);
            }
        }
        Ok(())
    }

    /// The API keys with their plans' limits, once the whole provider has been read.
    pub(super) fn keys(&self, w: &Walker<'_>) -> Result<Vec<ApiKeySpec>, ManifestError> {
        let mut out: Vec<ApiKeySpec> = Vec::new();
        for (plan, raw, path) in &self.raw_keys {
            if !raw.enabled {
                continue;
            }
            let limits = match plan {
                Some(name) => self.plans.get(plan).cloned().ok_or_else(|| {
                    w.err(
                        path,
                        format!("no usage plan `{name}` is declared (provider.apiGateway.usagePlan: - {name}: ...)"),
                    )
                })?,
                // A flat key list shares the one plan (or has no limits).
                None => self.plans.get(&None).cloned().unwrap_or_default(),
            };
            if out.iter().any(|k| k.name == raw.name) {
                return Err(w.err(path, format!("API key `{}` is declared twice", raw.name)));
            }
            out.push(ApiKeySpec {
                name: raw.name.clone(),
                value: raw.value.clone(),
                rate: limits.rate,
                burst: limits.burst,
                quota_per_day: limits.quota_per_day,
            });
        }
        if self.raw_keys.iter().all(|(p, ..)| p.is_none()) && self.plans.keys().any(Option::is_some) {
            return Err(w.err(
                &self.plans_key,
                "named usage plans need their keys grouped by plan (apiKeys: - PLAN: [keys])",
            ));
        }
        Ok(out)
    }
}

fn plan_of(w: &Walker<'_>, v: &Value, path: &str) -> Result<Plan, ManifestError> {
    let mut plan = Plan::default();
    for (k, v) in w.mapping(v, path)?.iter() {
        let key = str_key(k);
        let kpath = format!("{path}.{key}");
        match key.as_str() {
            "throttle" => {
                for (tk, tv) in w.mapping(v, &kpath)?.iter() {
                    let tkey = str_key(tk);
                    let tpath = format!("{kpath}.{tkey}");
                    match tkey.as_str() {
                        "rateLimit" => {
                            let r = w.number(tv, &tpath)?;
                            if !(r.is_finite() && r > 0.0) {
                                return Err(w.err(tpath, "must be a positive number of requests per second"));
                            }
                            plan.rate = Some(r);
                        }
                        "burstLimit" => plan.burst = Some(w.number(tv, &tpath)?.max(1.0) as u32),
                        _ => return Err(unknown(w, tpath)),
                    }
                }
                if plan.burst.is_some() && plan.rate.is_none() {
                    return Err(w.err(format!("{kpath}.rateLimit"), "is required with burstLimit"));
                }
            }
            "quota" => {
                let mut limit = None;
                let mut period = "DAY".to_string();
                for (qk, qv) in w.mapping(v, &kpath)?.iter() {
                    let qkey = str_key(qk);
                    let qpath = format!("{kpath}.{qkey}");
                    match qkey.as_str() {
                        "limit" => limit = Some(w.number(qv, &qpath)?.max(0.0) as u64),
                        "period" => period = w.string(qv, &qpath)?.to_ascii_uppercase(),
                        "offset" => {
                            if w.number(qv, &qpath)? != 0.0 {
                                return Err(w.err(qpath, "Gust's quotas start at UTC midnight: offset must be 0"));
                            }
                        }
                        _ => return Err(unknown(w, qpath)),
                    }
                }
                if period != "DAY" {
                    return Err(w.err(
                        format!("{kpath}.period"),
                        format!("a {period} quota cannot be mapped: Gust counts quotas per UTC day (period: DAY)"),
                    ));
                }
                plan.quota_per_day = Some(limit.ok_or_else(|| w.err(format!("{kpath}.limit"), "is required"))?);
            }
            "name" | "description" => {}
            _ => return Err(unknown(w, kpath)),
        }
    }
    Ok(plan)
}
