//! What a function may do through the AWS service APIs Gust serves: IAM-style statements
//! (serverless.yml `provider.iam.role.statements`, `provider.iamRoleStatements`, per-function
//! `iamRoleStatements`; gust.toml `[functions.x] aws = [...]`) and their evaluation.
//!
//! The rules are IAM's for identity policies: a request is allowed when some `Allow` statement
//! matches its action and resource and no `Deny` statement does (an explicit deny wins);
//! nothing matching is an implicit deny. Actions match case-insensitively with `*` and `?`
//! wildcards (`dynamodb:*`, `dynamodb:Get*`); resources are ARNs matched with the same
//! wildcards, case-sensitively. `NotAction` and `NotResource` invert their list, as in IAM.
//!
//! One difference, on purpose: the region and account fields of an ARN are not compared. A
//! manifest written for AWS names its real account (`123456789012`, `${aws:accountId}`, `*`)
//! and region, while Gust is one account in one region; comparing them would refuse every
//! statement of a real project and protect nothing (there are no other accounts' tables).
//!
//! A statement with a `Condition` cannot be evaluated (Gust has none of the condition keys):
//! an `Allow` with one grants nothing and a `Deny` with one denies always, so an unevaluated
//! condition never grants more than the manifest says; the loader warns about both.

/// The account id in every ARN Gust makes (one account, as LocalStack's and moto's default).
pub const ACCOUNT_ID: &str = "000000000000";

/// Allow or Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// One statement, resolved (intrinsic functions already turned into ARN patterns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsStatement {
    pub effect: Effect,
    /// Action patterns (`dynamodb:GetItem`, `dynamodb:*`, `*`).
    pub actions: Vec<String>,
    /// `NotAction`: the statement applies to every action *not* matched by `actions`.
    pub not_actions: bool,
    /// ARN patterns (`arn:aws:dynamodb:*:*:table/users`, `.../index/*`, `*`).
    pub resources: Vec<String>,
    /// `NotResource`: the statement applies to every resource *not* matched by `resources`.
    pub not_resources: bool,
    /// The statement had a `Condition` (see the module docs).
    pub conditional: bool,
}

/// The answer for one action on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// A `Deny` statement matched.
    ExplicitDeny,
    /// No `Allow` statement matched.
    ImplicitDeny,
}

impl AwsStatement {
    fn applies(&self, action: &str, resource: &str) -> bool {
        let action_hit = self
            .actions
            .iter()
            .any(|p| wildcard_match(&p.to_ascii_lowercase(), &action.to_ascii_lowercase()));
        let resource_hit = self.resources.iter().any(|p| arn_matches(p, resource));
        action_hit != self.not_actions && resource_hit != self.not_resources
    }
}

/// Evaluates `statements` for `action` on `resource` (an ARN).
pub fn decide(statements: &[AwsStatement], action: &str, resource: &str) -> Decision {
    let mut allowed = false;
    for s in statements {
        match s.effect {
            // A conditional Deny denies whatever its condition would have said.
            Effect::Deny if s.applies(action, resource) => return Decision::ExplicitDeny,
            Effect::Allow if !s.conditional && s.applies(action, resource) => allowed = true,
            _ => {}
        }
    }
    if allowed {
        Decision::Allowed
    } else {
        Decision::ImplicitDeny
    }
}

/// `pattern` (an ARN with wildcards, or `*`) against the ARN `arn`, ignoring the region and
/// account fields.
fn arn_matches(pattern: &str, arn: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let a: Vec<&str> = arn.splitn(6, ':').collect();
    if p.len() != 6 || a.len() != 6 {
        return wildcard_match(pattern, arn);
    }
    // arn : partition : service : (region) : (account) : resource
    [0, 1, 2, 5].iter().all(|&i| wildcard_match(p[i], a[i]))
}

