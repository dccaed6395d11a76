"""Test settings: the real settings module, fed test defaults and tuned for speed."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("UNTRACE_SECRET_KEY", "test-secret-key-" + "x" * 50)
os.environ.setdefault("UNTRACE_ENCRYPTION_KEYS", "dGVzdC1lbmNyeXB0aW9uLWtleS0wMDAwMDAwMDAwMDA=")
os.environ.setdefault("UNTRACE_SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("UNTRACE_ALLOW_PRIVATE_DESTINATIONS", "true")
# No plan limits outside the billing tests, which set the starter plan themselves.
os.environ.setdefault("UNTRACE_DEFAULT_PLAN", "enterprise")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
# allauth's rate limits in the process (cleared per test); the live stacks use Redis.
os.environ.setdefault("UNTRACE_CACHE_URL", "locmem://")

from untrace.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
# Connections of the ingest thread pool close after each request, so the test
# database can be dropped at the end of the run.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
