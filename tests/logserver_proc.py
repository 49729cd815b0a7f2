"""Start the real log server (``aer log serve``) as a process on loopback, for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.conftest import AER


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LogProcess:
    proc: subprocess.Popen[bytes]
    url: str
    data: Path
    log_file: Path

    def kill9(self) -> None:
        """SIGKILL the whole server (gunicorn master and workers)."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def start_log(data: Path, port: int | None = None, *extra: str) -> LogProcess:
    port = port or free_port()
    log_file = data.parent / f"server-{port}-{time.monotonic_ns()}.log"
    out = log_file.open("wb")
    proc = subprocess.Popen(
        [str(AER), "log", "serve", "--data", str(data), "--port", str(port), *extra],
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"log server exited: {log_file.read_text()}")
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                return LogProcess(proc, url, data, log_file)
        except requests.RequestException:
            pass
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError(f"log server did not start: {log_file.read_text()}")


@contextmanager
def running_log(data: Path, *extra: str) -> Iterator[LogProcess]:
    lp = start_log(data, None, *extra)
    try:
        yield lp
    finally:
        lp.stop()


@dataclass
class WitnessProcess:
    proc: subprocess.Popen[bytes]
    url: str
    vkey: str

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def witness_vkey(data: Path, name: str) -> str:
    """Create (on first use) the witness in ``data`` and return its cosigner key."""
    out = subprocess.run(
        [str(AER), "witness", "vkey", "--data", str(data), "--name", name],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def start_witness(data: Path, name: str, log_vkey: str, port: int | None = None) -> WitnessProcess:
    """Start ``aer witness serve`` for one log on loopback; wait until it answers."""
    vkey = witness_vkey(data, name)
    port = port or free_port()
    argv = [str(AER), "witness", "serve", "--port", str(port), "--data", str(data)]
    argv += ["--log-vkey", log_vkey, "--name", name]
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"witness exited with {proc.returncode}")
        try:
            requests.post(url + "/add-checkpoint", data=b"", timeout=1)
            return WitnessProcess(proc, url, vkey)
        except requests.RequestException:
            time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError("witness did not start")
