"""acr_core: the ACR cleanup library (client, auth, policy, planner, executor, CLI)."""
