"""Registry access: 401 challenges, bearer tokens, the auth flow, transport, resolve and fetch."""
