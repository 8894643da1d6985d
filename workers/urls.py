"""The operations API's routes: ``path("api/", include("workers.urls"))`` next to
``orders.urls`` in a project's URLs."""

from django.urls import path

from workers import api

urlpatterns = [
    path("queues", api.queues, name="api-queues"),
    path("queues/<str:name>/pause", api.named_action, {"action": "pause"}, name="api-queue-pause"),
    path("queues/<str:name>/resume", api.named_action, {"action": "resume"}, name="api-queue-resume"),
    path("schedules", api.schedules, name="api-schedules"),
    *[path(f"schedules/<str:name>/{action}", api.named_action, {"action": action}, name=f"api-schedule-{action}")
      for action in ("fire", "enable", "disable")],
    path("orders/<uuid:order_id>/cancel", api.order_action, {"action": "cancel"}, name="api-order-cancel"),
    path("orders/<uuid:order_id>/retry", api.order_action, {"action": "retry"}, name="api-order-retry"),
]
