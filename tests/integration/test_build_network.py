"""RUN steps have network by default, as ``run`` does (issue 10, "Build").

The default is the ``bridge`` network with outbound NAT and the host's resolvers;
``--network bridge|host|none|NAME`` and ``RUN --network=`` choose; the step's hostname is
in its /etc/hosts; a step leaves no veth, namespace or address reservation behind, even
when it fails (checked on the store's own bridge, which nothing else uses). Also here:
Docker's default PATH at FROM, ``build``'s exit code = the failing RUN's, and ``history``
naming the intermediate images.
"""

from __future__ import annotations

import http.server
import os
import threading
from pathlib import Path

import pytest

from berth.build.progress import BuildProgress
from berth.build.steps_run import RunFailed
from berth.errors import NotFound

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/bin/busybox"),
                                reason="needs root and busybox-static")


class Out(BuildProgress):
    def __init__(self) -> None:
        self.out = b""

    def output(self, ref, data):  # type: ignore[no-untyped-def]
        self.out += data


def build(engine, tmp_path: Path, text: str, **kw) -> tuple[object, str]:  # type: ignore[no-untyped-def]
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    rec = Out()
    res = engine.build(str(ctx), dockerfile_text=text, progress=rec, no_cache=True, **kw)
    return res, rec.out.decode(errors="replace")


def assert_unplugged(engine) -> None:  # type: ignore[no-untyped-def]
    """No veth on the store's bridges, no namespace, no address reservation left."""
    runroot = engine.store.runroot
    for net in engine.network_service.list():
        if net.driver == "bridge" and os.path.isdir(f"/sys/class/net/{net.bridge}"):
            assert os.listdir(f"/sys/class/net/{net.bridge}/brif") == [], net.name
    assert not os.listdir(os.path.join(runroot, "netns")) \
        if os.path.isdir(os.path.join(runroot, "netns")) else True
    top = os.path.join(runroot, "build-net")
    for d in os.listdir(top) if os.path.isdir(top) else []:
        assert os.listdir(os.path.join(top, d)) == [], d


@pytest.fixture
def gateway_server(engine):  # type: ignore[no-untyped-def]
    """An HTTP server on the default bridge's gateway address (the host, seen from RUN)."""
    gw = engine.network_service.default_network().gateway

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = b"hello-from-the-host\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer((gw, 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://{gw}:{srv.server_address[1]}/"
    srv.shutdown()
    srv.server_close()


def test_default_network_is_the_bridge(engine, busybox_image, tmp_path, gateway_server):  # type: ignore[no-untyped-def]
    net = engine.network_service.default_network()
    _, out = build(engine, tmp_path, f"""FROM busybox
RUN ip -4 addr show eth0 && ip route && cat /etc/hosts /etc/resolv.conf \\
 && grep -q "buildkitsandbox" /etc/hosts && ping -c1 -W2 buildkitsandbox \\
 && wget -q -O- {gateway_server}
""")
    assert "hello-from-the-host" in out
    assert f"default via {net.gateway}" in out
    prefix = net.subnet.rsplit(".", 2)[0]
    ip = next(w.split("/")[0] for w in out.split() if w.startswith(prefix + ".")
              and "/" in w)
    assert f"{ip}\tbuildkitsandbox" in out
    assert "nameserver" in out  # the host's resolvers, as run gets them
    assert_unplugged(engine)


def test_modes_none_host_and_run_flag(engine, busybox_image, tmp_path):  # type: ignore[no-untyped-def]
    _, out = build(engine, tmp_path, "FROM busybox\nRUN ip link; cat /etc/hosts\n",
                   network="none")
    assert "eth0" not in out and "buildkitsandbox" in out
    _, out = build(engine, tmp_path, "FROM busybox\nRUN ip link; cat /etc/hosts\n",
                   network="host")
    assert "lo:" in out and "buildkitsandbox" in out and len(out.splitlines()) > 4
    with open("/etc/hosts") as f:
        assert f.read().splitlines()[0] in out  # the host's own entries come first
    _, out = build(engine, tmp_path, "FROM busybox\nRUN --network=none ip link\n"
                   "RUN ip link\n")
    assert out.count("eth0") == 1  # only the second step (default: bridge) has it
    assert_unplugged(engine)


