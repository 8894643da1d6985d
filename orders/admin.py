from django.contrib import admin, messages
from django.utils import timezone

from orders.models import ApiToken, Order
# The admin is a screen like the dashboard: its actions go through the same
# permission check, services and audit trail.
from pizzaq.dashboard import actions


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "status", "priority", "worker", "attempt", "bucket", "created_at", "finished_at"]
    list_filter = ["status", "kind", "priority", "worker"]
    search_fields = ["=id", "routing_key"]
    readonly_fields = [f.name for f in Order._meta.fields]
    actions = ["retry_orders", "cancel_orders", "requeue_orders"]
    ordering = ["-id"]

    def _apply(self, request, queryset, action: str):
        for order_id in queryset.values_list("pk", flat=True):
            result = actions.perform(request.user, action, str(order_id))
            self.message_user(request, result.message, messages.SUCCESS if result.ok else messages.WARNING)

    def has_operate_permission(self, request):
        return actions.may_operate(request.user)

    def has_delete_permission(self, request, obj=None):
        # Orders end through the services (cancel, pruning), never by a bare delete.
        return False

    @admin.action(description="Retry the selected dead orders", permissions=["operate"])
    def retry_orders(self, request, queryset):
        self._apply(request, queryset, "retry")

    @admin.action(description="Cancel the selected queued or dead orders", permissions=["operate"])
    def cancel_orders(self, request, queryset):
        self._apply(request, queryset, "cancel")

    @admin.action(description="Requeue the selected running, expired or cancelled orders", permissions=["operate"])
    def requeue_orders(self, request, queryset):
        self._apply(request, queryset, "requeue")

    def has_add_permission(self, request):
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are created with `manage.py createtoken` (the key is shown once); here they
    are listed, given an expiry, and revoked."""

    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]
    fields = ["user", "name", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]
    readonly_fields = ["user", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["user"]
    actions = ["revoke_tokens"]

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke_tokens(self, request, queryset):
        revoked = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"{revoked} tokens revoked")

    def has_add_permission(self, request):
        return False
