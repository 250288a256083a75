//! Who is calling: sign-in through the OpenID provider (or, in `meshport dev` on loopback only,
//! demo identities), sessions in the database, API tokens, and the mapping from provider groups
//! to meshport's roles and teams. The middleware in [`session`] turns each request's session
//! cookie or bearer token into an [`app::access::Principal`] in the request's extensions; server
//! functions and API routes authorise from that.

mod account;
mod admin;
pub mod callers;
pub mod oidc;
mod revalidation;
mod routes;
pub mod sealing;
pub mod session;
pub mod tokens;

use std::collections::BTreeSet;

use app::access::{Principal, Role, SignInMethod};
use app::onboarding::is_dns_label;

pub use account::Accounts;
pub use admin::UserAdmin;
pub use revalidation::{Revalidation, user_target};
pub use routes::routes;

use crate::config::{Config, IdentityConfig};
use crate::store::{Store, User};

/// Everything sign-in needs, built once at start-up.
pub struct Identity {
    /// The OpenID provider, when one is configured.
    pub oidc: Option<oidc::OidcProvider>,
    /// Groups to roles and teams.
    pub groups: GroupMapping,
    /// Users, tokens.
    pub store: Store,
    /// Whether the demo sign-ins are offered (`meshport dev` on a loopback address only).
    pub demo: bool,
    /// The public URL, without a trailing slash.
    pub public_url: String,
    /// Session lifetimes and token defaults.
    pub config: IdentityConfig,
    /// Seals the refresh tokens kept for re-validation; none for a public client.
    pub sealer: Option<sealing::Sealer>,
    /// Sessions' access as last read, by meshport's session id.
    pub sessions_seen: callers::Remembered<uuid::Uuid, Option<crate::store::SessionAccess>>,
    /// Tokens' access as last read, by the token's hash.
    pub tokens_seen: callers::Remembered<String, Option<crate::store::TokenAccess>>,
    /// When tokens were last used, written in the background.
    pub token_uses: std::sync::Arc<callers::TokenUses>,
}

impl Identity {
    /// Sign-in as configured. `demo` is honoured only when meshport listens on loopback.
    pub fn new(config: &Config, store: Store, demo: bool) -> anyhow::Result<Self> {
        let public_url = config.public_url().trim_end_matches('/').to_owned();
        Ok(Self {
            oidc: oidc::OidcProvider::new(&config.identity, &public_url)?,
            groups: GroupMapping::new(&config.identity),
            store,
            demo: demo && config.listen.ip().is_loopback(),
            public_url,
            config: config.identity.clone(),
            sealer: sealing::Sealer::new(&config.identity)?,
            sessions_seen: Default::default(),
            tokens_seen: Default::default(),
            token_uses: Default::default(),
        })
    }

    /// Whether cookies must be `Secure`: always, except for a plain-http loopback public URL.
    pub fn secure_cookies(&self) -> bool {
        !is_local_http(&self.public_url)
    }
}

/// Whether `url` is `http://localhost…` or `http://127.0.0.1…` (or `[::1]`).
pub fn is_local_http(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|url| {
        url.scheme() == "http"
            && match url.host() {
                Some(url::Host::Domain(domain)) => domain == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            }
    })
}

/// How identity-provider groups become roles and teams.
#[derive(Clone, Debug)]
pub struct GroupMapping {
    developer: Vec<String>,
    admin: Vec<String>,
    auditor: Vec<String>,
    team_prefix: String,
    team_suffix: String,
}

impl GroupMapping {
    /// The mapping of `config` (its team pattern holds `{team}` once; the config checks that).
    pub fn new(config: &IdentityConfig) -> Self {
        let (prefix, suffix) = config.team_group_pattern.split_once("{team}").unwrap_or(("", ""));
        Self {
            developer: config.developer_groups.clone(),
            admin: config.admin_groups.clone(),
            auditor: config.auditor_groups.clone(),
            team_prefix: prefix.to_owned(),
            team_suffix: suffix.to_owned(),
        }
    }

    /// The groups that grant each role, for the page that refuses a role-less sign-in.
    pub fn granting_groups(&self) -> [(Role, &[String]); 3] {
        [
            (Role::Developer, &self.developer),
            (Role::PlatformAdmin, &self.admin),
            (Role::Auditor, &self.auditor),
        ]
    }

    /// The roles of someone in `groups`.
    pub fn roles(&self, groups: &[String]) -> BTreeSet<Role> {
        let member = |names: &[String]| groups.iter().any(|g| names.contains(g));
        [
            (Role::Developer, &self.developer),
            (Role::PlatformAdmin, &self.admin),
            (Role::Auditor, &self.auditor),
        ]
        .into_iter()
        .filter(|(_, names)| member(names))
        .map(|(role, _)| role)
        .collect()
    }

    /// The teams of someone in `groups`: each group matching the pattern whose team part is a
    /// DNS label.
    pub fn teams(&self, groups: &[String]) -> BTreeSet<String> {
        groups
            .iter()
            .filter_map(|group| {
                group.strip_prefix(&self.team_prefix)?.strip_suffix(&self.team_suffix)
            })
            .filter(|team| is_dns_label(team) && team.len() <= 63)
            .map(str::to_owned)
            .collect()
    }

    /// The principal of `user`, a member of `groups`.
    pub fn principal(&self, user: &User, groups: &[String], method: SignInMethod) -> Principal {
        Principal {
            user_id: user.id.to_string(),
            subject: user.subject.clone(),
            email: user.email.clone(),
            name: user.display_name.clone(),
            roles: self.roles(groups),
            teams: self.teams(groups),
            method,
        }
    }
}

/// The demo identities of `meshport dev`: one per role, each in the `shop` team.
pub const DEMO_USERS: [(Role, &str, &str); 3] = [
    (Role::Developer, "Dev Demo", "developers"),
    (Role::PlatformAdmin, "Admin Demo", "platform-admins"),
    (Role::Auditor, "Auditor Demo", "auditors"),
];

/// The issuer recorded for demo users, so they never collide with real ones.
pub const DEMO_ISSUER: &str = "meshport-dev-demo";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_map_to_roles_and_teams() {
        let mapping = GroupMapping::new(&IdentityConfig::default());
        let groups: Vec<String> =
            ["developers", "team-cart", "team-Bad", "team-", "team-../x", "auditors", "other"]
                .map(String::from)
                .to_vec();
        assert_eq!(mapping.roles(&groups), [Role::Developer, Role::Auditor].into());
        assert_eq!(mapping.teams(&groups), ["cart".to_owned()].into());
        let mapping = GroupMapping::new(&IdentityConfig {
            team_group_pattern: "/org/{team}/members".into(),
            ..IdentityConfig::default()
        });
        assert_eq!(
            mapping.teams(&["/org/payments/members".into()]),
            ["payments".to_owned()].into()
        );
    }

    #[test]
    fn only_plain_http_on_loopback_drops_secure_cookies() {
        assert!(is_local_http("http://127.0.0.1:3000"));
        assert!(is_local_http("http://localhost:3000/"));
        assert!(is_local_http("http://[::1]:3000"));
        assert!(!is_local_http("https://127.0.0.1:3000"));
        assert!(!is_local_http("http://meshport.example.com"));
        assert!(!is_local_http("http://localhost.example.com"));
    }
}
