# The two commands that set up everything on a fresh Debian machine (as root):
#   make demo   install what berth needs, make a first image from busybox-static, show it
#   make test   install what berth and its tests need, run the whole test suite
# Both are idempotent: they only install what is missing.

VENV      := .venv
PY        := $(VENV)/bin/python
BERTH     := $(VENV)/bin/berth
# /usr/bin/python3 starts in ~20 ms; a pyenv shim first on PATH can take ~170 ms per start.
BASE_PY   := $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || command -v python3)
RUN_PKGS  := crun runc conmon catatonit uidmap passt fuse-overlayfs busybox-static iproute2 nftables iptables aardvark-dns
TEST_PKGS := skopeo podman slirp4netns docker-registry umoci golang-github-containers-common curl apache2-utils mmdebstrap docker.io docker-compose
PYTEST_ARGS ?=

.PHONY: demo test lint mutation deps-run deps-test venv clean-demo

deps-run:
	@./scripts/apt-ensure $(RUN_PKGS)

deps-test: deps-run
	@./scripts/apt-ensure $(TEST_PKGS)

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(BASE_PY) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

# Byte-compile berth itself: this is incremental, and it means the .pyc files exist even
# where PYTHONDONTWRITEBYTECODE is set. Without them every CLI start recompiles (~75 ms).
venv: $(VENV)/.installed
	@$(PY) -m compileall -q src

# ruff (bugs, imports, modern syntax) and mypy (strict on store/, oci/, images/; see
# pyproject.toml): part of every test run, so CI refuses what they refuse
lint: venv
	$(PY) -m ruff check src tests bench scripts
	$(PY) -m mypy

# -rs: every skip prints its reason, so a test that silently stopped running shows in CI
test: deps-test venv lint
	@# Debian's default modes (udev sets them): rootless pasta opens the tun device,
	@# rootless fuse-overlayfs /dev/fuse
	@test ! -c /dev/net/tun || chmod 0666 /dev/net/tun
	@test ! -c /dev/fuse || chmod 0666 /dev/fuse
	$(PY) -m pytest -q -rs -n 2 --dist loadfile $(PYTEST_ARGS)

# Mutation testing of the guarantee-holding modules (by hand, not CI; see tests/MUTATION.md).
# MODULES=rootpath digest ... picks some; results: scripts/mutation.py --results
mutation: deps-test venv
	$(PY) -m pip install -q -e '.[test,mutation]'
	$(PY) scripts/mutation.py $(MODULES)

demo: deps-run venv
	@./scripts/demo
