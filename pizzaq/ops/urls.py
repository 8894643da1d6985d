from django.urls import path

from pizzaq.ops import views

urlpatterns = [
    path("metrics", views.metrics, name="ops-metrics"),
    path("healthz", views.healthz, name="ops-healthz"),
    path("readyz", views.readyz, name="ops-readyz"),
]
