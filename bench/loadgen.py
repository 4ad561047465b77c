"""The load generator: a separate process so that its CPU is not charged to the server.

``python -m bench.loadgen`` reads one JSON command per line on stdin,
``{"url": ..., "seconds": ...}``, and answers one JSON line per command:
``{"elapsed": s, "post": [latency_s, ...], "get": [...], "errors": n}``.

One client, one request at a time, alternating ``POST /api/orders/`` and
``GET /api/orders/<the id just created>/``: gunicorn's sync worker serves one
request at a time and closes every connection, so a single closed-loop client
measures the server's time per request without queueing. Plain ``http.client``
keeps the client's own cost small and equal for every mode.
"""

from __future__ import annotations

import http.client
import json
import sys
import time
import urllib.parse

ORDER = json.dumps({"sku": "widget", "quantity": 1}).encode()
POST_HEADERS = {"Content-Type": "application/json", "Content-Length": str(len(ORDER))}


def call(host: str, port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=POST_HEADERS if body else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def run(url: str, seconds: float) -> dict:
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname, parts.port
    post: list[float] = []
    get: list[float] = []
    errors = 0
    clock = time.perf_counter
    started = clock()
    deadline = started + seconds
    while clock() < deadline:
        t0 = clock()
        status, body = call(host, port, "POST", "/api/orders/", ORDER)
        t1 = clock()
        if status != 201:
            errors += 1
            continue
        post.append(t1 - t0)
        order_id = json.loads(body)["id"]
        t0 = clock()
        status, _ = call(host, port, "GET", f"/api/orders/{order_id}/")
        t1 = clock()
        if status != 200:
            errors += 1
            continue
        get.append(t1 - t0)
    return {"elapsed": clock() - started, "post": post, "get": get, "errors": errors}


def main() -> None:
    for line in sys.stdin:
        command = json.loads(line)
        print(json.dumps(run(command["url"], command["seconds"])), flush=True)


if __name__ == "__main__":
    main()
