from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from apps.accounts.services import InvitationError, invitation_accept
from apps.core.ratelimit import ip_refusal, ip_take
from apps.keys.auth import client_ip


@login_required
def invitation_accept_view(request: HttpRequest, token: str) -> HttpResponse:
    if request.method != "POST":
        return render(request, "accounts/invitation_accept.html", {"token": token})
    decision = ip_take("invitation_ip", "UNTRACE_RATE_LIMIT_INVITATION_PER_IP", client_ip(request.META))
    if decision is not None and not decision.allowed:
        _, body, headers = ip_refusal(decision, "invitation_ip")
        context = {"token": token, "error": body["error"]["message"]}
        response = render(request, "accounts/invitation_accept.html", context, status=429)
        for name, value in headers.items():
            response[name] = value
        return response
    try:
        membership = invitation_accept(token=token, user=request.user)
    except InvitationError as exc:
        context = {"token": token, "error": str(exc)}
        return render(request, "accounts/invitation_accept.html", context, status=400)
    messages.success(request, f"You joined {membership.organization.name}.")
    return redirect("dashboard:members", organization_id=membership.organization_id)
