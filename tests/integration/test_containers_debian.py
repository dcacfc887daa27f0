"""What depends on a real distribution: users and groups from the image's /etc/group."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture
def user_image(berth, debian_image, tmp_path):
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text(
        "FROM debian:bookworm\nRUN useradd -m -u 1234 -G audio,video,users app\n")
    r = berth("build", "-q", "-t", "usr", str(tmp_path / "ctx"))
    assert r.returncode == 0, r.stderr
    return "usr"


def test_user_groups_from_the_image(berth, user_image):
    def ids(*args):
        r = berth("run", "--rm", *args, user_image, "id")
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    full = "uid=1234(app) gid=1234(app) groups=1234(app),29(audio),44(video),100(users)"
    assert ids("-u", "app") == full
    assert ids("-u", "1234") == full                 # a uid with a passwd entry: same
    # an explicit group replaces the membership lookup (libcontainer's GetExecUser)
    assert ids("-u", "1234:1234") == "uid=1234(app) gid=1234(app) groups=1234(app)"
    assert ids("-u", "app:users") == "uid=1234(app) gid=100(users) groups=100(users)"
    assert ids("-u", "1234:1234", "--group-add", "audio", "--group-add", "4242") == \
        "uid=1234(app) gid=1234(app) groups=1234(app),29(audio),4242"
    assert ids("--group-add", "staff") == "uid=0(root) gid=0(root) groups=0(root),50(staff)"
    r = berth("run", "--rm", "--group-add", "nosuchgroup", user_image, "id")
    assert r.returncode == 125
    assert "unable to find group nosuchgroup: no matching entries in group file" in r.stderr
    berth("run", "-d", "--name", "grp", user_image, "sleep", "300")
    r = berth("exec", "-u", "app", "grp", "id")
    assert r.stdout.strip() == full
    berth("rm", "-f", "grp")


def test_bash_service_that_forks_with_health(berth, debian_image, tmp_path):
    """A forking bash service with a Dockerfile HEALTHCHECK; ps and top on Debian."""
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "Dockerfile").write_text(
        "FROM debian:bookworm\n"
        "HEALTHCHECK --interval=300ms --timeout=5s CMD [\"bash\", \"-c\", "
        "\"[[ -s /tmp/pidfile ]] && kill -0 $(cat /tmp/pidfile)\"]\n"
        "CMD [\"bash\", \"-c\", \"(sleep 300 & echo $! > /tmp/pidfile; wait) & wait\"]\n")
    assert berth("build", "-q", "-t", "svc", str(tmp_path / "svc")).returncode == 0
    r = berth("run", "-d", "--name", "svc", "svc")
    assert r.returncode == 0, r.stderr
    import time

    end = time.time() + 15
    while time.time() < end:
        st = berth("inspect", "-f", "{{.State.Health.Status}}", "svc").stdout.strip()
        if st == "healthy":
            break
        time.sleep(0.2)
    assert st == "healthy"
    assert berth("ps", "--format", "{{.Status}}").stdout.strip().endswith("(healthy)")
    top = berth("top", "svc", "-o", "pid,comm").stdout.split()
    assert top[:2] == ["PID", "COMMAND"] and top.count("bash") == 2 and "sleep" in top
    berth("rm", "-f", "svc")
