import logging
import time

from core.errors import route_name

logger = logging.getLogger("dicomsvc.requests")


class RequestLogMiddleware:
    """One access-log line per request with the matched route, never the path or query string.

    Paths and query strings carry patient IDs and UIDs; the route pattern
    (``workitems/<str:study_uid>``) says enough to operate the service.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "%s %s %s %.1fms",
                request.method,
                route_name(request),
                response.status_code,
                (time.perf_counter() - started) * 1000,
            )
        return response
