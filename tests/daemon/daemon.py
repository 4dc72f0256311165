"""Starting and talking to a real visiond daemon on loopback, for tests.

Daemon(models_dir).start() runs `visiond serve --listen 127.0.0.1:0`,
reads the port it bound from its log, and waits until /readyz answers.
Nothing here imports visiond code: the tests see it over HTTP only. Every
/v2 answer passes through oip_contract.check (the OIP's OpenAPI document).
"""
import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time

import oip_contract
from visiond_test import BIN

DEVICE = os.environ.get("VISIOND_TEST_DEVICE", "cpu")


def sanitized_binary():
    """The binary is the AddressSanitizer build: its allocator keeps freed
    memory in quarantine and shadows what it maps, so resident sizes say
    nothing there."""
    return "ASAN_OPTIONS" in os.environ or BIN.endswith("-san/visiond")


class Daemon:
    def __init__(self, models_dir, extra_args=(), config=None, env=None, binary=None,
                 device=None):
        self.binary = binary or BIN
        self.device = device or DEVICE
        self.models_dir = models_dir
        self.env = env
        self.extra_args = list(extra_args)
        self.config = config
        self.proc = None
        self.port = None
        self.log_lines = []
        self._reader = None

    def start(self, timeout=60, expect_ready=True):
        # VISIOND_TEST_DEVICE runs the whole suite on another device (cuda on a GPU)
        args = [self.binary, "serve", "--listen", "127.0.0.1:0", "--models", self.models_dir,
                "--device", self.device, "--log-level", "debug", *self.extra_args]
        if self.config:
            args += ["--config", self.config]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=self.env)
        found = threading.Event()

        def read():
            for line in self.proc.stdout:
                self.log_lines.append(line.rstrip("\n"))
                m = re.search(r"listening on https?://[^ ]*:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    found.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        if not found.wait(timeout):
            self.stop()
            raise RuntimeError("daemon did not start:\n" + "\n".join(self.log_lines))
        if expect_ready:
            deadline = time.time() + timeout
            while time.time() < deadline:
                status, _, _ = self.request("GET", "/readyz")
                if status == 200:
                    return self
                time.sleep(0.05)
            raise RuntimeError("daemon never became ready:\n" + "\n".join(self.log_lines))
        return self

    def log(self):
        return "\n".join(self.log_lines)

    def request(self, method, path, body=None, headers=None, timeout=60):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            # every /v2 answer the suite sees is held to the OIP document
            oip_contract.check(method, path, resp.status, dict(resp.getheaders()), data)
            return resp.status, dict(resp.getheaders()), data
        finally:
            conn.close()

    def json(self, method, path, body=None, headers=None, timeout=60):
        status, hdrs, data = self.request(method, path, body, headers, timeout)
        return status, json.loads(data) if data else None

    def classify(self, model, image_bytes, content_type="image/png", top_k=5):
        return self.json("POST", f"/v1/models/{model}/classify?top_k={top_k}", image_bytes,
                         {"Content-Type": content_type})

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader:
            self._reader.join(5)
        return self.proc.returncode if self.proc else None


def multipart(files, boundary="visiondtestboundary"):
    """files: list of (field, filename, content_type, bytes) -> (body, headers)."""
    out = []
    for field, filename, ctype, data in files:
        out.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
                   f"filename=\"{filename}\"\r\nContent-Type: {ctype}\r\n\r\n".encode())
        out.append(data)
        out.append(b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), {"Content-Type": f"multipart/form-data; boundary={boundary}"}
