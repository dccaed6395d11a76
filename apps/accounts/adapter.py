from allauth.account.adapter import DefaultAccountAdapter
from allauth.mfa.adapter import DefaultMFAAdapter

from apps.accounts.services import user_onboard
from apps.core import crypto
from apps.keys.auth import client_ip


class AccountAdapter(DefaultAccountAdapter):
    """Every new account starts with its own organization and a first project."""

    def get_client_ip(self, request) -> str:
        """The address allauth's rate limits count under: the same rule as every other
        limit (X-Forwarded-For only from UNTRACE_TRUSTED_PROXIES)."""
        return client_ip(request.META) or super().get_client_ip(request)

    def save_user(self, request, user, form, commit=True):
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            user_onboard(user=user)
        return user


class MFAAdapter(DefaultMFAAdapter):
    """TOTP secrets and the recovery-code seed are stored encrypted (UNTRACE_ENCRYPTION_KEYS)."""

    def encrypt(self, text: str) -> str:
        return crypto.encrypt(text)

    def decrypt(self, encrypted_text: str) -> str:
        return crypto.decrypt(encrypted_text)
