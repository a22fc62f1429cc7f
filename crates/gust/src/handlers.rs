//! `gust validate`'s handler check: does each function's code exist where its runtime will look
//! for it? A missing handler file otherwise passes validation and fails at the first request.
//!
//! - Node: the module file is found as Gust's bootstrap finds it (the handler split at its
//!   first dot, then its last; `.js`, `.mjs`, `.cjs` or no extension), then loaded by `node` in
//!   a child process with a deadline ([`NODE_TIMEOUT`]) with the function's manifest
//!   environment, and the export must be a function. Loading runs the module's top-level
//!   code, as Lambda's init does; a module that cannot load here (a secret it reads is not set,
//!   a service it connects to is down) is reported as a warning, since it may load under
//!   `gust up`.
//! - Python: the module file (`a/b.py` or `a/b/__init__.py`) must exist. It is not imported
//!   (that would run its code and need its dependencies); a file with no top-level `def NAME`,
//!   `NAME =` or import of `NAME` gets a warning.
//! - provided: `bootstrap` must exist in the code directory and be executable.

use gust_model::{FunctionSpec, RuntimeKind};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long loading one Node module may take.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(10);

/// What was found for one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The handler is there: what was checked.
    Ok(String),
    /// Probably fine, but not verified (the reason).
    Warning(String),
    /// The runtime will not find the handler.
    Error(String),
}

/// Checks one function's handler.
pub fn check(f: &FunctionSpec) -> Finding {
    match f.kind {
        RuntimeKind::Node => node(f, true),
        RuntimeKind::Python => python(f),
        RuntimeKind::Provided => provided(&f.code_dir),
    }
}

/// The same checks without loading Node modules: for a redeploy, which starts each new or
/// changed function before it switches (a stronger check than loading the module, and
/// without a `node` process per function).
pub fn check_files(f: &FunctionSpec) -> Finding {
    match f.kind {
        RuntimeKind::Node => node(f, false),
        _ => check(f),
    }
}

fn provided(dir: &Path) -> Finding {
    use std::os::unix::fs::PermissionsExt;
    let bootstrap = dir.join("bootstrap");
    match std::fs::metadata(&bootstrap) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {
            Finding::Ok(format!("{} is executable", bootstrap.display()))
        }
        Ok(m) if m.is_file() => Finding::Error(format!("{} is not executable (chmod +x)", bootstrap.display())),
        _ => Finding::Error(format!(
            "{} does not exist: a provided runtime runs the code directory's `bootstrap`",
            bootstrap.display()
        )),
    }
}

/// (module path relative to the code directory, property) candidates, as the Node bootstrap
/// splits a handler.
fn node_splits(handler: &str) -> Vec<(String, String)> {
    let (root, base) = match handler.rfind('/') {
        Some(i) => (&handler[..=i], &handler[i + 1..]),
        None => ("", handler),
    };
    let mut out = Vec::new();
    if let Some(first) = base.find('.') {
        out.push((format!("{root}{}", &base[..first]), base[first + 1..].to_string()));
        let last = base.rfind('.').expect("a dot");
        if last != first {
            out.push((format!("{root}{}", &base[..last]), base[last + 1..].to_string()));
        }
    }
    out
}

