//! Builds the gateway's authorizers from the manifest: JWT authorizers with keys from a JWKS
//! file, a JWKS URL (fetched at start), the issuer's OpenID discovery (fetched at start) or an
//! HS256 key held as a Gust secret; Lambda authorizers; and the API key store. A misconfigured authorizer stops `gust up` with the authorizer's name, not a 500 later.

use anyhow::{anyhow, Context, Result};
use gust_gateway::auth::{ApiKeyAuthorizer, JwtAuthorizer, JwtConfig, JwtKeys, MemoryApiKeyStore};
use gust_gateway::lambda_auth::LambdaAuthorizer;
use gust_gateway::{GatewayAuth, QuotaCounter};
use gust_model::App;
use gust_store::SecretStore;
use std::sync::Arc;

/// `quotas`: where API-key quotas are counted (kept in the state database by the caller).
pub async fn gateway_auth(
    app: &App,
    secrets: &SecretStore,
    api_keys: Arc<MemoryApiKeyStore>,
    quotas: Arc<QuotaCounter>,
) -> Result<GatewayAuth> {
    let mut jwt = std::collections::HashMap::new();
    for a in app.authorizers.values() {
        let keys = if let Some(f) = &a.jwks_file {
            JwtKeys::Jwks(
                std::fs::read_to_string(f)
                    .with_context(|| format!("authorizer `{}`: cannot read {}", a.name, f.display()))?,
            )
        } else if let Some(url) = &a.jwks_url {
            JwtKeys::Jwks(
                fetch(url)
                    .await
                    .with_context(|| format!("authorizer `{}`: cannot fetch the JWKS at {url}", a.name))?,
            )
        } else if a.openid_discovery {
            // As API Gateway does with `issuerUrl`: the issuer's OpenID configuration names
            // the JWKS.
            let config_url = format!("{}/.well-known/openid-configuration", a.issuer.trim_end_matches('/'));
            let config = fetch(&config_url).await.with_context(|| {
                format!(
                    "authorizer `{}`: cannot fetch the OpenID configuration at {config_url}",
                    a.name
                )
            })?;
            let jwks_uri = serde_json::from_str::<serde_json::Value>(&config)
                .ok()
                .and_then(|v| v.get("jwks_uri").and_then(|u| u.as_str()).map(str::to_string))
                .ok_or_else(|| anyhow!("authorizer `{}`: {config_url} has no jwks_uri", a.name))?;
            JwtKeys::Jwks(
                fetch(&jwks_uri)
                    .await
                    .with_context(|| format!("authorizer `{}`: cannot fetch the JWKS at {jwks_uri}", a.name))?,
            )
        } else if let Some(name) = &a.hs256_secret {
            let (value, _) = secrets
                .get(name)
                .map_err(|e| anyhow!("authorizer `{}`: {e}", a.name))?
                .ok_or_else(|| {
                    anyhow!(
                        "authorizer `{}`: the secret `{name}` is not set (`gust secrets set {name}`)",
                        a.name
                    )
                })?;
            JwtKeys::HmacSecret(value)
        } else {
            return Err(anyhow!("authorizer `{}` has no keys", a.name));
        };
        let config = JwtConfig::new(a.issuer.clone(), a.audiences.clone(), keys);
        let authorizer = JwtAuthorizer::new(config).map_err(|e| anyhow!("authorizer `{}`: {e}", a.name))?;
        jwt.insert(a.name.to_string(), authorizer);
    }
    let mut lambda = std::collections::HashMap::new();
    for a in app.lambda_authorizers.values() {
        let authorizer = LambdaAuthorizer::new(a.clone())
            .map_err(|e| anyhow!("Lambda authorizer `{}` (function `{}`): {e}", a.name, a.function))?;
        lambda.insert(a.name.to_string(), authorizer);
    }
    Ok(GatewayAuth {
        api_keys: Some(ApiKeyAuthorizer::with_quotas(api_keys, quotas)),
        jwt,
        lambda,
        routes: Default::default(),
    })
}

async fn fetch(url: &str) -> Result<String> {
    Ok(reqwest::Client::new()
        .get(url)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .and_then(|r| r.error_for_status())?
        .text()
        .await?)
}
