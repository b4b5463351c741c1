"""Example identity provider: Django on the API's image, with its own settings.

POST /auth/token {"user": NAME} issues a signed token (django.core.signing with the
Django secret key from the Docker secret DJANGO_SECRET_KEY_FILE); GET /auth/verify
with "Authorization: Bearer TOKEN" says whose it is, or 401. GET /auth/health answers
ok; GET /auth/metrics is Prometheus text. It keeps no user store: an operator's real
identity provider replaces this program, the way sitectl deploys it stays the same.
"""
import json
import os
import sys
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import django
from django.conf import settings


def secret_key():
    path = os.environ.get("DJANGO_SECRET_KEY_FILE", "")
    if not path:
        sys.exit("identity: DJANGO_SECRET_KEY_FILE is not set (the signing key's Docker secret)")
    with open(path) as f:
        key = f.read().strip()
    if not key:
        sys.exit("identity: %s is empty" % path)
    return key


settings.configure(
    DEBUG=False,
    SECRET_KEY=secret_key(),
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    DATABASES={},
    USE_TZ=True,
)
django.setup()

from django.core import signing  # noqa: E402
from django.http import HttpResponse, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

SALT = "sitectl-example-identity"
TTL = int(os.environ.get("IDP_TOKEN_TTL", "3600"))
SITE = os.environ.get("SITE_ID", "")
counts = {"issued": 0, "valid": 0, "invalid": 0}
lock = threading.Lock()


def count(name):
    with lock:
        counts[name] += 1


def health(request):
    return JsonResponse({"status": "ok", "app": "identity"})


@csrf_exempt
def token(request):
    if request.method != "POST":
        return JsonResponse({"error": "POST a JSON body {\"user\": NAME}"}, status=405)
    try:
        user = str(json.loads(request.body or b"{}").get("user", "")).strip()
    except (ValueError, AttributeError):
        return JsonResponse({"error": "body must be JSON"}, status=400)
    if not user:
        return JsonResponse({"error": "user is required"}, status=400)
    count("issued")
    return JsonResponse({"token": signing.dumps({"sub": user}, salt=SALT), "expires_in": TTL}, status=201)


def verify(request):
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        count("invalid")
        return JsonResponse({"error": "send Authorization: Bearer TOKEN"}, status=401)
    try:
        claims = signing.loads(header[len("Bearer "):], salt=SALT, max_age=TTL)
    except signing.BadSignature:
        count("invalid")
        return JsonResponse({"error": "invalid or expired token"}, status=401)
    count("valid")
    return JsonResponse({"sub": claims["sub"]})


def metrics(request):
    with lock:
        c = dict(counts)
    lines = [
        "# HELP idp_tokens_issued_total Tokens issued.",
        "# TYPE idp_tokens_issued_total counter",
        "idp_tokens_issued_total %d" % c["issued"],
        "# HELP idp_verifications_total Token verifications by result.",
        "# TYPE idp_verifications_total counter",
        'idp_verifications_total{result="valid"} %d' % c["valid"],
        'idp_verifications_total{result="invalid"} %d' % c["invalid"],
    ]
    return HttpResponse("\n".join(lines) + "\n", content_type="text/plain; version=0.0.4")


urlpatterns = [
    path("auth/health", health),
    path("auth/token", token),
    path("auth/verify", verify),
    path("auth/metrics", metrics),
]


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class Quiet(WSGIRequestHandler):
    def log_message(self, fmt, *args):
        if not self.path.endswith("/health"):
            sys.stderr.write("identity: %s %s\n" % (self.address_string(), fmt % args))


if __name__ == "__main__":
    from django.core.wsgi import get_wsgi_application

    port = int(os.environ.get("PORT", "8000"))
    print("identity: listening on :%d" % port, flush=True)
    make_server("", port, get_wsgi_application(), server_class=Server, handler_class=Quiet).serve_forever()
