from django.contrib import admin, messages
from django.utils import timezone

from orders.admin import OrderAdmin, QueueAdmin, ScheduleAdmin
from orders.models import Order, Queue, Schedule
from workers import actions
from workers.models import Bucket, Event, Worker


class Operated:
    """An admin whose actions go through the same permission check, services and audit
    trail as the dashboard's: the admin is a screen like the dashboard."""

    def _apply(self, request, queryset, action: str):
        for target in queryset.values_list("pk", flat=True):
            result = actions.perform(request.user, action, str(target))
            self.message_user(request, result.message, messages.SUCCESS if result.ok else messages.WARNING)

    def has_operate_permission(self, request):
        return actions.may_operate(request.user)


def operation(action: str, description: str):
    """An admin action that does ``action`` to each selected row, through ``actions.perform``."""

    @admin.action(description=description, permissions=["operate"])
    def run(modeladmin, request, queryset):
        modeladmin._apply(request, queryset, action)

    run.__name__ = f"{action}_selected"
    return run


class OperatedOrderAdmin(Operated, OrderAdmin):
    """Orders, with what people do to them."""

    actions = [operation("retry", "Retry the selected dead orders"),
               operation("cancel", "Cancel the selected queued, running or dead orders"),
               operation("requeue", "Requeue the selected running, expired or cancelled orders")]


class OperatedQueueAdmin(Operated, QueueAdmin):
    """Queues, paused and resumed from the list."""

    actions = [operation("pause", "Pause the selected queues"), operation("resume", "Resume the selected queues")]


class OperatedScheduleAdmin(Operated, ScheduleAdmin):
    """Schedules, fired, enabled and disabled from the list."""

    actions = [operation("fire", "Fire the selected schedules now (one order each, outside their slots)"),
               operation("enable", "Enable the selected schedules"),
               operation("disable", "Disable the selected schedules")]


admin.site.unregister(Order)
admin.site.register(Order, OperatedOrderAdmin)
admin.site.unregister(Queue)
admin.site.register(Queue, OperatedQueueAdmin)
admin.site.unregister(Schedule)
admin.site.register(Schedule, OperatedScheduleAdmin)


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ["name", "status", "heartbeat_age_display", "host", "pid", "concurrency", "queues", "incarnation", "started_at"]
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
    list_display = ["number", "queue", "owner", "changed_at"]
    list_filter = ["queue", "owner"]


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "kind", "worker", "actor", "message"]
    list_filter = ["kind", "worker"]
    search_fields = ["message", "worker", "actor"]
