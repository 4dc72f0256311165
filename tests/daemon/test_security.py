"""Who may connect: API keys (a file or an environment variable; Bearer
or X-API-Key; 401 with WWW-Authenticate and nothing else; admin keys for
the model repository; never in logs or metrics), HTTPS through
libmicrohttpd's own TLS (a real TLS client, TLS 1.2 and later only, plain
HTTP to the TLS port refused cleanly), and the safe defaults (a listener
beyond loopback without TLS and keys says it is insecure; require_auth
refuses to start that way). The certificate is made here with openssl,
never committed."""
import http.client
import json
import os
import socket
import ssl
import subprocess
import time

import pytest

from daemon import Daemon
from visiond_test import BIN, ROOT

USER = "user-key-0123456789abcdef"
ADMIN = "admin-key-fedcba9876543210"
MNIST = os.path.join(ROOT, "models", "mnist")
DIGIT = open(os.path.join(MNIST, "sample-7.png"), "rb").read()


def config(tmp_path, name="visiond.json", **keys):
    path = tmp_path / name
    path.write_text(json.dumps(keys))
    return str(path)


@pytest.fixture
def keyed(tmp_path, repo_dir):
    keys = tmp_path / "keys"
    keys.write_text(f"# who may call\n{USER}\n  {ADMIN} admin\n\n")
    d = Daemon(repo_dir, config=config(tmp_path, api_keys=str(keys))).start()
    yield d
    assert d.stop() == 0


def call(d, method, path, key=None, how="bearer", body=None, headers=None):
    h = dict(headers or {})
    if key and how == "bearer":
        h["Authorization"] = f"Bearer {key}"
    elif key:
        h["X-API-Key"] = key
    return d.request(method, path, body, h)


def test_no_key_learns_nothing(keyed):
    for method, path in (("GET", "/v1/models"), ("GET", "/metrics"), ("GET", "/no/such/path"),
                         ("POST", "/v1/models/mnist/classify"), ("GET", "/v2"),
                         ("POST", "/v2/repository/index")):
        status, hdrs, body = call(keyed, method, path, body=DIGIT if method == "POST" else None)
        assert status == 401, (path, status)
        assert hdrs.get("WWW-Authenticate") == 'Bearer realm="visiond"'
        assert json.loads(body) == {"error": "unauthorized"}
    # a key one character off, or longer, or shorter, is no key
    for wrong in (USER[:-1] + "x", USER + "x", USER[:-1], "", "x" * 300):
        assert call(keyed, "GET", "/v1/models", wrong)[0] == 401, wrong
    assert call(keyed, "GET", "/v1/models", "bearer " + USER, how="raw-header")[0] == 401


def test_keys_open_the_api(keyed):
    for how in ("bearer", "x-api-key"):
        status, _, body = call(keyed, "POST", "/v1/models/mnist/classify", USER, how, DIGIT,
                               {"Content-Type": "image/png"})
        assert status == 200, body
        assert json.loads(body)["results"][0]["predictions"][0]["label"] == "7"
    lower = keyed.request("GET", "/v1/models", headers={"Authorization": f"bearer {USER}"})
    assert lower[0] == 200
    # the probes need no key
    for path in ("/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"):
        assert keyed.request("GET", path)[0] == 200, path
    assert call(keyed, "GET", "/metrics", USER)[0] == 200


def test_admin_keys_guard_the_repository(keyed):
    status, _, body = call(keyed, "POST", "/v2/repository/index", USER)
    assert status == 403 and "admin" in json.loads(body)["error"]
    status, _, body = call(keyed, "POST", "/v2/repository/index", ADMIN)
    assert status == 200 and any(row["name"] == "mnist" for row in json.loads(body))
    # an admin key is a key everywhere
    assert call(keyed, "GET", "/v1/models", ADMIN)[0] == 200


def test_keys_never_appear_in_logs_or_metrics(keyed):
    call(keyed, "GET", "/v1/models", USER[:-1] + "z")
    call(keyed, "GET", "/v1/models", USER)
    call(keyed, "POST", "/v2/repository/index", USER)
    metrics = call(keyed, "GET", "/metrics", ADMIN)[2].decode()
    keyed.stop()
    for secret in (USER, ADMIN, USER[:-1] + "z", USER[4:20], ADMIN[6:22]):
        assert secret not in keyed.log() and secret not in metrics, secret
    assert "API keys: 2 (1 admin)" in keyed.log()


