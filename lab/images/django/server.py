"""sitectl lab Django API: GET /health (and /healthz), GET /ready, POST /rows, GET /rows.

/health is liveness: 200 while the process serves (the swarm health check). /ready is
readiness: 200 only while the site's database answers, else 503 (Kong's health checks,
so the gateway fails /api over to a peer site, docs/gateway.md). Every path is also
served under /api/ (Kong's /api route keeps the path: strip_path is false).

A database that fails is failed consistently: once a request meets a connection
error (a refused or failed connect, a kept connection the server terminated), every
request that needs the database, /ready included, answers 503 at once for
DB_DOWN_HOLD seconds (5; each failure restarts it), then tries again; once a kept
connection is found closed by the server, new connections are made one at a time
until one succeeds (the others answer 503 meanwhile). While a database stops, the worker
threads whose connection is kept still answered and the others failed, and each
success reset Kong's failure counters, so its health checks flapped between this
site and its failover peer (docs/gateway.md#liveness-and-readiness).

Every row carries the site that wrote it (SITE_ID) and a UUIDv7 key minted here; the
app only ever writes its own site's rows (ownership, shared/DESIGN.md decision 4).
Configuration from the environment: SITE_ID; DATABASE_URL, or DB_HOST, DB_PORT,
DB_NAME, DB_USER and DB_PASSWORD / DB_PASSWORD_FILE (also used when DATABASE_URL
carries no password); PORT (8000); THREADS (16): the worker threads, each keeping
its own database connection; DB_DOWN_HOLD (5), seconds.
"""
import json
import os
import queue
import secrets
import select
import socketserver
import sys
import threading
import time
import uuid
from urllib.parse import urlparse, unquote
from wsgiref.simple_server import WSGIServer, WSGIRequestHandler

print("sitectl lab django-api: starting (site %s)" % os.environ.get("SITE_ID", "?"), flush=True)

import django  # noqa: E402
from django.conf import settings  # noqa: E402


def file_password():
    """DB_PASSWORD_FILE (a Docker secret, usually), else DB_PASSWORD."""
    pfile = os.environ.get("DB_PASSWORD_FILE", "")
    if pfile:
        with open(pfile) as f:
            return f.read().rstrip("\r\n")
    return os.environ.get("DB_PASSWORD", "")


def database_settings():
    url = os.environ.get("DATABASE_URL", "")
    if url:
        u = urlparse(url)
        # Secrets stay out of the URL: without a password in it, the file has it.
        return {"HOST": u.hostname or "", "PORT": str(u.port or 5432), "NAME": (u.path or "/app").lstrip("/"),
                "USER": unquote(u.username or ""), "PASSWORD": unquote(u.password) if u.password else file_password()}
    password = file_password()
    return {"HOST": os.environ.get("DB_HOST", "postgres"), "PORT": os.environ.get("DB_PORT", "5432"),
            "NAME": os.environ.get("DB_NAME", "app"), "USER": os.environ.get("DB_USER", "sitectl"), "PASSWORD": password}


def secret_key():
    f = os.environ.get("DJANGO_SECRET_KEY_FILE", "")
    if f and os.path.exists(f):
        with open(f) as fh:
            return fh.read().strip()
    return os.environ.get("DJANGO_SECRET_KEY") or secrets.token_hex(24)


settings.configure(
    DEBUG=False,
    SECRET_KEY=secret_key(),
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    DATABASES={"default": dict(ENGINE="django.db.backends.postgresql", CONN_MAX_AGE=None,
                               OPTIONS={"connect_timeout": 3}, **database_settings())},
    USE_TZ=True,
    LOGGING={
        "version": 1,
        "handlers": {"stderr": {"class": "logging.StreamHandler"}},
        "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
    },
)
django.setup()

from django.core.signals import request_started  # noqa: E402
from django.db import connection  # noqa: E402
from django.db import InterfaceError, OperationalError  # noqa: E402
from django.db.backends.postgresql.base import DatabaseWrapper  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402


def drop_dead_connection(**kwargs):
    """Django 3.2 has no CONN_HEALTH_CHECKS. A worker's kept connection that the
    database closed meanwhile (a restart or stop: PostgreSQL sends its FATAL notice
    and closes) is readable while idle; it is dropped before the request uses it, so
    the request opens a new one instead of failing. One poll, no round trip."""
    raw = connection.connection
    if raw is None:
        return
    try:
        dead = raw.closed or bool(select.select([raw.fileno()], [], [], 0)[0])
    except Exception:  # a closed or broken socket
        dead = True
    if dead:
        BREAKER.lost()
        try:
            connection.close()
        except Exception:
            connection.connection = None


