"""acr_emulator: a local Azure Container Registry that speaks ACR's wire protocol."""
