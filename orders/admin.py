from django import forms
from django.contrib import admin
from django.utils import timezone

from orders import schedules
from orders.models import ApiToken, Limit, Order, Queue, Schedule


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    """Orders, read-only: what people do to them (retry, cancel, requeue) is recorded in
    the audit trail, which the workers app keeps; its admin adds those actions."""

    list_display = ["id", "kind", "queue", "status", "priority", "worker", "attempt", "bucket", "created_at", "finished_at"]
    list_filter = ["status", "queue", "kind", "priority", "worker"]
    search_fields = ["=id", "routing_key"]
    readonly_fields = [f.name for f in Order._meta.fields]
    ordering = ["-id"]

    def has_delete_permission(self, request, obj=None):
        # Orders end through the services (cancel, pruning), never by a bare delete.
        return False

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


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    """Queues' settings. A queue needs no row until it is paused; one may be added here to
    pause it. Pausing and resuming are recorded in the audit trail, which the workers app
    keeps; its admin adds those actions."""

    list_display = ["name", "is_paused", "paused_by", "paused_at"]
    fields = ["name", "paused_at", "paused_by"]

    def get_readonly_fields(self, request, obj=None):
        return ["paused_at", "paused_by"] if obj is None else ["name", "paused_at", "paused_by"]

    @admin.display(boolean=True, description="paused")
    def is_paused(self, queue):
        return queue.is_paused

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Limit)
class LimitAdmin(admin.ModelAdmin):
    """Cluster-wide limits, editable here; those PIZZAQ_LIMITS sets are rewritten from the
    settings whenever a worker starts."""

    list_display = ["scope", "name", "max_running", "max_running_per_key", "max_starts", "per_seconds", "from_settings"]
    list_filter = ["scope", "from_settings"]


class ScheduleForm(forms.ModelForm):
    """A schedule is checked as its orders will be: cadence, kind, queue, payload, priority."""

    def clean(self):
        cleaned = super().clean()
        if not self.errors:
            definition = {field: cleaned[field] for field in schedules.DEFINITION_FIELDS if field in cleaned}
            try:
                schedules.check(Schedule(**definition))
            except ValueError as error:
                raise forms.ValidationError(str(error)) from None
        return cleaned

    class Meta:
        model = Schedule
        fields = "__all__"


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    """Periodic orders. Those PIZZAQ_SCHEDULES sets are rewritten from the settings when a
    notifier starts (whether they are enabled stays as set here). Firing, enabling and
    disabling are recorded in the audit trail, which the workers app keeps; its admin adds
    those actions."""

    form = ScheduleForm
    list_display = ["name", "enabled", "cadence_display", "kind", "queue", "next_slot_at", "last_slot_at",
                    "last_fired_at", "from_settings"]
    list_filter = ["enabled", "from_settings", "queue", "kind"]
    readonly_fields = ["enabled", "from_settings", "settled_through", "next_slot_at", "last_slot_at", "last_fired_at",
                       "last_order_id"]

    @admin.display(description="when")
    def cadence_display(self, schedule):
        return schedule.describe()

    def get_readonly_fields(self, request, obj=None):
        # The name is the key: renaming would make a second schedule, not rename this one.
        return self.readonly_fields if obj is None else ["name", *self.readonly_fields]

    def save_model(self, request, obj, form, change):
        schedules.save_definition(obj)
