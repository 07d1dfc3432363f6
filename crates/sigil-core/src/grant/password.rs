//! RFC 6749 §4.3 resource owner password credentials grant.
//!
//! RFC 9700 §2.4 says this grant must not be used. Sigil keeps it for trusted first-party
//! apps and migrations, off unless a confidential client has it enabled.

use super::{Issuance, Subject};
use crate::audit::Caller;
use crate::authority::Authority;
use crate::client::Client;
use crate::dpop::ProvenKey;
use crate::error::OAuthError;
use crate::factors::Authentication;
use crate::grant::TokenResponse;
use crate::scope::ScopeSet;
use crate::secret::Secret;

impl Authority {
    pub(crate) async fn password_grant(
        &self,
        client: &Client,
        username: &str,
        password: Secret,
        scope: Option<ScopeSet>,
        resources: &[String],
        dpop: Option<&ProvenKey>,
        caller: &Caller,
    ) -> Result<TokenResponse, OAuthError> {
        let (scope, resources) = self
            .scope_and_resources(client, scope, &client.allowed_scopes(), resources)
            .await?;
        let audience = self.audience_for(client, &resources);
        let user = self
            .check_password(
                username,
                password,
                &format!("password grant, client {}", client.id),
                None,
                caller,
            )
            .await?;
        let Some(user) = user else {
            return Err(OAuthError::invalid_grant("invalid username or password"));
        };
        // Only after the password was proven, so that this says nothing to a guesser.
        if user.must_change_password {
            return Err(OAuthError::invalid_grant(
                "the password must be changed before this account can sign in: sign in on the sign-in page to choose a new one",
            ));
        }
        if user.awaits_email_verification() {
            return Err(OAuthError::invalid_grant(
                "the account's e-mail address is not verified yet: follow the link in the verification mail",
            ));
        }
        // The password grant has no second step: an account with a second factor (or one
        // that must have one) signs in only through the authorization code flow.
        let has_factor = self
            .store
            .list_factors(&user.id)
            .await?
            .iter()
            .any(|f| f.is_confirmed());
        if has_factor || self.config.mfa.requires(&user) {
            return Err(OAuthError::invalid_grant(
                "this account signs in with a second factor, which the password grant cannot ask for: use the authorization code flow (the sign-in page)",
            ));
        }
        let auth = Authentication::password_at(self.now());
        let refresh = if Self::wants_refresh_token(client, &scope) {
            Some(
                self.start_refresh_family(client, &user, &scope, &auth, &resources, dpop)
                    .await?,
            )
        } else {
            None
        };
        self.issue(
            client,
            Issuance {
                subject: Subject::User {
                    user: &user,
                    auth: &auth,
                },
                scope: &scope,
                audience,
                refresh,
                nonce: None,
                ids: None,
                dpop,
            },
        )
        .await
    }
}
