"""Middleware that answer or fail around the view, for the HTTP server span tests."""

from django.http import HttpResponse
from django.utils.deprecation import MiddlewareMixin


class AnswerEarlyMiddleware(MiddlewareMixin):
    """Answers from process_request with the status in the ``X-Answer`` header (a rate
    limiter, a maintenance switch), before URL resolution."""

    def process_request(self, request):
        status = request.headers.get("X-Answer")
        return HttpResponse("early", status=int(status)) if status else None


class FailingMiddleware:
    """Raises in the phase named by the ``X-Fail`` header: ``request`` or ``response``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        phase = request.headers.get("X-Fail")
        if phase == "request":
            raise LookupError("before the view")
        response = self.get_response(request)
        if phase == "response":
            raise KeyError("after the view")
        return response
