"""``berth system boot``: which containers Docker's daemon-start rules bring back."""

from __future__ import annotations

import pytest

from berth.container.boot import wanted
from berth.container.records import ContainerRecord


def _rec(policy: str, *, retries: int = 0, exit_code: int = 255, manual_stop: bool = False,
         restarts: int = 0) -> ContainerRecord:
    return ContainerRecord(
        id="a" * 64, name="c", image_id="sha256:" + "b" * 64, image_name="busybox",
        created=0.0, config={"HostConfig": {"RestartPolicy": {
            "Name": policy, "MaximumRetryCount": retries}}},
        status="exited", exit_code=exit_code, manual_stop=manual_stop,
        restart_count=restarts)


@pytest.mark.parametrize(("rec", "expected"), [
    (_rec("no"), False),
    (_rec(""), False),
    (_rec("always"), True),
    (_rec("always", manual_stop=True), True),          # Docker: back at daemon start
    (_rec("unless-stopped"), True),
    (_rec("unless-stopped", manual_stop=True), False),
    (_rec("on-failure"), True),                         # a lost run counts as 255
    (_rec("on-failure", exit_code=0), False),
    (_rec("on-failure", manual_stop=True), False),
    (_rec("on-failure", retries=3, restarts=3), False),
    (_rec("on-failure", retries=3, restarts=2), True),
])
def test_wanted_follows_dockers_daemon_start_rules(rec: ContainerRecord,
                                                   expected: bool) -> None:
    assert wanted(rec) is expected
