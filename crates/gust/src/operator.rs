//! The operator credential: a random token in `<state>/operator.token` (mode 0600), created at
//! the first start, which the CLI reads from the same state directory. From another machine or
//! account, `--admin URL --token T` (or `GUST_OPERATOR_TOKEN`) give both. To choose the token
//! (a secret manager, a container secret), write the file before the first start.

use anyhow::{bail, Context, Result};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The token file's name in the state directory.
pub const OPERATOR_TOKEN_FILE: &str = "operator.token";
/// The environment variable the CLI reads the token from (as `--token`).
pub const OPERATOR_TOKEN_ENV: &str = "GUST_OPERATOR_TOKEN";

pub fn token_path(state_dir: &Path) -> PathBuf {
    state_dir.join(OPERATOR_TOKEN_FILE)
}

/// Reads the operator token of `state_dir`, creating the file (0600) with a new random token
/// when there is none. A file that other users may read is refused: they could act as the
/// operator.
pub fn load_or_create(state_dir: &Path) -> Result<String> {
    let path = token_path(state_dir);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    match opts.open(&path) {
        Ok(mut file) => {
            let token = gust_gateway::OperatorToken::generate();
            file.write_all(format!("{token}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            tracing::info!(path = %path.display(), "created the operator token (the CLI reads it from here)");
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt as _;
                let mode = std::fs::metadata(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?
                    .mode();
                if mode & 0o077 != 0 {
                    bail!(
                        "{} can be read by other users (mode {:o}); make it private with `chmod 600 {}`",
                        path.display(),
                        mode & 0o777,
                        path.display()
                    );
                }
            }
            let token = read(&path)?;
            if gust_gateway::OperatorToken::new(&token).is_none() {
                bail!(
                    "{} holds a token shorter than {} bytes; delete it to have a new one generated",
                    path.display(),
                    gust_gateway::OperatorToken::MIN_BYTES
                );
            }
            Ok(token)
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

fn read(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text.trim().to_string())
}

/// The token the CLI sends: `given` (`--token` or `GUST_OPERATOR_TOKEN`) if set, else the state
/// directory's file.
pub fn token_for_cli(given: Option<&str>, state_dir: &Path) -> Result<String> {
    if let Some(t) = given.map(str::trim).filter(|t| !t.is_empty()) {
        return Ok(t.to_string());
    }
    let path = token_path(state_dir);
    if !path.is_file() {
        bail!(
            "no operator token: {} does not exist (start Gust with `gust up`, or pass --token / set {OPERATOR_TOKEN_ENV})",
            path.display()
        );
    }
    read(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_private_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let t = load_or_create(dir.path()).unwrap();
        assert!(t.starts_with("gop_"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(token_path(dir.path())).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(load_or_create(dir.path()).unwrap(), t);
        assert_eq!(token_for_cli(None, dir.path()).unwrap(), t);
        assert_eq!(token_for_cli(Some(" given "), dir.path()).unwrap(), "given");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(token_path(dir.path()), std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = load_or_create(dir.path()).unwrap_err().to_string();
            assert!(e.contains("chmod 600"), "{e}");
        }
        let empty = tempfile::tempdir().unwrap();
        assert!(token_for_cli(None, empty.path()).is_err());
    }
}
