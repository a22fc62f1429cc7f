//! The table of the admin address's operator, Lambda and public endpoints: method and path
//! template of each, written once in [`endpoints!`] and used three ways. The server routes
//! through [`Endpoint::resolve`] (so it cannot serve what the table does not list), the OpenAPI
//! document has one operation per entry (`openapi.rs` matches on every variant, so a new entry
//! does not compile without its contract), and the tests hold the two against each other.
//!
//! The platform API that functions reach through `GUST_API` (`docs/kv.md`, `docs/events.md`)
//! is not in this table: it is the functions' contract, not the operator's.
//!
//! Templates are segments separated by `/`; `{name}` matches one non-empty segment, taken as
//! it arrived (the server percent-decodes it). Empty segments are ignored, so
//! `/gust/v1/secrets/` is `/gust/v1/secrets`. Where a literal and a parameter both match
//! (`/gust/v1/dlq/{subscription}/redrive` and `/gust/v1/dlq/{subscription}/{seq}`), the
//! method decides, then the template with more literal segments.

/// Which credential an endpoint takes (`docs/control-plane.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Face {
    /// The operator token, as a bearer token.
    Operator,
    /// AWS Signature Version 4 with a Gust access key, or the operator token.
    Lambda,
    /// None.
    Public,
}

macro_rules! endpoints {
    ($( $(#[$doc:meta])* $name:ident = $face:ident $method:literal $path:literal, )*) => {
        /// Every endpoint of the admin address but the platform API's.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Endpoint {
            $( $(#[$doc])* $name, )*
        }

        impl Endpoint {
            /// Every endpoint, in the table's order.
            pub const ALL: &'static [Endpoint] = &[$(Endpoint::$name,)*];

            /// `GET`, `POST`, `PUT` or `DELETE`.
            pub fn method(self) -> &'static str {
                match self { $(Endpoint::$name => $method,)* }
            }

            /// The path template, as in the OpenAPI document (`/gust/v1/secrets/{name}`).
            pub fn path(self) -> &'static str {
                match self { $(Endpoint::$name => $path,)* }
            }

            pub fn face(self) -> Face {
                match self { $(Endpoint::$name => Face::$face,)* }
            }

            /// The variant's name: the operation's `operationId`.
            pub fn name(self) -> &'static str {
                match self { $(Endpoint::$name => stringify!($name),)* }
            }
        }
    };
}

