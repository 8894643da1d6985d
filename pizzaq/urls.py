from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("orders.urls")),
    path("", include("pizzaq.ops.urls")),
    path("", include("pizzaq.dashboard.urls")),
]
