"""Dashboard benchmark: status API and status page latency under a steady 200 requests/s.

Run: .venv/bin/python benchmarks/bench_web.py [--rate 200] [--seconds 20] [--threads 4]
Provisions a sim home in a temp directory, adds a user, writes a status.json with 20 open positions, starts
`tbot web` (waitress, its own process) on 127.0.0.1, signs in, then a SEPARATE load process sends an open-loop
schedule of requests (half GET /api/status, half GET /status) at --rate for --seconds over keep-alive
connections. Latency is measured from each request's scheduled time to the end of its response, so a server
that falls behind is charged for the queueing (no coordinated omission). Prints p50/p99 per endpoint, errors,
achieved rate and the server's peak RSS. Target: p99 < 20 ms with the load generator on the same 2 cores.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
PATHS = ("/api/status", "/status")
USER, PASSWORD = "bench-admin", "bench-admin-password"


# ---------------------------------------------------------------- the load process


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_load(port: int, cookie: str, rate: float, seconds: float, connections: int) -> dict[str, object]:
    """Open-loop load: request i is due at start + i/rate; `connections` keep-alive workers take them in turn."""
    total = int(rate * seconds)
    start = time.perf_counter() + 0.2
    latencies: dict[str, list[float]] = {p: [] for p in PATHS}
    errors: dict[str, int] = {}
    lock = threading.Lock()
    counter = iter(range(total))

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            path = PATHS[i % len(PATHS)]
            try:
                conn.request("GET", path, headers={"Cookie": cookie})
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
                label = str(resp.status)
            except (OSError, http.client.HTTPException) as exc:
                ok, label = False, type(exc).__name__
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            done = time.perf_counter()
            with lock:
                if ok:
                    latencies[path].append((done - due) * 1000)
                else:
                    errors[label] = errors.get(label, 0) + 1
        conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return {
        "requests": total,
        "elapsed_s": round(elapsed, 2),
        "achieved_rate": round(total / elapsed, 1),
        "errors": errors,
        "endpoints": {
            p: {
                "n": len(v),
                "p50_ms": round(_percentile(v, 0.5), 2),
                "p99_ms": round(_percentile(v, 0.99), 2),
            }
            for p, v in latencies.items()
        },
        "all": {
            "p50_ms": round(_percentile([x for v in latencies.values() for x in v], 0.5), 2),
            "p99_ms": round(_percentile([x for v in latencies.values() for x in v], 0.99), 2),
        },
    }


# ---------------------------------------------------------------- set-up of the home and the server


def _status(now: datetime) -> dict[str, object]:
    positions = [
        {"symbol": f"SYM{i:02d}", "strategy": ("open", "mid", "close")[i % 3], "side": "long", "qty": str(10 + i),
         "entry_price": f"{100 + i}.10", "last_price": f"{100 + i}.35", "unrealized_pnl": f"{2.5 + i:.2f}"}
        for i in range(20)
    ]  # fmt: skip
    return {
        "state": "monitoring",
        "session_date": now.date().isoformat(),
        "active_strategy": "open",
        "windows": [
            {
                "strategy": s,
                "scheduled_start": "14:30",
                "scheduled_end": "15:30",
                "status": "running",
                "note": "",
            }
            for s in ("open", "mid", "close")
        ],
        "counts": {s: {"signaled": 4, "entered": 3, "exited": 1} for s in ("open", "mid", "close")},
        "positions": positions,
        "realized_pnl": "123.45",
        "realized_pnl_by_strategy": {"open": "100.00", "mid": "-10.55", "close": "34.00"},
        "trades_by_strategy": {"open": 3, "mid": 2, "close": 1},
        "broker": {"name": "SIM", "healthy": True, "last_error": None},
        "api": {"retries": 0, "errors": 0},
        "defense_mode": False,
        "kill_switch": {"tripped": False, "reason": None},
        "pending_confirmations": [],
        "version": "v1.0.0",
        "bot": {"bot_id": "TB01"},
        "updated_at": now.isoformat(),
    }


def prepare_home(root: Path) -> None:
    from tbot_bot.core.users import add_user
    from tbot_bot.support.path_resolver import BotHome
    from tbot_bot.support.provision import ProvisionRequest, provision

    home = BotHome(root)
    now = datetime.now(UTC)
    provision(
        home,
        ProvisionRequest(
            broker="sim", entity="RGL", jurisdiction="USA", account="main", bot_id="TB01", float_amount="2500"
        ),
        now=now,
    )
    add_user(home, USER, PASSWORD, "admin", created_by="bench")
    home.status_json.parent.mkdir(parents=True, exist_ok=True)
    home.status_json.write_text(json.dumps(_status(now)), encoding="utf-8")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the dashboard did not start on port {port}")


def sign_in(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/login")
    resp = conn.getresponse()
    html = resp.read().decode()
    cookie = resp.getheader("Set-Cookie", "").split(";")[0]
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    if not token:
        raise SystemExit("no CSRF token on /login")
    body = urlencode({"username": USER, "password": PASSWORD, "csrf_token": token.group(1)})
    headers = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
    conn.request("POST", "/login", body=body, headers=headers)
    resp = conn.getresponse()
    resp.read()
    if resp.status != 302:
        raise SystemExit(f"sign-in failed: HTTP {resp.status}")
    return resp.getheader("Set-Cookie", "").split(";")[0]


def _rss_sampler(pid: int, stop: threading.Event, peak: list[int]) -> None:
    import psutil

    proc = psutil.Process(pid)
    while not stop.is_set():
        try:
            peak[0] = max(peak[0], proc.memory_info().rss)
        except psutil.Error:
            return
        stop.wait(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second (default 200)")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of the load (default 20)")
    parser.add_argument("--threads", type=int, default=4, help="waitress threads (default 4)")
    parser.add_argument(
        "--connections", type=int, default=8, help="keep-alive client connections (default 8)"
    )
    parser.add_argument("--load-worker", nargs=2, metavar=("PORT", "COOKIE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load_worker:
        port, cookie = int(args.load_worker[0]), args.load_worker[1]
        print(json.dumps(run_load(port, cookie, args.rate, args.seconds, args.connections)))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        home = Path(tmp) / "home"
        prepare_home(home)
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "rigd_tbot", "web", "--home", str(home), "--port", str(port),
             "--threads", str(args.threads)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        stop, peak = threading.Event(), [0]
        try:
            _wait_for(port)
            cookie = sign_in(port)
            sampler = threading.Thread(target=_rss_sampler, args=(server.pid, stop, peak), daemon=True)
            sampler.start()
            load = subprocess.run(
                [sys.executable, __file__, "--rate", str(args.rate), "--seconds", str(args.seconds),
                 "--connections", str(args.connections), "--load-worker", str(port), cookie],
                capture_output=True, text=True, check=True, cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": "0"},
            )  # fmt: skip
            result = json.loads(load.stdout)
        finally:
            stop.set()
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
    print(
        f"dashboard under load: {args.rate:g} req/s for {args.seconds:g} s, waitress threads {args.threads}"
    )
    for path, figures in result["endpoints"].items():
        print(
            f"  {path:<12} n={figures['n']:>5}  p50 {figures['p50_ms']:6.2f} ms  p99 {figures['p99_ms']:6.2f} ms"
        )
    overall = result["all"]
    errors = sum(result["errors"].values())
    print(
        f"  all          p50 {overall['p50_ms']:.2f} ms  p99 {overall['p99_ms']:.2f} ms  (target p99 < 20 ms)"
    )
    print(f"  errors {errors} {result['errors'] or ''}  achieved {result['achieved_rate']} req/s")
    print(f"  server peak RSS {peak[0] / 2**20:.1f} MiB")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
