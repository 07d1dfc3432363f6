//! Which client may use which grant, checked once at dispatch: the error code and the
//! description of every refusal.

use super::check_client_may_use;
use crate::client::{Client, ClientRegistration, GrantType};
use crate::error::ErrorCode;

fn client(grants: &[GrantType], is_confidential: bool) -> Client {
    let (mut client, _) = ClientRegistration {
        name: "app".into(),
        grant_types: Some(vec!["client_credentials".into()]),
        ..Default::default()
    }
    .build(0)
    .expect("client");
    client.grant_types = grants.to_vec();
    if !is_confidential {
        client.secret_hash = None;
    }
    client
}

fn refusal(client: &Client, grant: GrantType) -> Option<(ErrorCode, String)> {
    check_client_may_use(client, grant)
        .err()
        .map(|e| (e.code, e.description))
}

#[test]
fn a_client_uses_the_grants_it_is_registered_for() {
    let all = client(&GrantType::ALL, true);
    for grant in GrantType::ALL {
        assert_eq!(refusal(&all, grant), None, "{grant:?}");
    }
    let none = client(&[], true);
    for grant in GrantType::ALL {
        let expected = format!("this client may not use the {} grant", grant.as_str());
        assert_eq!(
            refusal(&none, grant),
            Some((ErrorCode::UnauthorizedClient, expected))
        );
    }
}

#[test]
fn password_and_client_credentials_need_a_confidential_client() {
    let public = client(&GrantType::ALL, false);
    assert_eq!(refusal(&public, GrantType::AuthorizationCode), None);
    assert_eq!(refusal(&public, GrantType::RefreshToken), None);
    assert_eq!(
        refusal(&public, GrantType::Password),
        Some((
            ErrorCode::UnauthorizedClient,
            "this client may not use the password grant".into()
        ))
    );
    // Said before the registration is looked at, as it always was.
    for grants in [&GrantType::ALL[..], &[]] {
        assert_eq!(
            refusal(&client(grants, false), GrantType::ClientCredentials),
            Some((
                ErrorCode::UnauthorizedClient,
                "public clients cannot use client_credentials".into()
            ))
        );
    }
}
