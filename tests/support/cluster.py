"""Several dicomsvc nodes on one machine, sharing one Postgres, one Redis and one S3 (the scale-out
test and ``bench/scale.py``).

Each node is what one machine of a deployment runs, started directly (no ``scripts/run.sh``): a
gunicorn, a Celery worker and a DIMSE listener (``manage.py run_dimse``), with its own
``DICOMSVC_VAR_DIR`` and ports. What the nodes share comes from the environment: ``DATABASE_URL``,
the broker and its queue, the ``dicom`` storage (S3) and ``SECRET_KEY``. Exactly one node runs
Celery beat (the callbacks sweeper), as a process of its own: two beats would each schedule every sweep.

    with Cluster(database_url=..., broker_url=..., storage_env=s3.env(options), workdir=tmp) as cluster:
        a, b = cluster.nodes
        requests.post(f"{a.url}/exams", ...)
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.callbacks.harness import PYTHON, ROOT, Proc, service_env, start_gunicorn, start_worker
from tests.support.net import free_port, wait_for_port

AE_TITLE = "DICOMSVC"
# Calling AE titles the nodes' listeners accept (the tests' and the bench's SCUs).
CALLING_AES = "STORESCU,PYSCU,ECHOSCU,FINDSCU"


@dataclass
class Node:
    name: str
    var_dir: Path
    env: dict[str, str]
    url: str = ""
    dimse_port: int = 0
    procs: dict[str, Proc] = field(default_factory=dict)  # "web", "worker", "beat", "dimse" -> process

    def pids(self) -> dict[str, list[int]]:
        """Process ids per role, the children too (gunicorn's workers, Celery's pool)."""
        found = {}
        for role, proc in self.procs.items():
            if proc.popen is None or proc.popen.poll() is not None:
                continue
            try:
                parent = psutil.Process(proc.popen.pid)
                found[role] = [parent.pid, *(child.pid for child in parent.children(recursive=True))]
            except psutil.NoSuchProcess:
                continue
        return found

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop()


class Cluster:
    """``nodes`` nodes; ``web_workers`` x ``web_threads`` gunicorn per node; ``worker`` and
    ``dimse`` say whether each node also runs a Celery worker and a DIMSE listener."""

    def __init__(
        self,
        *,
        database_url: str,
        broker_url: str,
        storage_env: dict[str, str],
        workdir: Path,
        nodes: int = 2,
        web_workers: int = 2,
        web_threads: int = 4,
        worker: bool = True,
        worker_concurrency: int = 4,
        dimse: bool = True,
        extra_env: dict[str, str] | None = None,
        queue: str | None = None,
    ):
        self.workdir = Path(workdir)
        self.queue = queue or f"dicomsvc-cluster-{uuid.uuid4().hex[:12]}"
        self.shared_env = service_env(
            database_url=database_url,
            broker_url=broker_url,
            queue=self.queue,
            extra={
                **storage_env,
                # Must be the same on every node (sessions, viewer tokens); see README "Deployment".
                "SECRET_KEY": secrets.token_urlsafe(50),
                "DIMSE_AE_TITLE": AE_TITLE,
                "DIMSE_ALLOWED_AES": CALLING_AES,
                "DIMSE_BIND_ADDRESS": "127.0.0.1",
                **(extra_env or {}),
            },
        )
        self.count = nodes
        self.web_workers, self.web_threads = web_workers, web_threads
        self.worker, self.worker_concurrency, self.dimse = worker, worker_concurrency, dimse
        self.nodes: list[Node] = []

    def node_env(self, index: int) -> dict[str, str]:
        var_dir = self.workdir / f"node{index}" / "var"
        var_dir.mkdir(parents=True, exist_ok=True)
        return {**self.shared_env, "DICOMSVC_VAR_DIR": str(var_dir)}

    def __enter__(self) -> Cluster:
        try:
            for index in range(self.count):
                self.nodes.append(self._start_node(index))
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _start_node(self, index: int) -> Node:
        env = self.node_env(index)
        node = Node(name=f"node{index}", var_dir=Path(env["DICOMSVC_VAR_DIR"]), env=env)
        try:
            node.procs["web"], node.url = start_gunicorn(
                env, workers=self.web_workers, threads=self.web_threads
            )
            if self.worker:
                node.procs["worker"] = start_worker(
                    env, concurrency=self.worker_concurrency, beat=False, name=node.name
                )
                if index == 0:  # one beat in the whole deployment, a process of its own
                    node.procs["beat"] = Proc(
                        [PYTHON, "-m", "celery", "-A", "dicomsvc", "beat", "-l", "INFO"],
                        env,
                        node.var_dir / "beat.log",
                    ).start()
                    node.procs["beat"].wait_for_output("beat: Starting", timeout=60)
            if self.dimse:
                node.dimse_port = free_port()
                node.procs["dimse"] = Proc(
                    [
                        PYTHON,
                        str(ROOT / "manage.py"),
                        "run_dimse",
                        "--port",
                        str(node.dimse_port),
                        "--grace",
                        "2",
                    ],
                    env,
                    node.var_dir / "dimse.log",
                ).start()
                wait_for_port(node.dimse_port, timeout=60)
        except BaseException:
            node.stop()
            raise
        return node

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        self.nodes = []

    def pids(self) -> dict[str, list[int]]:
        """Process ids per "<node> <role>" of every running process."""
        return {f"{node.name} {role}": pids for node in self.nodes for role, pids in node.pids().items()}
