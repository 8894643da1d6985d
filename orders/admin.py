from django.contrib import admin, messages

from orders import services
from orders.models import ApiToken, Order


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "status", "priority", "worker", "attempt", "bucket", "created_at", "finished_at"]
    list_filter = ["status", "kind", "priority", "worker"]
    search_fields = ["=id", "routing_key"]
    readonly_fields = [f.name for f in Order._meta.fields]
    actions = ["retry_orders", "cancel_orders", "requeue_orders"]
    ordering = ["-id"]

    def _apply(self, request, queryset, change):
        for order_id in queryset.values_list("pk", flat=True):
            outcome = change(order_id)
            self.message_user(request, outcome.message, messages.SUCCESS if outcome else messages.WARNING)

    @admin.action(description="Retry the selected dead orders", permissions=["change"])
    def retry_orders(self, request, queryset):
        self._apply(request, queryset, services.retry)

    @admin.action(description="Cancel the selected queued orders", permissions=["change"])
    def cancel_orders(self, request, queryset):
        self._apply(request, queryset, services.cancel)

    @admin.action(description="Requeue the selected running, expired or cancelled orders", permissions=["change"])
    def requeue_orders(self, request, queryset):
        self._apply(request, queryset, services.requeue)

    def has_add_permission(self, request):
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]
    readonly_fields = ["prefix", "key_hash", "created_at", "last_used_at"]
    list_filter = ["user"]
