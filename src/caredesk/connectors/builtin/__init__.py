"""Providers that ship with caredesk, one package per platform; each is registered as an entry point in
``pyproject.toml`` like any third-party provider would be."""
