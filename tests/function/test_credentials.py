"""The function signs in as the managed identity the settings name, one credential per loop."""

from __future__ import annotations

from azure.identity.aio import ManagedIdentityCredential

from acr_core.app.credentials import ManagedIdentity
from acr_core.app.settings import load_settings


async def test_managed_identity_honours_azure_client_id() -> None:
    """With AZURE_CLIENT_ID the function signs in as that user-assigned identity, once per loop."""
    settings = load_settings(
        {
            "ACR_LOGIN_SERVER": "myregistry.azurecr.io",
            "ACR_RESOURCE_ID": "/subscriptions/s/resourceGroups/g/providers/"
            "Microsoft.ContainerRegistry/registries/myregistry",
            "CLEANUP_POLICY": '{"version": 1, "rules": [{"repositories": ["a"]}]}',
            "AZURE_CLIENT_ID": "00000000-0000-0000-0000-0000000000aa",
        }
    )
    managed = ManagedIdentity()
    credential = managed.for_this_loop(settings.client_id)
    try:
        assert isinstance(credential, ManagedIdentityCredential)
        assert managed.for_this_loop(settings.client_id) is credential
    finally:
        await credential.close()
