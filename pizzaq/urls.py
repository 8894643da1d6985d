from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from orders import api

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/"), name="home"),
    path("admin/", admin.site.urls),
    path("api/orders", api.orders_collection, name="api-orders"),
    path("api/orders/<uuid:order_id>", api.order_detail, name="api-order"),
]
