//! The route table: method + path template -> target, most specific first.
//!
//! A segment trie, so lookup cost depends on the path's depth, not on the number of routes
//! (1,000 routes must cost no more than a few percent of throughput). At each segment a
//! literal beats a `{param}`, which beats a greedy `{proxy+}`; the search backtracks so
//! `GET /users/{id}` and `ANY /{proxy+}` coexist. A path that matches only under other
//! methods gives 405 with `Allow`; `$default` catches what nothing else does.

use gust_model::{MethodMatch, RouteKey, RouteSpec, RouteTarget};
use std::collections::HashMap;
use std::sync::Arc;

/// A matched route.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteMatch<'a> {
    pub route: &'a CompiledRoute,
    /// `(name, decoded value)` for each `{param}` in the template.
    pub params: Vec<(Arc<str>, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CompiledRoute {
    /// `POST /users/{id}` as written in the manifest (API Gateway's `routeKey`).
    pub key: String,
    /// The template path (`/users/{id}`), REST's `resource`.
    pub resource: String,
    pub target: RouteTarget,
    pub auth: gust_model::RouteAuth,
    param_names: Vec<Arc<str>>,
}

#[derive(Debug, PartialEq)]
pub enum Lookup<'a> {
    Found(RouteMatch<'a>),
    MethodNotAllowed(Vec<String>),
    NotFound,
}

#[derive(Debug, Default)]
struct Endpoint {
    by_method: HashMap<String, usize>,
    any: Option<usize>,
}

impl Endpoint {
    fn pick(&self, method: &str) -> Option<usize> {
        self.by_method.get(method).copied().or(self.any)
    }

    fn allowed(&self, out: &mut Vec<String>) {
        if self.any.is_some() {
            out.push("*".into());
        }
        out.extend(self.by_method.keys().cloned());
    }
}

#[derive(Debug, Default)]
struct Node {
    literal: HashMap<Box<str>, Node>,
    param: Option<Box<Node>>,
    greedy: Option<Endpoint>,
    end: Option<Endpoint>,
}

#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<CompiledRoute>,
    root: Node,
    default: Option<usize>,
}

impl RouteTable {
    pub fn new(specs: &[RouteSpec]) -> Self {
        let mut t = Self::default();
        for spec in specs {
            t.insert(&spec.key, spec.target.clone(), spec.auth.clone());
        }
        t
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    fn insert(&mut self, key: &RouteKey, target: RouteTarget, auth: gust_model::RouteAuth) {
        let idx = self.routes.len();
        let Some(path) = &key.path else {
            self.routes.push(CompiledRoute {
                key: "$default".into(),
                resource: "/{proxy+}".into(),
                target,
                auth,
                param_names: vec![],
            });
            self.default = Some(idx);
            return;
        };
        let mut node = &mut self.root;
        let mut names = Vec::new();
        let mut greedy = false;
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            if let Some(inner) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                if let Some(name) = inner.strip_suffix('+') {
                    names.push(Arc::from(name));
                    greedy = true;
                    break;
                }
                names.push(Arc::from(inner));
                node = node.param.get_or_insert_with(Default::default);
            } else {
                node = node.literal.entry(seg.into()).or_default();
            }
        }
        let endpoint = if greedy {
            node.greedy.get_or_insert_with(Default::default)
        } else {
            node.end.get_or_insert_with(Default::default)
        };
        match &key.method {
            MethodMatch::Any => endpoint.any = Some(idx),
            MethodMatch::One(m) => {
                endpoint.by_method.insert(m.clone(), idx);
            }
        }
        self.routes.push(CompiledRoute {
            key: key.to_string(),
            resource: path.clone(),
            target,
            auth,
            param_names: names,
        });
    }

    /// Finds the route for `method` and the raw (still percent-encoded) `path`.
    pub fn lookup(&self, method: &str, path: &str) -> Lookup<'_> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut values = Vec::new();
        let mut allowed = Vec::new();
        if let Some((idx, values)) = walk(&self.root, &segments, method, &mut values, &mut allowed) {
            let route = &self.routes[idx];
            let params = route
                .param_names
                .iter()
                .cloned()
                .zip(values.into_iter().map(|v| percent_decode(&v)))
                .collect();
            return Lookup::Found(RouteMatch { route, params });
        }
        if let Some(idx) = self.default {
            return Lookup::Found(RouteMatch {
                route: &self.routes[idx],
                params: vec![(Arc::from("proxy"), percent_decode(path.trim_start_matches('/')))],
            });
        }
        if allowed.is_empty() {
            Lookup::NotFound
        } else {
            allowed.sort();
            allowed.dedup();
            Lookup::MethodNotAllowed(allowed)
        }
    }
}

