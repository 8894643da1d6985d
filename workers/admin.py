from django.contrib import admin, messages
from django.utils import timezone

from orders.admin import OrderAdmin
from orders.models import Order
from workers import actions
from workers.models import Bucket, Event, Worker


class OperatedOrderAdmin(OrderAdmin):
    """Orders, with what people do to them. The admin is a screen like the dashboard: its
    actions go through the same permission check, services and audit trail."""

    actions = ["retry_orders", "cancel_orders", "requeue_orders"]

    def _apply(self, request, queryset, action: str):
        for order_id in queryset.values_list("pk", flat=True):
            result = actions.perform(request.user, action, str(order_id))
            self.message_user(request, result.message, messages.SUCCESS if result.ok else messages.WARNING)

    def has_operate_permission(self, request):
        return actions.may_operate(request.user)

    @admin.action(description="Retry the selected dead orders", permissions=["operate"])
    def retry_orders(self, request, queryset):
        self._apply(request, queryset, "retry")

    @admin.action(description="Cancel the selected queued or dead orders", permissions=["operate"])
    def cancel_orders(self, request, queryset):
        self._apply(request, queryset, "cancel")

    @admin.action(description="Requeue the selected running, expired or cancelled orders", permissions=["operate"])
    def requeue_orders(self, request, queryset):
        self._apply(request, queryset, "requeue")


admin.site.unregister(Order)
admin.site.register(Order, OperatedOrderAdmin)


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ["name", "status", "heartbeat_age_display", "host", "pid", "concurrency", "incarnation", "started_at"]
    list_filter = ["status", "host"]
    search_fields = ["name", "host"]
    actions = ["force_fail_workers"]
    readonly_fields = [f.name for f in Worker._meta.fields]

    @admin.display(description="heartbeat age")
    def heartbeat_age_display(self, worker):
        return f"{worker.heartbeat_age(timezone.now()):.1f} s"

    @admin.action(description="Force-fail the selected workers (their orders move to live shops)",
                  permissions=["operate"])
    def force_fail_workers(self, request, queryset):
        for name in queryset.values_list("name", flat=True):
            result = actions.perform(request.user, "force_fail", name)
            self.message_user(request, result.message, messages.SUCCESS if result.ok else messages.WARNING)

    def has_operate_permission(self, request):
        return actions.may_operate(request.user)

    def has_delete_permission(self, request, obj=None):
        # A deleted row would leave a live process fenced off and its orders unmoved.
        return False

    def has_add_permission(self, request):
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Bucket)
class BucketAdmin(ReadOnlyAdmin):
    list_display = ["number", "owner", "changed_at"]
    list_filter = ["owner"]


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "kind", "worker", "actor", "message"]
    list_filter = ["kind", "worker"]
    search_fields = ["message", "worker", "actor"]
