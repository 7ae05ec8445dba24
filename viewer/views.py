"""The viewer page: a static shell; its script reads the token from the URL fragment and does the rest."""

from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from viewer.security import SECURITY_HEADERS


def _secured(response):
    for name, value in SECURITY_HEADERS.items():
        response[name] = value
    return response


@require_safe
@never_cache
def viewer_page(request):
    return _secured(render(request, "viewer/viewer.html"))
