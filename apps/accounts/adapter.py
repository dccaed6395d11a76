from allauth.account.adapter import DefaultAccountAdapter

from apps.accounts.services import user_onboard


class AccountAdapter(DefaultAccountAdapter):
    """Every new account starts with its own organization and a first project."""

    def save_user(self, request, user, form, commit=True):
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            user_onboard(user=user)
        return user
