from importlib import import_module

from django.apps import AppConfig
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.signals import connection_created


def check_limits(**kwargs):
    """PIZZAQ_LIMITS, checked when any command starts, not when a worker first uses it."""
    from orders.limits import configured

    try:
        configured()
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), id="pizzaq.E001")]
    return []


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

        checks.register(check_limits)
        connection_created.connect(sqlite_recursive_triggers)
        # Importing a handler module registers its kinds.
        for module in conf.get().handler_modules:
            import_module(module)