/// IAM's wildcards: `*` matches any run of characters (`/` and `:` included), `?` any one
/// character. Policies of every kind use it (these statements, and the gateway's Lambda
/// authorizer answers).
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The ARN pattern a gust.toml resource names: a full ARN (or `*`) as written; `table/NAME`
/// (and `table/NAME/index/*`, `table/NAME/stream/*`) as a DynamoDB table of this app.
pub fn expand_resource(resource: &str) -> Result<String, String> {
    let r = resource.trim();
    if r == "*" || r.starts_with("arn:") {
        return Ok(r.to_string());
    }
    if r.starts_with("table/") {
        return Ok(format!("arn:aws:dynamodb:*:*:{r}"));
    }
    Err(format!(
        "resource `{r}` is neither an ARN (`arn:aws:dynamodb:*:*:table/users`), `*`, nor a table of this app (`table/users`, `table/users/index/*`)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(effect: Effect, actions: &[&str], resources: &[&str]) -> AwsStatement {
        AwsStatement {
            effect,
            actions: actions.iter().map(|s| s.to_string()).collect(),
            not_actions: false,
            resources: resources.iter().map(|s| s.to_string()).collect(),
            not_resources: false,
            conditional: false,
        }
    }

    const USERS: &str = "arn:aws:dynamodb:us-east-1:000000000000:table/users";

    #[test]
    fn allow_deny_and_wildcards() {
        let allow = st(
            Effect::Allow,
            &["dynamodb:GetItem", "dynamodb:Query"],
            &["arn:aws:dynamodb:eu-west-1:123456789012:table/users"],
        );
        assert_eq!(
            decide(std::slice::from_ref(&allow), "dynamodb:GetItem", USERS),
            Decision::Allowed
        );
        assert_eq!(
            decide(std::slice::from_ref(&allow), "DynamoDB:getitem", USERS),
            Decision::Allowed
        );
        assert_eq!(
            decide(std::slice::from_ref(&allow), "dynamodb:PutItem", USERS),
            Decision::ImplicitDeny
        );
        assert_eq!(
            decide(
                std::slice::from_ref(&allow),
                "dynamodb:Query",
                &format!("{USERS}/index/byEmail")
            ),
            Decision::ImplicitDeny
        );
        assert_eq!(
            decide(
                std::slice::from_ref(&allow),
                "dynamodb:GetItem",
                &USERS.replace("users", "orders")
            ),
            Decision::ImplicitDeny
        );
        let all = st(Effect::Allow, &["dynamodb:*"], &["arn:aws:dynamodb:*:*:table/users*"]);
        assert_eq!(
            decide(
                std::slice::from_ref(&all),
                "dynamodb:PutItem",
                &format!("{USERS}/index/x")
            ),
            Decision::Allowed
        );
        let deny = st(Effect::Deny, &["dynamodb:Delete*"], &["*"]);
        assert_eq!(
            decide(&[all.clone(), deny.clone()], "dynamodb:PutItem", USERS),
            Decision::Allowed
        );
        assert_eq!(
            decide(&[all.clone(), deny.clone()], "dynamodb:DeleteItem", USERS),
            Decision::ExplicitDeny
        );
        assert_eq!(
            decide(&[deny, all], "dynamodb:DeleteItem", USERS),
            Decision::ExplicitDeny
        );
        assert_eq!(decide(&[], "dynamodb:GetItem", USERS), Decision::ImplicitDeny);
        assert_eq!(
            decide(&[st(Effect::Allow, &["*"], &["*"])], "dynamodb:GetItem", USERS),
            Decision::Allowed
        );
        assert_eq!(
            decide(&[st(Effect::Allow, &["s3:*"], &["*"])], "dynamodb:GetItem", USERS),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn not_action_not_resource_and_conditions() {
        let mut s = st(Effect::Allow, &["dynamodb:DeleteItem"], &["*"]);
        s.not_actions = true;
        assert_eq!(
            decide(std::slice::from_ref(&s), "dynamodb:GetItem", USERS),
            Decision::Allowed
        );
        assert_eq!(
            decide(std::slice::from_ref(&s), "dynamodb:DeleteItem", USERS),
            Decision::ImplicitDeny
        );
        let mut d = st(Effect::Deny, &["dynamodb:*"], &["arn:aws:dynamodb:*:*:table/users"]);
        d.not_resources = true;
        assert_eq!(
            decide(&[s.clone(), d.clone()], "dynamodb:GetItem", USERS),
            Decision::Allowed
        );
        assert_eq!(
            decide(&[s.clone(), d], "dynamodb:GetItem", &USERS.replace("users", "orders")),
            Decision::ExplicitDeny
        );
        let mut c = st(Effect::Allow, &["dynamodb:*"], &["*"]);
        c.conditional = true;
        assert_eq!(
            decide(std::slice::from_ref(&c), "dynamodb:GetItem", USERS),
            Decision::ImplicitDeny
        );
        c.effect = Effect::Deny;
        assert_eq!(
            decide(&[st(Effect::Allow, &["*"], &["*"]), c], "dynamodb:GetItem", USERS),
            Decision::ExplicitDeny
        );
    }

    #[test]
    fn gust_toml_resources() {
        assert_eq!(
            expand_resource("table/users").unwrap(),
            "arn:aws:dynamodb:*:*:table/users"
        );
        assert_eq!(expand_resource("*").unwrap(), "*");
        assert_eq!(expand_resource(USERS).unwrap(), USERS);
        assert!(expand_resource("users").unwrap_err().contains("table/users"));
        assert!(
            wildcard_match("a*b?c", "axxbyc")
                && !wildcard_match("a*b?c", "axxbc")
                && wildcard_match("*", "")
                && !wildcard_match("", "a")
        );
    }
}
