"""/metrics, /healthz and /readyz: plain GET endpoints for scrapers and orchestrators."""

from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from pizzaq.ops.access import metrics_allowed
from pizzaq.ops.health import readiness
from pizzaq.ops.metrics import exposition


@require_GET
def metrics(request):
    if not metrics_allowed(request):
        return JsonResponse({"error": {"code": "forbidden", "message": "metrics need the bearer token "
                                       "(PIZZAQ_METRICS_TOKEN) or an address in PIZZAQ_METRICS_NETWORKS"}},
                            status=403)
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)


@require_GET
def healthz(request):
    """The process is up and answering; it says nothing about the database."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request):
    """503 with the reasons unless the database answers, every migration is applied and
    a notifier led recently."""
    checks = readiness()
    failing = [check["reason"] for check in checks.values() if not check["ok"]]
    body = {"ready": not failing, "checks": checks}
    if failing:
        body["reason"] = "; ".join(failing)
    return JsonResponse(body, status=503 if failing else 200)
