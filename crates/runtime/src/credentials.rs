//! The credentials Gust issues to each deployed function, and the table that maps them back to
//! the function: a `GUST_TOKEN` for the platform API, and an AWS session key (the
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN` triple Lambda gives a
//! function's role) for the AWS service APIs Gust serves (`docs/aws-services.md`).
//!
//! Both are new at every deploy of the function (start, redeploy of a changed function), and the
//! old ones stop working when the new version takes over: they identify a deployment of a
//! function, not a user. They live only in memory (a restart issues new ones), so nothing
//! here is ever written to disk. The key id starts with `ASIA`, as AWS's temporary keys do: some
//! tools tell session keys from long-lived `AKIA`/`GKIA` ones by that prefix.

use crate::invoker::PlatformApi;
use std::collections::HashMap;

/// An AWS session key issued to one deployment of a function.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsSessionKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Sent by the SDKs as `X-Amz-Security-Token`; a request signed with the key but without
    /// this token is refused, as AWS refuses a temporary key without its token.
    pub session_token: String,
}

impl std::fmt::Debug for AwsSessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AwsSessionKey({}, ..)", self.access_key_id)
    }
}

/// Everything one deployment of a function is given to prove who it is.
#[derive(Clone)]
pub struct FunctionCredentials {
    /// `GUST_TOKEN`.
    pub token: String,
    pub aws: AwsSessionKey,
}

impl std::fmt::Debug for FunctionCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FunctionCredentials({:?})", self.aws)
    }
}

fn random_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl FunctionCredentials {
    /// New random credentials (UUIDv4 randomness from the OS generator).
    pub fn generate() -> Self {
        let id: String = random_hex()[..16].to_ascii_uppercase();
        Self {
            token: format!("{}{}", random_hex(), random_hex()),
            aws: AwsSessionKey {
                access_key_id: format!("ASIA{id}"),
                secret_access_key: format!("{}{}", random_hex(), &random_hex()[..8]),
                session_token: format!("gst_{}{}{}", random_hex(), random_hex(), random_hex()),
            },
        }
    }
}

/// Who holds which credential.
#[derive(Default)]
pub(crate) struct Callers {
    by_token: HashMap<String, PlatformApi>,
    /// By access key id.
    by_key: HashMap<String, (AwsSessionKey, PlatformApi)>,
}

impl Callers {
    pub(crate) fn insert(&mut self, creds: FunctionCredentials, caller: PlatformApi) {
        self.by_key
            .insert(creds.aws.access_key_id.clone(), (creds.aws, caller.clone()));
        self.by_token.insert(creds.token, caller);
    }

    /// Keeps the credentials of the callers `keep` says yes to.
    pub(crate) fn retain(&mut self, keep: impl Fn(&PlatformApi) -> bool) {
        self.by_token.retain(|_, c| keep(c));
        self.by_key.retain(|_, (_, c)| keep(c));
    }

    pub(crate) fn for_token(&self, token: &str) -> Option<PlatformApi> {
        self.by_token.get(token).cloned()
    }

    pub(crate) fn for_aws_key(&self, access_key_id: &str) -> Option<(AwsSessionKey, PlatformApi)> {
        self.by_key.get(access_key_id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_new_each_time_and_resolve_until_retired() {
        let a = FunctionCredentials::generate();
        let b = FunctionCredentials::generate();
        assert_ne!(a.token, b.token);
        assert_ne!(a.aws, b.aws);
        assert!(a.aws.access_key_id.starts_with("ASIA") && a.aws.access_key_id.len() == 20);
        assert!(!format!("{a:?}").contains(&a.aws.secret_access_key));
        let caller = PlatformApi {
            app: "shop".into(),
            function: "users".into(),
        };
        let mut callers = Callers::default();
        callers.insert(a.clone(), caller.clone());
        assert_eq!(callers.for_token(&a.token), Some(caller.clone()));
        assert_eq!(callers.for_aws_key(&a.aws.access_key_id), Some((a.aws.clone(), caller)));
        callers.retain(|c| c.function != "users");
        assert_eq!(callers.for_token(&a.token), None);
        assert!(callers.for_aws_key(&a.aws.access_key_id).is_none());
    }
}