request_started.connect(drop_dead_connection)


def seconds(name, default):
    raw = os.environ.get(name, default)
    try:
        v = float(raw)
    except ValueError:
        v = -1
    if v <= 0:
        sys.exit(f"sitectl lab django-api: {name} is {raw!r}; want seconds above 0, such as {default}")
    return v


class Breaker:
    """The database's state as every worker thread sees it: down for `hold` seconds
    after a connection error. Once a kept connection is found closed by the
    server (a stop or restart), new connections are made one at a time until one
    succeeds: a thread that needs one while another is pending waits up to `wait`
    seconds (0) for its outcome, then answers 503 without tripping the breaker (so
    16 threads do not all hang in a connect that may never finish while requests
    queue behind them, and a restart that is already over costs one connect). A
    connect that is merely slow (the first ones, on a loaded machine) is not a
    failure: a rule that called a connect pending for 2 s down failed a freshly
    started API in the lab."""

    def __init__(self, hold, wait=0.0):
        self.hold, self.wait = hold, wait
        self.cond = threading.Condition()
        self.until = 0.0
        self.suspect = False
        self.pending = {}  # connect attempt → when it began

    def trip(self):
        with self.cond:
            self.until = time.monotonic() + self.hold
            self.cond.notify_all()

    def down(self):
        with self.cond:
            return time.monotonic() < self.until

    def lost(self):
        """A kept connection was closed by the server."""
        with self.cond:
            self.suspect = True

    def connecting(self):
        """Registers a connect attempt; None when it must not be made (down, or
        suspect with another attempt still pending after `wait`)."""
        with self.cond:
            deadline = time.monotonic() + self.wait
            while self.suspect and self.pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            if time.monotonic() < self.until:
                return None
            token = object()
            self.pending[token] = time.monotonic()
            return token

    def connected(self, token, ok):
        with self.cond:
            self.pending.pop(token, None)
            if ok:
                self.suspect = False
            self.cond.notify_all()


class Busy(OperationalError):
    """No connect was tried: the breaker is open or another one is pending."""


BREAKER = Breaker(seconds("DB_DOWN_HOLD", "5"))
_new_connection = DatabaseWrapper.get_new_connection


def get_new_connection(self, conn_params):
    token = BREAKER.connecting()
    if token is None:
        raise Busy("database unavailable: another connection attempt is pending")
    ok = False
    try:
        conn = _new_connection(self, conn_params)
        ok = True
        return conn
    except Exception:
        BREAKER.trip()
        raise
    finally:
        BREAKER.connected(token, ok)


DatabaseWrapper.get_new_connection = get_new_connection


def unavailable(error=""):
    body = {"status": "error", "error": "database unavailable", "site": SITE}
    if error:
        body["database"] = error  # the exception's type: never a secret
    r = JsonResponse(body, status=503)
    r["Retry-After"] = str(int(BREAKER.hold))
    return r


def needs_database(view):
    """Answers 503 at once while the database is down or another connect is pending
    after a lost connection; a connection error trips the breaker and answers 503
    (other errors stay 500s)."""
    def wrapped(request, *args, **kwargs):
        if BREAKER.down():
            return unavailable()
        try:
            return view(request, *args, **kwargs)
        except Busy:
            return unavailable()
        except (OperationalError, InterfaceError) as e:
            BREAKER.trip()
            try:
                connection.close()
            except Exception:
                connection.connection = None
            return unavailable(type(e).__name__)
    wrapped.__name__ = view.__name__
    return wrapped

SITE = os.environ.get("SITE_ID", "")
TABLE = os.environ.get("ROWS_TABLE", "lab_rows")


