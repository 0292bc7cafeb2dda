"""The registry as production runs it: ``uvicorn --workers N`` in multiprocess metrics
mode, on the test database and Redis, in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from django.conf import settings

from tests.waiting import WAIT_SECONDS, bound_socket, wait_until

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    db = settings.DATABASES["default"]
    return (
        f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )


class RegistryServer:
    def __init__(self, *, workers: int, metrics_dir: Path, log: Path) -> None:
        # The process inherits the bound socket: no port another test could take meanwhile.
        sock = bound_socket()
        self.port: int = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.metrics_dir = metrics_dir
        self.log = log
        self.log_file = log.open("wb")
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "RUNTIME_ALLOW_PRIVATE_NETWORKS": "true",
            "LOG_LEVEL": "WARNING",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "agent_registry.asgi:application",
                "--fd",
                str(sock.fileno()),
                "--workers",
                str(workers),
                "--log-level",
                "info",  # each worker says when its startup is complete
                "--no-access-log",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log_file,
            pass_fds=[sock.fileno()],
            start_new_session=True,  # its workers are stopped with it
        )
        sock.close()  # the process's copy alone: the port closes when it dies
        try:
            wait_until(
                lambda: self._workers_serving(workers),
                what=f"the registry's {workers} workers to start",
                not_yet=(httpx.HTTPError,),
                # Each worker sets up Django on its own: on a machine eight suites share,
                # two of them starting at once have taken over a minute.
                timeout=3 * WAIT_SECONDS,
            )
        except BaseException:
            self.stop()
            print(self.log.read_text(errors="replace")[-3000:])  # shown with the failure
            raise

    def worker_pids(self) -> list[int]:
        """The supervisor's worker processes (each of its threads may have started some;
        multiprocessing's resource tracker is a child too, and no worker)."""
        pids = []
        for children in Path(f"/proc/{self.process.pid}/task").glob("*/children"):
            try:
                for pid in children.read_text().split():
                    if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        pids.append(int(pid))
            except OSError:  # the thread or the child ended meanwhile
                continue
        return sorted(pids)

    def _workers_serving(self, workers: int) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"the registry exited ({self.process.returncode})")
        started = self.log.read_text(errors="replace").count("Application startup complete")
        return (
            started == workers
            and len(self.worker_pids()) == workers
            and httpx.get(f"{self.url}/health/ready", timeout=WAIT_SECONDS).is_success
        )

    def scrape(self) -> str:
        # A new connection each time: any worker may answer.
        response = httpx.get(
            f"{self.url}/metrics", headers={"Connection": "close"}, timeout=WAIT_SECONDS
        )
        response.raise_for_status()
        return response.text

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log_file.close()