endpoints! {
    /// The deployed functions with their instance pools.
    ListFunctions = Operator "GET" "/gust/v1/functions",
    /// One function's configuration, instances and triggers (the console's function page).
    GetFunction = Operator "GET" "/gust/v1/functions/{name}",
    /// The app, its version, the sandbox and what needs attention (the console's overview).
    GetStatus = Operator "GET" "/gust/v1/status",
    /// Time series from the per-minute rollups.
    GetSeries = Operator "GET" "/gust/v1/series",
    /// Per-function totals from the per-minute rollups.
    GetStats = Operator "GET" "/gust/v1/stats",
    /// `gust console`: a one-time login code for the web console.
    CreateConsoleCode = Operator "POST" "/gust/v1/console/codes",
    ListAccessKeys = Operator "GET" "/gust/v1/access-keys",
    CreateAccessKey = Operator "POST" "/gust/v1/access-keys",
    RemoveAccessKey = Operator "DELETE" "/gust/v1/access-keys/{id}",
    ListApiKeys = Operator "GET" "/gust/v1/apikeys",
    CreateApiKey = Operator "POST" "/gust/v1/apikeys",
    RemoveApiKey = Operator "DELETE" "/gust/v1/apikeys/{name}",
    ListSecrets = Operator "GET" "/gust/v1/secrets",
    SetSecret = Operator "PUT" "/gust/v1/secrets/{name}",
    RemoveSecret = Operator "DELETE" "/gust/v1/secrets/{name}",
    RotateMasterKey = Operator "POST" "/gust/v1/secrets/master/rotate",
    ListInvocations = Operator "GET" "/gust/v1/invocations",
    ListLogs = Operator "GET" "/gust/v1/logs",
    /// New log lines as they are written (server-sent events).
    StreamLogs = Operator "GET" "/gust/v1/logs/stream",
    GetTrace = Operator "GET" "/gust/v1/traces/{trace_id}",
    GetUsage = Operator "GET" "/gust/v1/usage",
    ListSchedules = Operator "GET" "/gust/v1/schedules",
    RunSchedule = Operator "POST" "/gust/v1/schedules/{name}/run",
    /// `gust redeploy`: read the app's manifest and code again and switch to them.
    Redeploy = Operator "POST" "/gust/v1/deployments",
    /// `gust deployments`.
    ListDeployments = Operator "GET" "/gust/v1/deployments",
    /// `gust rollback [--to N]`.
    Rollback = Operator "POST" "/gust/v1/deployments/rollback",
    /// `gust publish`; with a function's token the same path is the platform API's publish.
    Publish = Operator "POST" "/gust/v1/events/{topic}",
    ListSubscriptions = Operator "GET" "/gust/v1/subscriptions",
    /// A subscription's backlog over time (sampled each minute).
    GetSubscriptionSeries = Operator "GET" "/gust/v1/subscriptions/{name}/series",
    ListDeadLetters = Operator "GET" "/gust/v1/dlq",
    GetDeadLetter = Operator "GET" "/gust/v1/dlq/{subscription}/{seq}",
    RedriveDeadLetters = Operator "POST" "/gust/v1/dlq/{subscription}/redrive",
    PurgeDeadLetters = Operator "DELETE" "/gust/v1/dlq/{subscription}",
    /// Prometheus text.
    Metrics = Operator "GET" "/metrics",
    /// Lambda's `Invoke`.
    Invoke = Lambda "POST" "/2015-03-31/functions/{name}/invocations",
    /// Lambda's `ListFunctions`.
    LambdaListFunctions = Lambda "GET" "/2015-03-31/functions",
    /// Lambda's `GetFunction`.
    LambdaGetFunction = Lambda "GET" "/2015-03-31/functions/{name}",
    /// Lambda's `GetFunctionConfiguration`.
    LambdaGetFunctionConfiguration = Lambda "GET" "/2015-03-31/functions/{name}/configuration",
    /// Lambda's `GetAccountSettings`.
    LambdaGetAccountSettings = Lambda "GET" "/2016-08-19/account-settings",
    Health = Public "GET" "/healthz",
    /// This document.
    OpenApi = Public "GET" "/gust/v1/openapi.json",
}

/// A request matched to its endpoint, with the path's parameters as they arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub endpoint: Endpoint,
    params: Vec<(&'static str, String)>,
}

/// Why a request matched no endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    /// No template has this path.
    NoPath,
    /// The path is known, with these other methods.
    WrongMethod(Vec<&'static str>),
}

impl Route {
    /// The path parameter `name` as it arrived (still percent-encoded). Panics on a name the
    /// endpoint's template does not have: that is a server bug, not bad input.
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{} has no path parameter `{name}`", self.endpoint.path()))
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

impl Endpoint {
    /// The endpoint `method` and `path` (no query) ask for.
    pub fn resolve(method: &str, path: &str) -> Result<Route, Miss> {
        let got: Vec<&str> = segments(path).collect();
        let mut best: Option<(usize, Route)> = None;
        let mut other_methods = Vec::new();
        for &e in Self::ALL {
            let Some(params) = e.match_path(&got) else { continue };
            if !e.method().eq_ignore_ascii_case(method) {
                if !other_methods.contains(&e.method()) {
                    other_methods.push(e.method());
                }
                continue;
            }
            let literals = segments(e.path()).filter(|s| !s.starts_with('{')).count();
            if best.as_ref().is_none_or(|(n, _)| literals > *n) {
                best = Some((literals, Route { endpoint: e, params }));
            }
        }
        match best {
            Some((_, route)) => Ok(route),
            None if other_methods.is_empty() => Err(Miss::NoPath),
            None => Err(Miss::WrongMethod(other_methods)),
        }
    }

