import os

import uvicorn
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = ("Serve the site (API, dashboard, admin, websockets) with uvicorn: one process per core, "
            "so requests run side by side rather than in turn under one interpreter lock.")

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=int(os.environ.get("PIZZAQ_WEB_PORT", "8000")))
        parser.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                            help="web processes (default: one per core)")

    def handle(self, *args, host, port, processes, **options):
        if processes < 1:
            raise CommandError("--processes must be at least 1")
        # Django's ASGI application has no lifespan events; the project's own logging
        # settings stay in force (no uvicorn log config), and no line per request.
        uvicorn.run("pizzaq.asgi:application", host=host, port=port, workers=processes, lifespan="off",
                    log_config=None, access_log=False, http="httptools", loop="uvloop")
