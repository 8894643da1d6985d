from django.urls import path

from pizzaq.dashboard import views

urlpatterns = [
    path("", views.index, name="dashboard"),
    path("orders/<uuid:order_id>", views.order_page, name="dashboard-order"),
    path("dashboard/orders", views.place, name="dashboard-place"),
    path("dashboard/orders/<uuid:target>/retry", views.act, {"action": "retry"}, name="dashboard-retry"),
    path("dashboard/orders/<uuid:target>/cancel", views.act, {"action": "cancel"}, name="dashboard-cancel"),
    path("dashboard/workers/<str:target>/fail", views.act, {"action": "force_fail"}, name="dashboard-fail-worker"),
    path("dashboard/queues/<str:target>/pause", views.act, {"action": "pause"}, name="dashboard-queue-pause"),
    path("dashboard/queues/<str:target>/resume", views.act, {"action": "resume"}, name="dashboard-queue-resume"),
    *[path(f"dashboard/schedules/<str:target>/{action}", views.act, {"action": action}, name=f"dashboard-schedule-{action}")
      for action in ("fire", "enable", "disable")],
]
