//! Registering, editing, rotating and deleting clients; every change audited and the
//! engine's cached copy forgotten at once.

use super::{Admin, AdminError};
use crate::audit::Caller;
use crate::client::{Client, ClientRegistration};
use crate::secret::Secret;

impl Admin {
    /// Registers a client. A confidential client's secret is returned to be shown once.
    pub async fn create_client(
        &self,
        caller: &Caller,
        registration: ClientRegistration,
    ) -> Result<(Client, Option<Secret>), AdminError> {
        let (client, secret) = registration
            .build(self.now())
            .map_err(|e| AdminError::Invalid(e.to_string()))?;
        self.store.create_client(&client).await?;
        self.audit_log
            .record(
                caller,
                "client.created",
                Some(&client.id),
                format!(
                    "{} client {:?}",
                    if client.is_confidential() {
                        "confidential"
                    } else {
                        "public"
                    },
                    client.name
                ),
            )
            .await;
        Ok((client, secret))
    }

    /// Replaces a client's settings. Whether it is public or confidential, its id and its
    /// secret stay as they are.
    pub async fn update_client(
        &self,
        caller: &Caller,
        client_id: &str,
        mut registration: ClientRegistration,
    ) -> Result<Client, AdminError> {
        let existing = self.existing_client(client_id).await?;
        registration.is_public = !existing.is_confidential();
        // How a client authenticates is fixed when it is made (its keys may change).
        registration.token_endpoint_auth_method = Some(existing.token_endpoint_auth_method);
        let (mut client, _unused_secret) = registration
            .build(self.now())
            .map_err(|e| AdminError::Invalid(e.to_string()))?;
        client.id = existing.id.clone();
        client.secret_hash = existing.secret_hash.clone();
        client.created_at = existing.created_at;
        client.registration = existing.registration.clone();
        client.registered_from = existing.registered_from.clone();
        client.first_used_at = existing.first_used_at;
        if !self.store.update_client(&client).await? {
            return Err(AdminError::NotFound);
        }
        self.forget_client(client_id);
        self.audit_log
            .record(
                caller,
                "client.updated",
                Some(client_id),
                format!("settings of {:?} changed", client.name),
            )
            .await;
        Ok(client)
    }

    /// Gives a confidential client a new secret; the old one stops working at once.
    pub async fn rotate_client_secret(
        &self,
        caller: &Caller,
        client_id: &str,
    ) -> Result<(Client, Secret), AdminError> {
        let mut client = self.existing_client(client_id).await?;
        if !client.token_endpoint_auth_method.uses_secret() {
            return Err(AdminError::Invalid(
                "this client has no secret to rotate (it is public or uses private_key_jwt)".into(),
            ));
        }
        let secret = Secret::generate();
        client.secret_hash = Some(secret.storage_hash());
        client.updated_at = self.now();
        if !self.store.update_client(&client).await? {
            return Err(AdminError::NotFound);
        }
        self.forget_client(client_id);
        self.audit_log
            .record(
                caller,
                "client.secret_rotated",
                Some(client_id),
                format!(
                    "new secret for {:?}; the old one no longer works",
                    client.name
                ),
            )
            .await;
        Ok((client, secret))
    }

    /// Deletes a client with its refresh tokens, codes and consents.
    pub async fn delete_client(&self, caller: &Caller, client_id: &str) -> Result<(), AdminError> {
        let client = self.existing_client(client_id).await?;
        if !self.store.delete_client(client_id).await? {
            return Err(AdminError::NotFound);
        }
        self.forget_client(client_id);
        self.audit_log
            .record(
                caller,
                "client.deleted",
                Some(client_id),
                format!("{:?} and its refresh tokens deleted", client.name),
            )
            .await;
        Ok(())
    }
}
