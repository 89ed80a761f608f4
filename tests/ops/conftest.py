"""The operations specifications use the security suite's authenticated app."""
from tests.security.conftest import rsa_key, secure_app, secure_settings  # noqa: F401  (shared fixtures)