fn walk(
    node: &Node,
    rest: &[&str],
    method: &str,
    values: &mut Vec<String>,
    allowed: &mut Vec<String>,
) -> Option<(usize, Vec<String>)> {
    let Some((first, tail)) = rest.split_first() else {
        let end = node.end.as_ref()?;
        return match end.pick(method) {
            Some(idx) => Some((idx, values.clone())),
            None => {
                end.allowed(allowed);
                None
            }
        };
    };
    if let Some(child) = node.literal.get(*first) {
        if let Some(found) = walk(child, tail, method, values, allowed) {
            return Some(found);
        }
    }
    if let Some(child) = &node.param {
        values.push((*first).to_string());
        if let Some(found) = walk(child, tail, method, values, allowed) {
            return Some(found);
        }
        values.pop();
    }
    if let Some(greedy) = &node.greedy {
        match greedy.pick(method) {
            Some(idx) => {
                let mut v = values.clone();
                v.push(rest.join("/"));
                return Some((idx, v));
            }
            None => greedy.allowed(allowed),
        }
    }
    None
}

/// Decodes `%XX` escapes; invalid escapes and non-UTF-8 results are kept as written.
pub fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gust_model::{FunctionName, PayloadFormat};

    fn table(keys: &[&str]) -> RouteTable {
        let specs: Vec<RouteSpec> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| RouteSpec {
                key: RouteKey::parse(k).unwrap(),
                target: RouteTarget::Function {
                    function: FunctionName::new(format!("f{i}")).unwrap(),
                    payload: PayloadFormat::V2,
                },
                auth: Default::default(),
            })
            .collect();
        RouteTable::new(&specs)
    }

    fn found(t: &RouteTable, method: &str, path: &str) -> (String, Vec<(String, String)>) {
        match t.lookup(method, path) {
            Lookup::Found(m) => (
                m.route.key.clone(),
                m.params.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            ),
            other => panic!("{method} {path}: {other:?}"),
        }
    }

    #[test]
    fn most_specific_route_wins() {
        let t = table(&[
            "ANY /{proxy+}",
            "GET /users/{id}",
            "GET /users/me",
            "POST /users",
            "GET /users/{id}/orders/{order}",
            "GET /files/{path+}",
        ]);
        assert_eq!(found(&t, "GET", "/users/me").0, "GET /users/me");
        assert_eq!(
            found(&t, "GET", "/users/42"),
            ("GET /users/{id}".into(), vec![("id".into(), "42".into())])
        );
        assert_eq!(found(&t, "GET", "/users/a%20b/").1, vec![("id".into(), "a b".into())]);
        assert_eq!(
            found(&t, "GET", "/users/1/orders/7").1,
            vec![("id".into(), "1".into()), ("order".into(), "7".into())]
        );
        assert_eq!(
            found(&t, "GET", "/files/a/b/c.txt").1,
            vec![("path".into(), "a/b/c.txt".into())]
        );
        // POST /users/42 has no exact route, so the greedy ANY route takes it.
        assert_eq!(
            found(&t, "POST", "/users/42"),
            ("ANY /{proxy+}".into(), vec![("proxy".into(), "users/42".into())])
        );
    }

    #[test]
    fn method_not_allowed_lists_methods() {
        let t = table(&["GET /users/{id}", "DELETE /users/{id}", "POST /users"]);
        assert_eq!(
            t.lookup("PUT", "/users/1"),
            Lookup::MethodNotAllowed(vec!["DELETE".into(), "GET".into()])
        );
        assert_eq!(t.lookup("GET", "/nope"), Lookup::NotFound);
        assert_eq!(t.lookup("GET", "/users/1/x"), Lookup::NotFound);
        // A greedy route needs at least one segment.
        let t = table(&["GET /files/{p+}"]);
        assert_eq!(t.lookup("GET", "/files"), Lookup::NotFound);
    }

    #[test]
    fn default_route_catches_the_rest() {
        let t = table(&["GET /a", "$default"]);
        assert_eq!(found(&t, "GET", "/a").0, "GET /a");
        assert_eq!(
            found(&t, "DELETE", "/x/y"),
            ("$default".into(), vec![("proxy".into(), "x/y".into())])
        );
    }

    #[test]
    fn percent_decoding_is_safe() {
        assert_eq!(percent_decode("a%2Fb"), "a/b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%ff"), "%ff");
    }
}
