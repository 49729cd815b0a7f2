"""Shared helpers for the AER benchmarks (not a benchmark itself).

Everything here is deliberately plain: machine description, percentiles,
JSON output, starting/stopping the real log server, and generating signed
AER entries (multiprocessing, cached on disk so sweeps can reuse them).
"""

from __future__ import annotations

import copy
import hashlib
import http.client
import json
import math
import multiprocessing as mp
import os
import platform
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
CACHE = RESULTS / "cache"
VENV_BIN = Path(sys.executable).parent
AER = VENV_BIN / "aer"
EXAMPLE = ROOT / "predicates" / "agent-execution" / "examples" / "valid" / "full-run.json"

if str(ROOT) not in sys.path:  # allow running without an editable install
    sys.path.insert(0, str(ROOT))


# -- machine and output ------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """Describe the machine: CPU, RAM, Python, SQLite, pymerkle, current load."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    try:
        from importlib.metadata import version

        pymerkle_version = version("pymerkle")
    except Exception:
        pymerkle_version = None
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "pymerkle": pymerkle_version,
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def percentiles(values: Sequence[float], scale: float = 1.0) -> dict[str, Any]:
    """Nearest-rank percentiles (p50, p90, p99, max) and mean, multiplied by ``scale``."""
    if not values:
        return {"n": 0}
    s = sorted(values)
    n = len(s)

    def q(p: float) -> float:
        return s[max(0, math.ceil(p * n) - 1)] * scale

    return {
        "n": n,
        "min": s[0] * scale,
        "p50": q(0.50),
        "p90": q(0.90),
        "p99": q(0.99),
        "max": s[-1] * scale,
        "mean": sum(s) / n * scale,
    }


def rounded(obj: Any, digits: int = 4) -> Any:
    """Round floats in a nested structure for readable JSON."""
    if isinstance(obj, float):
        return round(obj, digits) if abs(obj) < 1e6 else round(obj, 1)
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [rounded(v, digits) for v in obj]
    return obj


def emit(name: str, result: dict[str, Any], out: str | None) -> None:
    """Print ``result`` as JSON on stdout and save it under bench/results/."""
    text = json.dumps(rounded(result), indent=2, sort_keys=False)
    print(text)
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    log(f"wrote {path}")


def log(msg: str) -> None:
    """Progress on stderr (stdout is reserved for the JSON result)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` or None."""
    if not a or not b:
        return None
    return a / b


