from django.contrib.auth import views as auth_views
from django.urls import path

from caredesk.inbox import views

app_name = "inbox"

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="inbox/login.html", redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("", views.inbox, name="inbox"),
    path("stream", views.stream, name="stream"),
    path("cases/", views.case_list, name="case-list"),
    path("cases/<int:case_id>/", views.case_detail, name="case"),
    path("cases/<int:case_id>/live", views.case_live, name="case-live"),
    path("cases/<int:case_id>/presence", views.case_presence, name="case-presence"),
    path("cases/<int:case_id>/leave", views.case_leave, name="case-leave"),
    path("cases/<int:case_id>/reply", views.case_reply, name="case-reply"),
    path("cases/<int:case_id>/replies/<int:reply_id>/retry", views.reply_retry, name="reply-retry"),
    path("cases/<int:case_id>/replies/<int:reply_id>/settle", views.reply_settle, name="reply-settle"),
    path("cases/<int:case_id>/assign", views.case_assign, name="case-assign"),
    path("cases/<int:case_id>/status", views.case_status, name="case-status"),
    path("cases/<int:case_id>/labels", views.case_labels, name="case-labels"),
    path("cases/<int:case_id>/notes", views.case_note, name="case-note"),
    path("cases/<int:case_id>/posts/<int:post_id>/labels", views.post_labels, name="post-labels"),
]
