"""The viewer page: a static shell; its script reads the token from the URL fragment and does the rest."""

from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_safe

from viewer.security import page_headers


@require_safe
@never_cache
@xframe_options_exempt  # page_headers() decides, from VIEWER_FRAME_ANCESTORS
def viewer_page(request):
    response = render(request, "viewer/viewer.html")
    for name, value in page_headers().items():
        response[name] = value
    return response
