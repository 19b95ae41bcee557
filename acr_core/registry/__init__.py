"""Talking to ACR: the client (one method per endpoint), its auth flow, the transport that owns
retries and 429s, the endpoint parser, the exception tree and the wire helpers. Imports httpx;
knows nothing of policies or plans."""
