"""The load generator: a separate process so that its CPU is not charged to the server.

``python -m bench.loadgen`` reads one JSON command per line on stdin,
``{"urls": [...], "seconds": s}``, and answers one JSON line per command:
``{"post": [[latency_s, ...] per url], "get": [...], "price": [...], "errors": [n per url]}``.

One client, one request at a time. Each cycle sends ``POST /api/orders/`` and
then ``GET /api/orders/<the id just created>/`` (and, with ``"price": true``, the
product's cached price, ``GET /api/products/widget/price/``: Django's cache
``get_or_set``, a hit after the first) to every url in turn, starting
with a different url each cycle: the modes are interleaved request by request
(A B C A B C …), so a burst of load from another process on this shared
machine lands on all of them alike instead of on whichever mode ran then.
gunicorn's sync worker serves one request at a time and closes every
connection, so a closed-loop client measures the server's time per request
without queueing. Plain ``http.client`` keeps the client's own cost small.

``{"saturate": url, "connections": n, "seconds": s}`` instead keeps ``n`` connections
busy with ``POST /api/orders/`` against one url and answers ``{"done", "errors", "seconds"}``.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
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


PRICE_PATH = "/api/products/widget/price/"


def run(urls: list[str], seconds: float, price: bool = False) -> dict:
    targets = [(parts.hostname, parts.port) for parts in map(urllib.parse.urlsplit, urls)]
    post: list[list[float]] = [[] for _ in urls]
    get: list[list[float]] = [[] for _ in urls]
    prices: list[list[float]] = [[] for _ in urls]
    errors = [0] * len(urls)
    clock = time.perf_counter
    deadline = clock() + seconds
    cycle = 0
    while clock() < deadline:
        for step in range(len(urls)):
            index = (cycle + step) % len(urls)
            host, port = targets[index]
            t0 = clock()
            status, body = call(host, port, "POST", "/api/orders/", ORDER)
            t1 = clock()
            if status != 201:
                errors[index] += 1
                continue
            post[index].append(t1 - t0)
            order_id = json.loads(body)["id"]
            t0 = clock()
            status, _ = call(host, port, "GET", f"/api/orders/{order_id}/")
            t1 = clock()
            if status != 200:
                errors[index] += 1
                continue
            get[index].append(t1 - t0)
            if price:
                t0 = clock()
                status, _ = call(host, port, "GET", PRICE_PATH)
                t1 = clock()
                if status != 200:
                    errors[index] += 1
                    continue
                prices[index].append(t1 - t0)
        cycle += 1
    return {"post": post, "get": get, "price": prices, "errors": errors}


def saturate(url: str, connections: int, seconds: float) -> dict:
    """``connections`` clients, each sending ``POST /api/orders/`` back to back for ``seconds``:
    the server's throughput when it always has work queued. Threads, not processes: the
    client's cost is the same for every mode measured."""
    parts = urllib.parse.urlsplit(url)
    done, errors = [0] * connections, [0] * connections
    deadline = time.perf_counter() + seconds

    def client(index: int) -> None:
        while time.perf_counter() < deadline:
            try:
                status, _ = call(parts.hostname, parts.port, "POST", "/api/orders/", ORDER)
            except OSError:
                status = 0
            if status == 201:
                done[index] += 1
            else:
                errors[index] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(index,)) for index in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"done": sum(done), "errors": sum(errors), "seconds": time.perf_counter() - started}


def main() -> None:
    for line in sys.stdin:
        command = json.loads(line)
        if "saturate" in command:
            result = saturate(command["saturate"], command["connections"], command["seconds"])
        else:
            result = run(command["urls"], command["seconds"], command.get("price", False))
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
