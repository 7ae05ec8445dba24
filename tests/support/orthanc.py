"""A real Orthanc PACS (Debian package) on free loopback ports, for tests and benchmarks.

with orthanc_server(tmp_path) as pacs:
    pacs.dicomweb_url  # http://127.0.0.1:PORT/dicom-web
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support.net import free_port, wait_for_port

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
PLUGIN_DIR = Path("/usr/share/orthanc/plugins")


@dataclass
class OrthancServer:
    http_port: int
    dicom_port: int
    aet: str
    username: str
    password: str
    process: subprocess.Popen
    workdir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def auth(self) -> tuple[str, str]:
        return (self.username, self.password)


@contextlib.contextmanager
def orthanc_server(
    workdir: Path,
    *,
    aet: str = "ORTHANC",
    worklists_dir: Path | None = None,
    dicom_modalities: dict | None = None,
    extra_config: dict | None = None,
):
    workdir = Path(workdir)
    storage = workdir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = free_port(), free_port()
    plugins = [str(PLUGIN_DIR / "libOrthancDicomWeb.so")]
    config: dict = {
        "Name": "dicomsvc-test-orthanc",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": aet,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {"dicomsvc": "orthanc-test-password"},
        "DicomCheckCalledAet": False,
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowFind": True,
        "DicomModalities": dicom_modalities or {},
        "HttpThreadsCount": 8,
        "StableAge": 1,
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True, "StudiesMetadata": "Full"},
        "Plugins": plugins,
    }
    if worklists_dir is not None:
        plugins.append(str(PLUGIN_DIR / "libModalityWorklists.so"))
        config["Worklists"] = {"Enable": True, "Database": str(worklists_dir)}
    config.update(extra_config or {})
    config_path = workdir / "orthanc.json"
    config_path.write_text(json.dumps(config))
    log = (workdir / "orthanc.log").open("w")
    process = subprocess.Popen([ORTHANC, str(config_path)], stdout=log, stderr=subprocess.STDOUT)
    server = OrthancServer(http_port, dicom_port, aet, "dicomsvc", "orthanc-test-password", process, workdir)
    try:
        wait_for_port(http_port, timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{server.url}/system", auth=server.auth, timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("Orthanc did not answer /system; see " + str(workdir / "orthanc.log"))
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
