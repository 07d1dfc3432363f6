"""Probes a URL every 20 ms for a number of seconds (a light, steady load, unlike wrk) and
prints: requests, p50 and p99 latency in ms, and failures. Usage: probe.py URL SECONDS"""
import http.client
import sys
import time
import urllib.parse

url = urllib.parse.urlparse(sys.argv[1])
deadline = time.monotonic() + float(sys.argv[2])
latencies, failures = [], 0
while time.monotonic() < deadline:
    started = time.monotonic()
    try:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
        conn.request("GET", url.path)
        if conn.getresponse().status != 200:
            failures += 1
        conn.close()
    except OSError:
        failures += 1
    latencies.append((time.monotonic() - started) * 1000)
    time.sleep(max(0.0, 0.02 - (time.monotonic() - started)))
latencies.sort()
pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
print(f"{len(latencies)} {pick(0.50):.2f}ms {pick(0.99):.2f}ms {failures}")
