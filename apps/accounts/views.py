from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from apps.accounts.services import InvitationError, invitation_accept


@login_required
def invitation_accept_view(request: HttpRequest, token: str) -> HttpResponse:
    if request.method != "POST":
        return render(request, "accounts/invitation_accept.html", {"token": token})
    try:
        membership = invitation_accept(token=token, user=request.user)
    except InvitationError as exc:
        context = {"token": token, "error": str(exc)}
        return render(request, "accounts/invitation_accept.html", context, status=400)
    messages.success(request, f"You joined {membership.organization.name}.")
    return redirect("dashboard:members", organization_id=membership.organization_id)