def test_metrics_public_and_keys_from_the_environment(tmp_path, repo_dir):
    env = dict(os.environ, VISIOND_TEST_KEYS=f"{USER},{ADMIN} admin")
    d = Daemon(repo_dir, env=env, config=config(tmp_path, api_keys="env:VISIOND_TEST_KEYS",
                                                metrics_public=True)).start()
    try:
        assert d.request("GET", "/metrics")[0] == 200
        assert d.request("GET", "/v1/models")[0] == 401
        assert call(d, "POST", "/v2/repository/index", ADMIN)[0] == 200
    finally:
        assert d.stop() == 0


@pytest.mark.parametrize("keys,words", [("short-key\n", "16 to 255"),
                                        (f"{USER} root\n", "admin"),
                                        ("# nothing\n", "holds no key")])
def test_bad_key_files_stop_the_start(tmp_path, repo_dir, keys, words):
    path = tmp_path / "keys"
    path.write_text(keys)
    r = subprocess.run([BIN, "serve", "--listen", "127.0.0.1:0", "--models", repo_dir,
                        "--config", config(tmp_path, api_keys=str(path))],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and words in r.stderr, r.stderr
    assert "short-key" not in r.stderr and USER not in r.stderr


def make_cert(tmp_path):
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def tls_request(port, cert, method, path, body=None, headers=None, max_version=None):
    ctx = ssl.create_default_context(cafile=cert)
    if max_version:
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = max_version
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read(), conn.sock.version()
    finally:
        conn.close()


def tls11_handshake(port):
    """Whether openssl's client completes a TLS 1.1 handshake (security level
    0, so the client itself allows it)."""
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_1",
                        "-cipher", "DEFAULT:@SECLEVEL=0"], input="", capture_output=True,
                       text=True, timeout=30)
    return r.returncode == 0 and "Protocol  : TLSv1.1" in r.stdout


SERVERS = []