fn node_file(dir: &Path, module: &str) -> Option<PathBuf> {
    let base = dir.join(module);
    [
        base.clone(),
        base.with_extension(with_ext(&base, "js")),
        base.with_extension(with_ext(&base, "mjs")),
        base.with_extension(with_ext(&base, "cjs")),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// `base` + `.ext` even when `base` has a dot in its name (`my.module` -> `my.module.js`).
fn with_ext(base: &Path, ext: &str) -> String {
    match base.extension() {
        Some(e) => format!("{}.{ext}", e.to_string_lossy()),
        None => ext.to_string(),
    }
}

/// Loads `file` and reports `typeof module[prop]` (nested `a.b` allowed) as JSON on stdout.
const NODE_PROBE: &str = r#"
const [file, prop] = process.argv.slice(-2);
const { pathToFileURL } = require('node:url');
(async () => {
  let m;
  try {
    m = require(file);
  } catch (e) {
    if (e && (e.code === 'ERR_REQUIRE_ESM' || e.code === 'ERR_REQUIRE_ASYNC_MODULE')) m = await import(pathToFileURL(file).href);
    else throw e;
  }
  let cur = m;
  for (const p of prop.split('.')) cur = cur == null ? undefined : cur[p];
  if (cur === undefined && m && m.default) {
    cur = m.default;
    for (const p of prop.split('.')) cur = cur == null ? undefined : cur[p];
  }
  process.stdout.write(JSON.stringify({ type: typeof cur }));
  process.exit(0);
})().catch((e) => {
  process.stdout.write(JSON.stringify({ error: String((e && e.message) || e).split('\n')[0] }));
  process.exit(0);
});
"#;

fn node(f: &FunctionSpec, load: bool) -> Finding {
    let splits = node_splits(&f.handler);
    if splits.is_empty() {
        return Finding::Error(format!("`{}` is not `file.export`", f.handler));
    }
    let Some((file, prop)) = splits
        .iter()
        .find_map(|(module, prop)| node_file(&f.code_dir, module).map(|file| (file, prop.clone())))
    else {
        let (module, _) = &splits[0];
        return Finding::Error(format!(
            "no module `{module}` in {} (looked for {module}.js, .mjs, .cjs)",
            f.code_dir.display()
        ));
    };
    if !load {
        return Finding::Ok(format!("{} exists", file.display()));
    }
    let mut child = match Command::new("node")
        .arg("-e")
        .arg(NODE_PROBE)
        .arg(&file)
        .arg(&prop)
        .current_dir(&f.code_dir)
        .env_clear()
        .envs(std::env::var("PATH").map(|p| ("PATH".to_string(), p)))
        .envs(std::env::var("HOME").map(|p| ("HOME".to_string(), p)))
        .envs(f.environment.iter())
        .env("LAMBDA_TASK_ROOT", &f.code_dir)
        .env("AWS_LAMBDA_FUNCTION_NAME", f.name.as_str())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return Finding::Warning(format!(
                "{} exists; its export `{prop}` was not checked: cannot run node ({e})",
                file.display()
            ))
        }
    };
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if started.elapsed() < NODE_TIMEOUT => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut out);
    }
    let answer: Option<serde_json::Value> = serde_json::from_str(out.trim()).ok();
    match (status, answer) {
        (None, _) => Finding::Warning(format!(
            "{} exists; loading it took over {NODE_TIMEOUT:?}, so its export `{prop}` was not checked",
            file.display()
        )),
        (_, Some(v)) if v["type"] == "function" => {
            Finding::Ok(format!("{} exports `{prop}` (a function)", file.display()))
        }
        (_, Some(v)) if v["type"] == "undefined" => {
            Finding::Error(format!("{} does not export `{prop}`", file.display()))
        }
        (_, Some(v)) if v["type"].is_string() => Finding::Error(format!(
            "{}: `{prop}` is a {}, not a function",
            file.display(),
            v["type"].as_str().unwrap_or("?")
        )),
        (_, Some(v)) => Finding::Warning(format!(
            "{} exists but did not load here ({}); its export `{prop}` was not checked",
            file.display(),
            v["error"].as_str().unwrap_or("unknown error")
        )),
        (_, None) => Finding::Warning(format!(
            "{} exists; node gave no answer about its export `{prop}`",
            file.display()
        )),
    }
}

fn python(f: &FunctionSpec) -> Finding {
    let Some((module, name)) = f.handler.rsplit_once('.') else {
        return Finding::Error(format!("`{}` is not `module.function`", f.handler));
    };
    if module.is_empty() || name.is_empty() {
        return Finding::Error(format!("`{}` is not `module.function`", f.handler));
    }
    let rel = module.replace('.', "/");
    let candidates = [
        f.code_dir.join(format!("{rel}.py")),
        f.code_dir.join(&rel).join("__init__.py"),
    ];
    let Some(file) = candidates.iter().find(|p| p.is_file()) else {
        return Finding::Error(format!(
            "no module `{module}` in {} (looked for {rel}.py and {rel}/__init__.py)",
            f.code_dir.display()
        ));
    };
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let defines = text.lines().any(|l| {
        let l = l.trim_end();
        l.starts_with(&format!("def {name}("))
            || l.starts_with(&format!("async def {name}("))
            || l.starts_with(&format!("{name} ="))
            || l.starts_with(&format!("{name}="))
            || ((l.starts_with("from ") || l.starts_with("import "))
                && l.split(|c: char| !(c.is_alphanumeric() || c == '_')).any(|w| w == name))
    });
    if defines {
        Finding::Ok(format!("{} defines `{name}`", file.display()))
    } else {
        Finding::Warning(format!(
            "{} exists but defines no top-level `{name}` that Gust could see (not imported to check)",
            file.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_handlers_split_as_the_bootstrap_does() {
        assert_eq!(node_splits("index.handler"), [("index".into(), "handler".into())]);
        assert_eq!(node_splits("src/users.create"), [("src/users".into(), "create".into())]);
        assert_eq!(
            node_splits("my.module.fn"),
            [("my".into(), "module.fn".into()), ("my.module".into(), "fn".into())]
        );
        assert!(node_splits("nodot").is_empty());
    }
}
