"""The JSON API's routes: ``path("api/", include("orders.urls"))`` in a project's URLs."""

from django.urls import path

from orders import api

urlpatterns = [
    path("orders", api.orders_collection, name="api-orders"),
    path("orders/bulk", api.orders_bulk, name="api-orders-bulk"),
    path("orders/<uuid:order_id>", api.order_detail, name="api-order"),
]
