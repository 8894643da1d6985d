from importlib import import_module

from django.apps import AppConfig
from django.core import checks
from django.core.exceptions import ImproperlyConfigured


def check_limits(**kwargs):
    """PIZZAQ_LIMITS, checked when any command starts, not when a worker first uses it."""
    from orders.limits import configured

    try:
        configured()
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), id="pizzaq.E001")]
    return []


class OrdersConfig(AppConfig):
    name = "orders"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Orders"

    def ready(self):
        from orders import conf

        checks.register(check_limits)
        # Importing a handler module registers its kinds.
        for module in conf.get().handler_modules:
            import_module(module)
