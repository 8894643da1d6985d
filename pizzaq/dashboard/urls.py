from django.urls import path

from pizzaq.dashboard import views

urlpatterns = [
    path("", views.index, name="dashboard"),
    path("orders/<uuid:order_id>", views.order_page, name="dashboard-order"),
    path("dashboard/orders", views.place, name="dashboard-place"),
    path("dashboard/orders/<uuid:order_id>/retry", views.retry_order, name="dashboard-retry"),
    path("dashboard/orders/<uuid:order_id>/cancel", views.cancel_order, name="dashboard-cancel"),
    path("dashboard/workers/<str:name>/fail", views.fail_worker, name="dashboard-fail-worker"),
]