def test_user_network_by_name(engine, busybox_image, tmp_path):  # type: ignore[no-untyped-def]
    net = engine.network_create("buildnet", subnet="10.213.7.0/24")
    _, out = build(engine, tmp_path, "FROM busybox\nRUN ip -4 addr show eth0\n",
                   network="buildnet")
    assert "inet 10.213.7.254/24" in out  # the top of the range: containers start low
    _, out = build(engine, tmp_path, "FROM busybox\nRUN --network=buildnet ip -4 addr\n",
                   network="none")
    assert "10.213.7.254" in out
    assert net.id
    with pytest.raises(NotFound, match="network nosuchnet not found"):
        build(engine, tmp_path, "FROM busybox\nRUN true\n", network="nosuchnet")
    assert_unplugged(engine)


def test_failed_step_leaves_nothing_and_exits_with_its_code(berth, engine, busybox_image,  # type: ignore[no-untyped-def]
                                                            tmp_path):
    with pytest.raises(RunFailed):
        build(engine, tmp_path, "FROM busybox\nRUN ip link show eth0 && exit 3\n")
    assert_unplugged(engine)
    ctx = tmp_path / "cli"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN exit 42\n")
    r = berth("build", "-q", str(ctx))
    assert r.returncode == 42, r.stderr
    assert "returned a non-zero code: 42" in r.stderr
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN sh -c 'kill -9 $$' && true\n")
    r = berth("build", "-q", str(ctx))
    assert r.returncode == 137, r.stderr
    assert_unplugged(engine)


def test_a_dead_builds_seat_is_swept(engine, busybox_image, tmp_path):  # type: ignore[no-untyped-def]
    """A SIGKILLed build leaves a reservation, veth and netns; the next step sweeps them."""
    import subprocess

    from berth.build.stepnet import StepNetwork

    net = engine.network_service.default_network()
    seat = StepNetwork(engine.store, "berth-build-deadbeefdeadbeef", net)
    dead = subprocess.Popen(["true"])
    dead.wait()
    with open(seat._reservation, "w") as f:
        f.write(f"{dead.pid} berth-build-deadbeefdeadbeef\n")
    seat._reservation = ""  # as if this process had died: nobody closes it
    assert os.listdir(f"/sys/class/net/{net.bridge}/brif")
    build(engine, tmp_path, "FROM busybox\nLABEL a=b\n")  # any next build, no RUN needed
    assert_unplugged(engine)
    seat = StepNetwork(engine.store, "berth-build-deadbeefdeadbee2", net)
    with open(seat._reservation, "w") as f:
        f.write(f"{dead.pid} berth-build-deadbeefdeadbee2\n")
    seat._reservation = ""
    mine = StepNetwork(engine.store, "berth-build-0123456789abcdef", net)  # sweeps too
    assert os.listdir(f"/sys/class/net/{net.bridge}/brif") == [mine_veth(mine)]
    mine.close()
    assert_unplugged(engine)


def mine_veth(seat) -> str:  # type: ignore[no-untyped-def]
    from berth.network.veth import veth_name

    return veth_name(seat.cid, seat.net.id)


def test_default_path_set_at_from(engine, busybox_image, tmp_path):  # type: ignore[no-untyped-def]
    """``ENV PATH=/opt/x:$PATH`` on a base without PATH, then a RUN (was 127)."""
    assert not any(e.startswith("PATH=") for e in
                   engine.image_service.config(busybox_image)["config"].get("Env") or [])
    res, out = build(engine, tmp_path, "FROM busybox\nENV PATH=/opt/x:$PATH\n"
                     "RUN echo \"path=$PATH\"\n", network="none", tags=["p:1"])
    want = "/opt/x:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert f"path={want}" in out
    env = engine.image_service.config(res.image_id)["config"]["Env"]
    assert f"PATH={want}" in env
    res, _ = build(engine, tmp_path, "FROM scratch\nLABEL a=b\n", network="none")
    env = engine.image_service.config(res.image_id)["config"]["Env"]
    assert env == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


def test_history_names_local_intermediate_images(berth, engine, busybox_image, tmp_path):  # type: ignore[no-untyped-def]
    res, _ = build(engine, tmp_path, "FROM busybox\nENV A=1\nRUN touch /x\nLABEL l=1\n",
                   network="none", tags=["hist:1"], labels={"from": "flag"})
    rows = engine.history("hist:1")
    ids = [r["ID"] for r in rows]
    assert ids[0] == res.image_id and ids[-1] == busybox_image
    assert "<missing>" not in ids and len(set(ids)) == len(ids) == 4
    assert rows[-1]["Tags"] == ["busybox:latest"]
    r = berth("history", "-q", "hist:1")
    assert "<missing>" not in r.stdout and len(r.stdout.split()) == 4
