"""Configuration and hosts: config.toml, hosts.toml, credentials, TLS and endpoint choice."""