    /// The template's parameters when `got` fits it.
    fn match_path(self, got: &[&str]) -> Option<Vec<(&'static str, String)>> {
        let want: Vec<&'static str> = segments(self.path()).collect();
        if want.len() != got.len() {
            return None;
        }
        let mut params = Vec::new();
        for (w, g) in want.iter().zip(got) {
            match w.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) => params.push((name, (*g).to_string())),
                None if w == g => {}
                None => return None,
            }
        }
        Some(params)
    }

    /// The names of the template's path parameters, in order.
    pub fn path_params(self) -> impl Iterator<Item = &'static str> {
        segments(self.path()).filter_map(|s| s.strip_prefix('{').and_then(|p| p.strip_suffix('}')))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A concrete path for a template: `{x}` becomes `x-1`.
    fn sample(e: Endpoint) -> String {
        e.path()
            .split('/')
            .map(|s| match s.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) => format!("{name}-1"),
                None => s.to_string(),
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    #[test]
    fn every_template_resolves_to_its_own_endpoint() {
        for &e in Endpoint::ALL {
            let route = Endpoint::resolve(e.method(), &sample(e)).unwrap_or_else(|m| panic!("{e:?}: {m:?}"));
            assert_eq!(route.endpoint, e, "{}", sample(e));
            for p in e.path_params() {
                assert_eq!(route.param(p), format!("{p}-1"));
            }
        }
    }

    #[test]
    fn no_two_endpoints_share_a_method_and_path() {
        let mut seen = std::collections::HashSet::new();
        for &e in Endpoint::ALL {
            assert!(
                seen.insert((e.method(), e.path())),
                "{e:?} repeats {} {}",
                e.method(),
                e.path()
            );
        }
    }

    #[test]
    fn literals_win_over_parameters_and_methods_decide() {
        let r = Endpoint::resolve("POST", "/gust/v1/dlq/orders/redrive").unwrap();
        assert_eq!(r.endpoint, Endpoint::RedriveDeadLetters);
        assert_eq!(r.param("subscription"), "orders");
        let r = Endpoint::resolve("GET", "/gust/v1/dlq/orders/redrive").unwrap();
        assert_eq!((r.endpoint, r.param("seq")), (Endpoint::GetDeadLetter, "redrive"));
        let r = Endpoint::resolve("POST", "/gust/v1/secrets/master/rotate").unwrap();
        assert_eq!(r.endpoint, Endpoint::RotateMasterKey);
        let r = Endpoint::resolve("DELETE", "/gust/v1/secrets/master").unwrap();
        assert_eq!((r.endpoint, r.param("name")), (Endpoint::RemoveSecret, "master"));
    }

    #[test]
    fn misses_say_whether_the_path_is_known() {
        assert_eq!(
            Endpoint::resolve("PATCH", "/gust/v1/secrets"),
            Err(Miss::WrongMethod(vec!["GET"]))
        );
        assert_eq!(
            Endpoint::resolve("POST", "/gust/v1/secrets/x"),
            Err(Miss::WrongMethod(vec!["PUT", "DELETE"]))
        );
        assert_eq!(Endpoint::resolve("GET", "/gust/v1/apikeysx"), Err(Miss::NoPath));
        assert_eq!(Endpoint::resolve("GET", "/gust/v1/secrets/a/b"), Err(Miss::NoPath));
        assert_eq!(Endpoint::resolve("GET", "/"), Err(Miss::NoPath));
        // Empty segments do not count.
        assert_eq!(
            Endpoint::resolve("GET", "/gust/v1/secrets/").unwrap().endpoint,
            Endpoint::ListSecrets
        );
    }
}