# -- CPU accounting of a process tree -----------------------------------------


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
            out += [int(x) for x in text.split()]
    except OSError:
        pass
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (Linux /proc)."""
    pids = [pid]
    i = 0
    while i < len(pids):
        pids += _children(pids[i])
        i += 1
    return pids


def cpu_seconds(pids: Iterable[int]) -> float:
    """User+system CPU seconds consumed so far by ``pids`` (those still alive)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def thread_cpu(pid: int) -> dict[int, tuple[float, float]]:
    """Per-thread (user, system) CPU seconds of process ``pid``: {tid: (utime, stime)}."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[float, float]] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            f = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(tid)] = (int(f[11]) / tick, int(f[12]) / tick)
    return out


def thread_cpu_delta(pid: int, before: dict[int, tuple[float, float]], per: int) -> dict[str, Any]:
    """Summarize per-thread CPU used since ``before``, in ms per unit of work ``per``.

    The worker's main thread (tid == pid) is the server's (granian's) main loop; the
    busiest other thread that is not a request thread is usually the
    sequencer. Request threads are reported as a sum and a max.
    """
    after = thread_cpu(pid)
    per = max(per, 1)
    rows = []
    for tid, (u, s) in after.items():
        u0, s0 = before.get(tid, (0.0, 0.0))
        rows.append((tid, u - u0, s - s0))
    rows.sort(key=lambda r: -(r[1] + r[2]))
    main = [r for r in rows if r[0] == pid]
    others = [r for r in rows if r[0] != pid]
    return {
        "pid": pid,
        "threads": len(rows),
        "main_thread_ms_per_unit": {
            "user": (main[0][1] if main else 0) * 1000 / per,
            "sys": (main[0][2] if main else 0) * 1000 / per,
        },
        "busiest_other_threads_ms_per_unit": [
            {"user": u * 1000 / per, "sys": s * 1000 / per} for _, u, s in others[:3]
        ],
        "all_threads_ms_per_unit": {
            "user": sum(r[1] for r in rows) * 1000 / per,
            "sys": sum(r[2] for r in rows) * 1000 / per,
        },
    }


def granian_args(target: str, port: int, workers: int, threads: int, *extra: str) -> list[str]:
    """The granian command line the benches run ``target`` (in bench/) with: the options
    ``aer log serve`` uses (WSGI, HTTP/1, no websockets, backlog 2048) plus ``extra``."""
    return [
        str(VENV_BIN / "granian"), "--interface", "wsgi", *extra,
        "--working-dir", str(BENCH), "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--blocking-threads", str(threads),
        "--http", "1", "--no-ws", "--backlog", "2048", "--log-level", "warning", target,
    ]  # fmt: skip


@dataclass
class KeylessWorld:
    """A real ``aer log serve`` and the LOCAL STAND-IN Fulcio/OIDC, with trust files."""

    work: Path
    ls: Any
    """The :class:`attest.localsigstore.LocalSigstore`."""
    log_url: str
    fulcio_url: str
    trust_config: Path
    """``aer trust-root --client-trust-config`` output (signing)."""
    trusted_root: Path
    """``aer trust-root`` output (verification)."""


@contextmanager
def keyless_world(prefix: str) -> Iterator[KeylessWorld]:
    """Start the log and the stand-in in a fresh directory; stop both on exit."""
    from attest.localsigstore import LocalSigstore

    aer = str(VENV_BIN / "aer")
    work = tmpdir(prefix)
    ls = LocalSigstore.create(work / "sigstore")
    port = free_port()
    log_proc = subprocess.Popen(
        [aer, "log", "serve", "--data", str(work / "log"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log_url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if http_get("127.0.0.1", port, "/healthz", timeout=1)[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        with ls.serve() as fulcio:
            config, root = work / "trust-config.json", work / "trusted-root.json"
            common = [aer, "trust-root", "--log", log_url,
                      "--fulcio-ca", str(ls.directory / "ca-chain.pem"),
                      "--ctlog-key", str(ls.directory / "ctlog.pub")]  # fmt: skip
            subprocess.run([*common, "--fulcio-url", fulcio.url, "--out", str(config),
                            "--client-trust-config"], check=True, capture_output=True)  # fmt: skip
            subprocess.run([*common, "--out", str(root)], check=True, capture_output=True)
            yield KeylessWorld(work, ls, log_url, fulcio.url, config, root)
    finally:
        log_proc.terminate()
        log_proc.wait(timeout=20)


# -- the real log server --------------------------------------------------------


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``aer log serve`` as a subprocess on 127.0.0.1; a context manager."""

    def __init__(
        self,
        data_dir: Path,
        *,
        workers: int = 1,
        threads: int = 16,
        synchronous: str = "FULL",
        max_batch: int | None = None,
        port: int | None = None,
        app_config: dict[str, Any] | None = None,
        pragmas: dict[str, Any] | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        """``app_config`` / ``pragmas`` (what-if runs only): extra create_app settings
        the CLI does not expose (e.g. ``{"MAX_WAIT": 0.002}``) and SQLite PRAGMAs
        for every connection (e.g. ``{"mmap_size": 268435456}``); the server is
        then started as ``granian --factory _whatif_app:from_env`` (the real
        create_app, bench/_whatif_app.py; the settings in ``$AER_WHATIF``) with the
        options serve() uses."""
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.app_config = app_config
        self.whatif = bool(app_config or pragmas)
        self.args = [
            str(AER),
            "log",
            "serve",
            "--data",
            str(self.data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--synchronous",
            synchronous,
        ]
        if max_batch is not None:
            self.args += ["--max-batch", str(max_batch)]
        self.args += list(extra_args)
        if self.whatif:
            cfg = {
                "DATA_DIR": str(self.data_dir),
                "ORIGIN": "bench.example",
                "SYNCHRONOUS": synchronous,
                **({"MAX_BATCH": max_batch} if max_batch else {}),
                **(app_config or {}),
            }
            self.whatif_env = json.dumps({"config": cfg, "pragmas": pragmas or {}})
            self.args = granian_args(
                "_whatif_app:from_env", self.port, workers, threads, "--factory",
                "--workers-kill-timeout", "40",
            )  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_dir = tmpdir("server-log")
        self.log_path = self.log_dir / "server.log"

    def start(self, timeout: float = 60.0) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.whatif:  # initialise once, as serve() does, before workers race
            from log_server.logkey import load_or_create
            from log_server.storage.sqlite import SQLiteStorage

            load_or_create(self.data_dir, "bench.example", "bench.example")
            SQLiteStorage(self.data_dir / "log.db").close()
        self._logf = open(self.log_path, "wb")  # noqa: SIM115
        env = dict(os.environ)
        # This checkout's code, not whatever an editable install points at.
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
        if self.whatif:
            env["AER_WHATIF"] = self.whatif_env
        self.proc = subprocess.Popen(
            self.args, stdout=self._logf, stderr=subprocess.STDOUT, env=env
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                status, _ = http_get("127.0.0.1", self.port, "/healthz", timeout=2)
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer /healthz in {timeout}s")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._logf.close()
        ok = self.proc.returncode in (0, -signal.SIGTERM)
        self.proc = None
        if ok:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def http_get(host: str, port: int, path: str, timeout: float = 30) -> tuple[int, bytes]:
    """One GET on a fresh connection."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def tmpdir(prefix: str, base: str | None = None) -> Path:
    """A fresh temporary directory (under ``base`` if given)."""
    return Path(tempfile.mkdtemp(prefix=f"aer-bench-{prefix}-", dir=base))


# -- signed AER entries -----------------------------------------------------------


def _gen_worker(args: tuple[int, int, int]) -> list[bytes]:
    """Sign ``count`` distinct AER statements; return the JSON proposed entries."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from attest.signing import KeySigner
    from attest.submit import proposed_dsse_entry
    from verifier.keys import format_public_key

    _worker, start, count = args
    key = ec.generate_private_key(ec.SECP256R1())
    signer = KeySigner(key)
    pem = format_public_key(key.public_key())
    base = json.loads(EXAMPLE.read_bytes())
    out: list[bytes] = []
    for i in range(count):
        st = copy.deepcopy(base)
        pred = st["predicate"]
        pred["runId"] = str(uuid.uuid4())
        pred["task"]["id"] = f"BENCH-{start + i}"
        st["subject"][0]["digest"]["sha256"] = os.urandom(32).hex()
        payload = json.dumps(st, separators=(",", ":")).encode()
        bundle = signer.sign(payload)
        proposed, _ = proposed_dsse_entry(bundle, pem)
        out.append(json.dumps(proposed, separators=(",", ":")).encode())
    return out


def _write_blobs(path: Path, blobs: Sequence[bytes]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack(">Q", len(blobs)))
        for b in blobs:
            f.write(struct.pack(">I", len(b)))
            f.write(b)
    tmp.replace(path)


def _read_blobs(path: Path, limit: int) -> list[bytes]:
    out: list[bytes] = []
    with open(path, "rb") as f:
        (count,) = struct.unpack(">Q", f.read(8))
        for _ in range(min(count, limit)):
            (n,) = struct.unpack(">I", f.read(4))
            out.append(f.read(n))
    return out


def _blob_count(path: Path) -> int:
    with open(path, "rb") as f:
        return int(struct.unpack(">Q", f.read(8))[0])


def signed_entries(n: int, procs: int | None = None, use_cache: bool = True) -> list[bytes]:
    """``n`` distinct signed ``dsse`` proposed entries (request bodies), AER statements.

    Signed with :class:`attest.signing.KeySigner` (one P-256 key per generator
    process) in a multiprocessing pool. Cached under bench/results/cache/; a
    cache with at least ``n`` entries is reused (first ``n`` taken).
    """
    CACHE.mkdir(parents=True, exist_ok=True)
    if use_cache:
        for p in sorted(CACHE.glob("signed-*.bin"), key=lambda p: int(p.stem.split("-")[1])):
            if int(p.stem.split("-")[1]) >= n and _blob_count(p) >= n:
                log(f"reusing {n} signed entries from {p}")
                return _read_blobs(p, n)
    procs = procs or os.cpu_count() or 1
    chunk = 250
    jobs = [(i, start, min(chunk, n - start)) for i, start in enumerate(range(0, n, chunk))]
    log(f"signing {n} AER statements with {procs} processes ...")
    t0 = time.perf_counter()
    out: list[bytes] = []
    with mp.get_context("fork").Pool(procs) as pool:
        for part in pool.imap(_gen_worker, jobs):
            out += part
    log(f"signed {n} entries in {time.perf_counter() - t0:.1f}s")
    if use_cache:
        _write_blobs(CACHE / f"signed-{n}.bin", out)
    return out


def _prepare_worker(raw: bytes) -> Any:
    from log_server.entries import prepare_entry

    return prepare_entry(json.loads(raw))


def prepared_entries(raw: Sequence[bytes], procs: int | None = None) -> list[Any]:
    """Run the server's own ``prepare_entry`` (verification, canonical body) on ``raw``.

    Not timed by callers: it yields the exact PreparedEntry objects (body,
    leaf hash, envelope, index keys, statement) the HTTP path would sequence.
    """
    procs = procs or os.cpu_count() or 1
    with mp.get_context("fork").Pool(procs) as pool:
        return list(pool.imap(_prepare_worker, raw, chunksize=256))


def synthetic_bodies(n: int, start: int = 0) -> list[bytes]:
    """Bodies ``start .. start+n-1``: small (~100 B), distinct, deterministic.

    Shaped like a Rekor body; body ``i`` is always the same bytes, so two
    trees built from the same range have the same root.
    """
    return [
        b'{"apiVersion":"0.0.1","kind":"dsse","spec":{"n":%d,"h":"%s"}}'
        % (i, hashlib.sha256(b"%d" % i).hexdigest()[:32].encode())
        for i in range(start, start + n)
    ]


def dir_bytes(path: Path) -> int:
    """Total size of the regular files under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