def free_port_server(cert, key):
    """openssl's own server, TLS 1.1 only: the control for the client."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen(["openssl", "s_server", "-accept", str(port), "-cert", cert, "-key",
                          key, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", "-www"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    SERVERS.append(p)
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    return port


def test_tls(tmp_path, repo_dir):
    cert, key = make_cert(tmp_path)
    d = Daemon(repo_dir, config=config(tmp_path, tls_cert=cert, tls_key=key))
    d.start(expect_ready=False)
    try:
        assert "listening on https://" in d.log()
        deadline = time.time() + 60
        while time.time() < deadline:
            if tls_request(d.port, cert, "GET", "/readyz")[0] == 200:
                break
            time.sleep(0.1)
        status, body, version = tls_request(d.port, cert, "POST", "/v1/models/mnist/classify",
                                            DIGIT, {"Content-Type": "image/png"})
        assert status == 200 and json.loads(body)["results"][0]["predictions"][0]["label"] == "7"
        assert version in ("TLSv1.2", "TLSv1.3")
        # TLS 1.2 is enough; 1.1 is refused
        assert tls_request(d.port, cert, "GET", "/healthz",
                           max_version=ssl.TLSVersion.TLSv1_2)[2] == "TLSv1.2"
        # TLS 1.1 from a client that can speak it (shown against openssl's own server)
        assert tls11_handshake(free_port_server(cert, key)), "the client cannot do TLS 1.1"
        assert not tls11_handshake(d.port)
        # curl, a second real client, verifying the certificate
        r = subprocess.run(["curl", "-sS", "--cacert", cert, "-H", "Content-Type: image/png",
                            "--data-binary", "@" + os.path.join(MNIST, "sample-7.png"),
                            f"https://localhost:{d.port}/v1/models/mnist/classify"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and '"label":"7"' in r.stdout, r.stderr
        # plain HTTP to the TLS port: no HTTP answer, the connection closes, nothing hangs
        with socket.create_connection(("127.0.0.1", d.port), timeout=10) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            try:
                while chunk := s.recv(4096):
                    got += chunk
            except ConnectionResetError:
                pass
            assert not got.startswith(b"HTTP/"), got[:100]
        assert tls_request(d.port, cert, "GET", "/healthz")[0] == 200  # still serving
    finally:
        for p in SERVERS:
            p.kill()
            p.wait()
        assert d.stop() == 0


def test_insecure_is_said_and_require_auth_refuses(tmp_path, repo_dir):
    d = Daemon(repo_dir, extra_args=["--listen", "0.0.0.0:0"]).start()
    try:
        assert "insecure: 0.0.0.0:0 is reachable beyond this machine without TLS" in d.log()
        assert d.json("GET", "/v1/models")[1]["server"]["insecure"] is True
        assert d.json("GET", "/v2")[1]["insecure"] is True
    finally:
        assert d.stop() == 0
    d = Daemon(repo_dir).start()  # loopback: nothing to say
    try:
        assert "insecure" not in d.log()
        assert d.json("GET", "/v1/models")[1]["server"]["insecure"] is False
        assert "insecure" not in d.json("GET", "/v2")[1]
    finally:
        assert d.stop() == 0
    r = subprocess.run([BIN, "serve", "--listen", "0.0.0.0:0", "--models", repo_dir, "--config",
                        config(tmp_path, require_auth=True)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "require_auth" in r.stderr and "neither TLS nor" in r.stderr
    # TLS and keys together: not insecure, and require_auth lets it start
    cert, key = make_cert(tmp_path)
    keys = tmp_path / "keys"
    keys.write_text(USER + "\n")
    d = Daemon(repo_dir, extra_args=["--listen", "0.0.0.0:0"],
               config=config(tmp_path, "secure.json", require_auth=True, tls_cert=cert,
                             tls_key=key, api_keys=str(keys)))
    d.start(expect_ready=False)
    try:
        deadline = time.time() + 60
        while "serving" not in d.log() and time.time() < deadline:
            time.sleep(0.1)
        status, body, _ = tls_request(d.port, cert, "GET", "/v1/models",
                                      headers={"Authorization": f"Bearer {USER}"})
        assert status == 200 and json.loads(body)["server"] == {
            "insecure": False, "tls": True, "api_keys": True, "model_control": False}
        assert "insecure" not in d.log()
    finally:
        assert d.stop() == 0


def peer_cert(port, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return s.getpeercert(binary_form=True)


def der(pem_path):
    return ssl.PEM_cert_to_DER_cert(open(pem_path).read())


def test_tls_certificate_reloads_on_sighup(tmp_path, repo_dir):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    cert_a, key_a = make_cert(first)
    cert_b, key_b = make_cert(second)
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    for src, dst in ((cert_a, cert), (key_a, key)):
        open(dst, "w").write(open(src).read())
    both = str(tmp_path / "both.pem")  # the client trusts either certificate
    open(both, "w").write(open(cert_a).read() + open(cert_b).read())
    d = Daemon(repo_dir, config=config(tmp_path, tls_cert=cert, tls_key=key))
    d.start(expect_ready=False)

    def sighup_and_wait(words):
        n = d.log().count(words)
        d.proc.send_signal(__import__("signal").SIGHUP)
        deadline = time.time() + 30
        while d.log().count(words) == n and time.time() < deadline:
            time.sleep(0.05)
        assert d.log().count(words) > n, d.log()[-2000:]

    try:
        deadline = time.time() + 30
        while "serving" not in d.log() and time.time() < deadline:
            time.sleep(0.05)
        assert peer_cert(d.port, both) == der(cert_a)
        for src, dst in ((cert_b, cert), (key_b, key)):
            open(dst, "w").write(open(src).read())
        sighup_and_wait("TLS certificate read again")
        assert peer_cert(d.port, both) == der(cert_b)
        # a broken certificate, or a key that is not the certificate's: the pair in use stays
        open(cert, "w").write("-----BEGIN CERTIFICATE-----\nnot base64\n")
        sighup_and_wait("the TLS certificate was not replaced")
        open(cert, "w").write(open(cert_a).read())  # key.pem is still b's
        sighup_and_wait("is not the key of tls_cert")
        assert peer_cert(d.port, both) == der(cert_b)
        status, body, _ = tls_request(d.port, cert_b, "GET", "/healthz")
        assert status == 200
    finally:
        assert d.stop() == 0
