#!/usr/bin/python3
"""sitectl's Barman exporter (stacks/backup, docs/backup.md "Metrics and alerts").

Every INTERVAL seconds it asks Barman, per backed-up site, `barman -f json
list-backups`, `replication-status` and `check`, and keeps the answer as Prometheus
metrics, which it serves on 0.0.0.0:PORT/metrics for the hub's Prometheus (scraped
through the tunnels like every exporter). `--once` prints one collection on stdout
and exits (tests; a textfile for node-exporter's textfile collector).

Environment: BARMAN_TARGETS lists "site=host:port:user" words (the entrypoint's),
or the sites are given as arguments; BARMAN_CONFIG is barman.conf (Barman's default
when unset); BARMAN_EXPORTER_PORT (9781) and BARMAN_EXPORTER_INTERVAL (30).
Standard library only: the image has Barman's own python3 and nothing else.
"""
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HELP = [
    ("sitectl_backup_up", "1 when the site's Barman answered list-backups with JSON, else 0 (the other series of the site are then absent)."),
    ("sitectl_backup_base_backups", "Completed (DONE) base backups of the site in Barman's catalogue."),
    ("sitectl_backup_last_base_backup_timestamp_seconds", "End of the newest completed base backup (Unix time)."),
    ("sitectl_backup_last_base_backup_age_seconds", "Seconds from the end of the newest completed base backup to the collection."),
    ("sitectl_backup_last_base_backup_size_bytes", "Size of the newest completed base backup with its WAL (Barman's size_bytes)."),
    ("sitectl_backup_wal_streaming", "1 when Barman's pg_receivewal streams from the site's slot (current_state streaming), else 0."),
    ("sitectl_backup_wal_lag_bytes", "WAL the site has written that Barman has not written yet (its streamer's write lag); absent when not streaming."),
    ("sitectl_backup_slot_ok", "1 when barman check finds the site's replication slot healthy, else 0 (missing, or lost WAL past max_slot_wal_keep_size)."),
    ("sitectl_backup_collect_timestamp_seconds", "When this collection was made (Unix time)."),
    ("sitectl_backup_collect_duration_seconds", "How long the barman commands of this collection took."),
]


def slot_name(site):
    """The site's physical slot, as sites.Backup.SlotName names it."""
    return "barman_" + site.replace("-", "_")


def barman(site, *args):
    """`barman -f json ARGS SITE`, decoded, the site's value; None when it fails
    without JSON (`barman check` exits 1 on a failed check and still prints it)."""
    cmd = ["barman"]
    if os.environ.get("BARMAN_CONFIG"):
        cmd += ["-c", os.environ["BARMAN_CONFIG"]]
    cmd += ["-f", "json", *args, site]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        return json.loads(p.stdout)[site]
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError, TypeError) as e:
        print("barman-exporter: %s: %s" % (" ".join(cmd), e), file=sys.stderr)
        return None


def site_samples(site, now):
    """The samples of one site: (metric, value) pairs."""
    backups = barman(site, "list-backups")
    if not isinstance(backups, list):
        return [("sitectl_backup_up", 0)]
    out = [("sitectl_backup_up", 1)]
    done = [b for b in backups if b.get("status") == "DONE"]
    out.append(("sitectl_backup_base_backups", len(done)))
    if done:
        last = max(done, key=lambda b: int(b["end_time_timestamp"]))
        end = int(last["end_time_timestamp"])
        out += [("sitectl_backup_last_base_backup_timestamp_seconds", end),
                ("sitectl_backup_last_base_backup_age_seconds", max(0, int(now) - end)),
                ("sitectl_backup_last_base_backup_size_bytes", int(last.get("size_bytes", 0)))]
    rs = barman(site, "replication-status") or {}
    streaming, lag = 0, None
    for c in rs.get("streaming_clients") or []:
        if c.get("replication_slot") == slot_name(site) and c.get("current_state") == "streaming":
            streaming, lag = 1, max(0, -int(c.get("write_lsn_diff_bytes") or 0))
    out.append(("sitectl_backup_wal_streaming", streaming))
    if lag is not None:
        out.append(("sitectl_backup_wal_lag_bytes", lag))
    checks = barman(site, "check") or {}
    out.append(("sitectl_backup_slot_ok", 1 if checks.get("replication_slot", {}).get("status") == "OK" else 0))
    return out


def collect(sites, now=None):
    """One collection of every site, in Prometheus' text exposition format."""
    start = time.time()
    now = start if now is None else now
    samples = {}
    for site in sites:
        for name, value in site_samples(site, now):
            samples.setdefault(name, []).append((site, value))
    lines = []
    for name, text in HELP:
        if name.startswith("sitectl_backup_collect_"):
            continue
        if name not in samples:
            continue
        lines += ["# HELP %s %s" % (name, text), "# TYPE %s gauge" % name]
        lines += ['%s{site="%s"} %s' % (name, site, value) for site, value in samples[name]]
    for name, value in (("sitectl_backup_collect_timestamp_seconds", int(now)),
                        ("sitectl_backup_collect_duration_seconds", round(time.time() - start, 3))):
        lines += ["# HELP %s %s" % (name, dict(HELP)[name]), "# TYPE %s gauge" % name, "%s %s" % (name, value)]
    return "\n".join(lines) + "\n"


def targets(argv):
    """The sites: arguments, else the site of each BARMAN_TARGETS word."""
    if argv:
        return argv
    return [w.split("=", 1)[0] for w in os.environ.get("BARMAN_TARGETS", "").split()]


def serve(sites):
    port = int(os.environ.get("BARMAN_EXPORTER_PORT", "9781"))
    interval = float(os.environ.get("BARMAN_EXPORTER_INTERVAL", "30"))
    state = {"text": collect(sites)}

    def loop():
        while True:
            time.sleep(interval)
            state["text"] = collect(sites)

    threading.Thread(target=loop, daemon=True).start()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics")
                return
            body = state["text"].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()


def main(argv):
    once = "--once" in argv
    sites = targets([a for a in argv if a != "--once"])
    if not sites:
        print("barman-exporter: no site: set BARMAN_TARGETS or give the sites as arguments", file=sys.stderr)
        return 2
    if once:
        sys.stdout.write(collect(sites))
        return 0
    serve(sites)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
