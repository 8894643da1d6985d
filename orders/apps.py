from importlib import import_module

from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Orders"

    def ready(self):
        from orders import conf

        # Importing a handler module registers its kinds.
        for module in conf.get().handler_modules:
            import_module(module)
