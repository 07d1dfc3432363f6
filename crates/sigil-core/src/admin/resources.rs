//! The resource registry (RFC 8707): protected resources and the scopes each accepts;
//! every change audited.

use super::{Admin, AdminError};
use crate::audit::Caller;
use crate::resource::{new_resource, Resource};

impl Admin {
    /// Adds a resource, or replaces the settings of the one with this URI.
    pub async fn put_resource(
        &self,
        caller: &Caller,
        uri: &str,
        name: &str,
        scopes: &[String],
        self_registered_clients: bool,
    ) -> Result<Resource, AdminError> {
        let resource = new_resource(uri, name, scopes, self_registered_clients, self.now())
            .map_err(|e| AdminError::Invalid(e.to_string()))?;
        self.store.put_resource(&resource).await?;
        self.audit_log
            .record(
                caller,
                "resource.saved",
                Some(&resource.uri),
                format!(
                    "{:?} with scopes [{}]{}",
                    resource.name,
                    resource.scopes.join(" "),
                    if resource.self_registered_clients {
                        ", open to self-registered clients"
                    } else {
                        ""
                    }
                ),
            )
            .await;
        Ok(resource)
    }

    pub async fn list_resources(&self) -> Result<Vec<Resource>, AdminError> {
        Ok(self.store.list_resources().await?)
    }

    pub async fn find_resource(&self, uri: &str) -> Result<Option<Resource>, AdminError> {
        Ok(self.store.find_resource(uri).await?)
    }

    /// Removes a resource: tokens already issued for it stay valid until they expire.
    pub async fn delete_resource(&self, caller: &Caller, uri: &str) -> Result<(), AdminError> {
        if !self.store.delete_resource(uri).await? {
            return Err(AdminError::NotFound);
        }
        self.audit_log
            .record(caller, "resource.deleted", Some(uri), "removed")
            .await;
        Ok(())
    }
}
