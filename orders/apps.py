from importlib import import_module

from django.apps import AppConfig
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.signals import connection_created


def check_settings(**kwargs):
    """PIZZAQ_LIMITS and PIZZAQ_SCHEDULES, checked when any command starts, not when a
    worker or the notifier first uses them."""
    from orders import limits, schedules

    errors = []
    for number, configured in ((1, limits.configured), (2, schedules.configured)):
        try:
            configured()
        except ImproperlyConfigured as error:
            errors.append(checks.Error(str(error), id=f"pizzaq.E00{number}"))
    return errors


def sqlite_recursive_triggers(sender, connection, **kwargs):
    """Waiting orders are released by a trigger that fires itself along a chain
    (a -> b -> c); SQLite runs a trigger from inside itself only when asked to."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA recursive_triggers = ON")


class OrdersConfig(AppConfig):
    name = "orders"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Orders"

    def ready(self):
        from orders import conf

        checks.register(check_settings)
        connection_created.connect(sqlite_recursive_triggers)
        # Importing a handler module registers its kinds.
        for module in conf.get().handler_modules:
            import_module(module)
