from django.contrib import admin
from django.urls import include, path

from orders import api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/orders", api.orders_collection, name="api-orders"),
    path("api/orders/bulk", api.orders_bulk, name="api-orders-bulk"),
    path("api/orders/<uuid:order_id>", api.order_detail, name="api-order"),
    path("", include("pizzaq.ops.urls")),
    path("", include("pizzaq.dashboard.urls")),
]
