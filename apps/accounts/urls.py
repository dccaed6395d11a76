from django.urls import path

from apps.accounts import views

app_name = "accounts"

urlpatterns = [
    path("invitations/<str:token>/accept", views.invitation_accept_view, name="invitation-accept"),
]