def uuid7():
    """RFC 9562 UUIDv7: 48-bit Unix milliseconds, version 7, variant 10, random bits."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def ensure_table():
    """Creates the table only when it is missing: the API's own role (no DDL) finds
    it made by sitectl's schema, and CREATE TABLE IF NOT EXISTS needs CREATE on the
    schema even when the table exists."""
    with connection.cursor() as c:
        c.execute("SELECT to_regclass(%s) IS NOT NULL", [TABLE])
        if c.fetchone()[0]:
            return
        c.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} ("
            " id uuid NOT NULL, site text NOT NULL, body text NOT NULL DEFAULT '',"
            " created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (site, id))")


def health(request):
    """Liveness: the process is up. The database is not asked."""
    return JsonResponse({"status": "ok", "site": SITE, "app": "sitectl-lab-django"})


@needs_database
def ready(request):
    """Readiness: the site's database answers, and has not failed in the last
    DB_DOWN_HOLD seconds."""
    with connection.cursor() as c:
        c.execute("SELECT 1")
    return JsonResponse({"status": "ok", "site": SITE, "database": "ok", "app": "sitectl-lab-django"})


TABLE_READY = []  # non-empty once this process made sure the table exists


@csrf_exempt
@needs_database
def rows(request):
    if not SITE:
        return JsonResponse({"error": "SITE_ID is not set"}, status=500)
    if not TABLE_READY:
        ensure_table()
        TABLE_READY.append(True)
    try:
        return rows_of(request)
    except Exception:
        TABLE_READY.clear()  # a re-created database: make sure again next time
        raise


def rows_of(request):
    if request.method == "POST":
        try:
            payload = json.loads(request.body or b"{}")
        except ValueError:
            return JsonResponse({"error": "body must be JSON"}, status=400)
        if payload.get("site", SITE) != SITE:
            return JsonResponse({"error": f"this is site {SITE}: it writes only its own rows"}, status=403)
        key = uuid7()
        with connection.cursor() as c:
            c.execute(f"INSERT INTO {TABLE} (id, site, body) VALUES (%s, %s, %s) RETURNING created_at",
                      [str(key), SITE, str(payload.get("body", ""))])
            created = c.fetchone()[0]
        return JsonResponse({"id": str(key), "site": SITE, "created_at": created.isoformat()}, status=201)
    if request.method == "GET":
        site = request.GET.get("site")
        limit = min(int(request.GET.get("limit", "100")), 10000)
        q = f"SELECT id, site, body, created_at FROM {TABLE}"
        args = []
        if site:
            q += " WHERE site = %s"
            args.append(site)
        q += " ORDER BY id DESC LIMIT %s"
        args.append(limit)
        with connection.cursor() as c:
            c.execute(q, args)
            out = [{"id": str(r[0]), "site": r[1], "body": r[2], "created_at": r[3].isoformat()} for r in c.fetchall()]
            c.execute(f"SELECT count(*) FROM {TABLE}" + (" WHERE site = %s" if site else ""), [site] if site else [])
            total = c.fetchone()[0]
        return JsonResponse({"site": SITE, "count": total, "rows": out})
    return JsonResponse({"error": "use GET or POST"}, status=405)


def routes(prefix):
    return [path(prefix + "health", health), path(prefix + "healthz", health), path(prefix + "ready", ready),
            path(prefix + "rows", rows)]


urlpatterns = routes("") + routes("api/")


class Server(WSGIServer):
    """A fixed pool of worker threads serves the accepted connections (one request
    each: wsgiref speaks HTTP/1.0). Each worker keeps its own database connection
    (Django's connections are per thread; CONN_MAX_AGE), so a request pays neither
    a thread start nor a PostgreSQL connection (its SCRAM exchange and backend start
    cost tens of milliseconds). When every worker is busy, connections wait in the
    listen backlog and the accept queue."""

    request_queue_size = 1024  # listen backlog: a burst waits here, not in SYN retries
    allow_reuse_address = True

    def __init__(self, addr, handler, threads):
        self.jobs = queue.Queue(maxsize=threads * 4)
        super().__init__(addr, handler)
        for i in range(threads):
            threading.Thread(target=self.work, name="worker-%d" % i, daemon=True).start()

    def server_bind(self):
        # HTTPServer.server_bind looks up the host's FQDN, a DNS query the lab (no
        # outside DNS) answers only after a long timeout.
        socketserver.TCPServer.server_bind(self)
        self.server_name = "localhost"
        self.server_port = self.server_address[1]
        self.setup_environ()

    def process_request(self, request, client_address):
        self.jobs.put((request, client_address))  # blocks the accept loop when full

    def work(self):
        while True:
            request, client_address = self.jobs.get()
            try:
                self.finish_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)


class Quiet(WSGIRequestHandler):
    disable_nagle_algorithm = True  # headers and body are two writes

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


def main():
    from django.core.wsgi import get_wsgi_application
    port = int(os.environ.get("PORT", "8000"))
    raw = os.environ.get("THREADS", "16")
    threads = int(raw) if raw.isdigit() else 0
    if threads < 1:
        sys.exit(f"sitectl lab django-api: THREADS is {raw!r}; want a whole number of worker threads ≥ 1, such as 16")
    httpd = Server(("0.0.0.0", port), Quiet, threads)
    httpd.set_app(get_wsgi_application())
    print(f"sitectl lab django-api for site {SITE or '(SITE_ID unset)'}: listening on :{port} ({threads} threads)", flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
