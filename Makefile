# boma.mesh — developer entry points.  `make setup` then `make test` is all a fresh
# Debian machine needs (see README.md).
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
BUILD := $(CURDIR)/.build
COLL := $(BUILD)/ansible_collections/boma/mesh
SANITY_VENV := $(BUILD)/sanity-venv
ANSIBLE_CORE := $(shell sed -n 's/^ansible-core==//p' requirements.txt)
export PATH := $(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(BUILD)
export ANSIBLE_HOME := $(BUILD)/ansible-home
export ANSIBLE_LOCAL_TEMP := $(BUILD)/ansible-tmp
# Podman settings for the Molecule lane (runc, cgroupfs, file events, ulimits; see docs/molecule.md).
export CONTAINERS_CONF := $(CURDIR)/tools/molecule/containers.conf
VAULT := vault/vault.yml

# Debian packages the test lanes need (kept here so setup is one command).
APT_PACKAGES := openssl git make iproute2 iputils-ping frr frr-pythontools gobgpd shellcheck \
                qemu-system-x86 busybox-static kmod wireguard-tools \
                podman runc conmon containernetworking-plugins golang-github-containernetworking-plugin-dnsname \
                catatonit uidmap slirp4netns passt fuse-overlayfs mmdebstrap

.PHONY: help setup apt venv collection lint lint-python lint-ansible sanity docs-check docs changelog-lint \
        test test-all test-unit test-service test-agent-long test-playbooks test-netns bench clean \
        kernel-setup test-kernel molecule-setup test-molecule check-argspecs check-tags \
        init-vault edit-vault check-vault check-netbird-pin lab lab-down lab-status lab-host test-lab

help:
	@echo "make setup   - create .venv, install pinned Python and Debian packages, samctl (safe to re-run)"
	@echo "make test    - the quick lane (a few minutes): lint, unit, service, playbooks, package"
	@echo "make test-all - every lane (what CI runs): make test + docs, netns, kernel guest, Molecule, lab"
	@echo "make lint    - ruff, ansible-lint (production), ansible-test sanity, ansible-doc, changelog lint"
	@echo "make docs    - the docs site (antsibull-docs, Sphinx) in .build/docs/html; fails on any warning"
	@echo "make bench   - print performance figures (bench/)"
	@echo "make check-netbird-pin - the NetBird agent pin against the apt repository (INVENTORY=inventories/m5; exit 0 current, 1 older, 2 missing, 3 unchecked)"
	@echo "make lab     - the runbook topology in a qemu guest with Debian's kernel, left running (root; lab-down, lab-status)"
	@echo "make test-lab - the slow lane: the lab's Full Topology Gate in the guest (about 15 min)"

setup: apt venv kernel-setup molecule-setup

# The local Debian 12 image the Molecule scenarios run (cached by content hash; a no-op when current).
molecule-setup: apt venv
	tools/molecule/build-image.sh
	tools/molecule/collections.sh

# Debian's kernel (unpacked into ~/.cache/boma-mesh/kernel) + initramfs for the qemu lane; a no-op when done.
kernel-setup: apt
	tools/kernel/setup.sh

apt:
	@if command -v apt-get >/dev/null; then
	  missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done)
	  if [ -n "$$missing" ]; then
	    echo "installing Debian packages: $$missing"
	    SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo)
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing
	  fi
	fi

venv: $(BIN)/.stamp

$(BIN)/.stamp: requirements.txt requirements-dev.txt pyproject.toml tools/get_pip_standin.py
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	# ansible-test sanity runs from its own venv so its pinned linters never touch .venv.
	[ -x $(SANITY_VENV)/bin/python ] || $(PYTHON) -m venv $(SANITY_VENV)
	$(SANITY_VENV)/bin/python -m pip install -q --disable-pip-version-check ansible-core==$(ANSIBLE_CORE)
	pipver=$$($(SANITY_VENV)/bin/python -c "import ansible_test._internal.python_requirements as r, inspect, re; print(re.search(r\"pip='([0-9.]+)'\", inspect.getsource(r)).group(1))")
	mkdir -p ~/.ansible/test/cache
	cp tools/get_pip_standin.py ~/.ansible/test/cache/get_pip_$${pipver//./_}.py
	touch $@

# ansible-test needs the tree at ansible_collections/boma/mesh; a copy keeps the repo where it is.
collection:
	rm -rf $(COLL) && mkdir -p $(COLL)
	git ls-files -co --exclude-standard -z | xargs -0 -I{} sh -c 'test -e "{}" && echo "{}"' \
	  | tar -cf - -T - | tar -C $(COLL) -xf -
	# ansible-test lists files with git; give the copy its own index (the repo ignores .build/).
	cd $(COLL) && git init -q && git add -A

lint: lint-python lint-ansible check-argspecs check-tags sanity docs-check changelog-lint

# defaults/main.yml and meta/argument_specs.yml of every role agree (names and default values).
check-argspecs:
	$(BIN)/python tools/check_argspecs.py roles

# Every tag in roles, playbooks and molecule is in the closed vocabulary tests/tags.yml.
check-tags:
	$(BIN)/python tools/check_tags.py .

lint-python:
	$(BIN)/ruff check plugins tests bench tools

lint-ansible: collection
	# ansible-lint caches an installed copy of this collection; a stale one hides new modules.
	rm -rf $(ANSIBLE_HOME)/collections/ansible_collections/boma .ansible/collections/ansible_collections/boma
	$(BIN)/ansible-lint --profile production --offline

sanity: collection
	cd $(COLL) && $(SANITY_VENV)/bin/ansible-test sanity --local --requirements --color no \
	  --python $$($(SANITY_VENV)/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')

docs-check: collection
	$(BIN)/python tools/check_docs.py $(COLL)

# The docs site from the copied collection (module, plugin and role docs, docs/docsite) with antsibull-docs and
# Sphinx into .build/docs/html, rebuilt from scratch; any lint problem or Sphinx warning fails it. The intersphinx
# inventories fall back to local files (tools/docs_intersphinx.py) when docs.ansible.com is not reachable.
DOCS := $(BUILD)/docs

docs: collection venv
	rm -rf $(DOCS) && mkdir -p $(DOCS)
	start=$$(date +%s)
	(cd $(COLL) && $(BIN)/antsibull-docs lint-collection-docs --plugin-docs .)
	$(BIN)/antsibull-docs sphinx-init --use-current --squash-hierarchy --fail-on-error --dest-dir $(DOCS) \
	  --project boma.mesh --copyright 'boma.mesh contributors' --title 'boma.mesh collection' boma.mesh >/dev/null
	$(BIN)/python tools/docs_intersphinx.py $(DOCS)
	mkdir -p $(DOCS)/rst && chmod og-w $(DOCS)/rst
	$(BIN)/antsibull-docs --config-file $(DOCS)/antsibull-docs.cfg collection --use-current --squash-hierarchy \
	  --fail-on-error --cleanup everything --dest-dir $(DOCS)/rst boma.mesh
	status=0
	$(BIN)/sphinx-build -q -b html -W --keep-going -w $(DOCS)/warnings.log -c $(DOCS) -d $(DOCS)/doctrees \
	  $(DOCS)/rst $(DOCS)/html || status=$$?
	warnings=$$(grep -c -E '(WARNING|ERROR|CRITICAL):' $(DOCS)/warnings.log || true)
	pages=$$(find $(DOCS)/html -name '*.html' | wc -l)
	echo "docs: $$warnings warning(s), $$pages HTML pages in $(DOCS)/html ($$(( $$(date +%s) - start )) s)"
	[ "$$status" = 0 ] && [ "$$warnings" = 0 ]

changelog-lint:
	$(BIN)/antsibull-changelog lint

# make release VERSION=x.y.z: the fragments become changelogs/changelog.yaml and CHANGELOG.rst (bump galaxy.yml
# and execution-environment.yml's tarball name first). antsibull-changelog lists new plugins with ansible-doc.
.PHONY: release
release: collection
	test -n "$(VERSION)" || { echo "usage: make release VERSION=x.y.z"; exit 2; }
	$(BIN)/antsibull-changelog release --version "$(VERSION)"

# The quick lane a newcomer runs (a few minutes on 2 vCPUs): no qemu guest, no containers, no topology in
# namespaces (the playbook lane starts one bgpd/zebra pair when it runs as root).  test-all adds the slow lanes
# (real FRR/gobgpd topologies in namespaces, the qemu guest, Molecule, the lab) and is what .ci/run calls.
test: lint test-unit test-service test-playbooks test-package

test-all: test docs test-agent-long test-netns test-kernel test-molecule test-lab

# Vault: the password file comes from $$ANSIBLE_VAULT_PASSWORD_FILE only (never a prompt, never argv).
init-vault:
	@[ -n "$${ANSIBLE_VAULT_PASSWORD_FILE:-}" ] || { echo "init-vault: set ANSIBLE_VAULT_PASSWORD_FILE to the vault password file" >&2; exit 2; }
	[ -f "$$ANSIBLE_VAULT_PASSWORD_FILE" ] || { echo "init-vault: $$ANSIBLE_VAULT_PASSWORD_FILE does not exist" >&2; exit 2; }
	if [ -e $(VAULT) ]; then echo "init-vault: $(VAULT) exists, left as it is"; exit 0; fi
	umask 077 && $(BIN)/ansible-vault encrypt --vault-password-file "$$ANSIBLE_VAULT_PASSWORD_FILE" \
	  --output $(VAULT) vault/vault.example.yml
	echo "init-vault: created $(VAULT) (encrypted); fill it with make edit-vault"

edit-vault:
	@[ -n "$${ANSIBLE_VAULT_PASSWORD_FILE:-}" ] || { echo "edit-vault: set ANSIBLE_VAULT_PASSWORD_FILE" >&2; exit 2; }
	$(BIN)/ansible-vault edit --vault-password-file "$$ANSIBLE_VAULT_PASSWORD_FILE" $(VAULT)

# INVENTORY=inventories/m5 (or several, space-separated): also the names those hosts read must be present and set.
check-vault:
	$(BIN)/python tools/check_vault.py $(foreach i,$(INVENTORY),--inventory $(i)) $(VAULT)

# The NetBird pin (base__mesh_version) against what netbird_agent's apt repository offers; needs that repository
# reachable. INVENTORY=inventories/m5 checks its enrolling hosts' pins (default: the role default); ARCH=arm64.
check-netbird-pin:
	$(BIN)/python tools/check_netbird_pin.py $(if $(INVENTORY),--inventory $(INVENTORY)) --arch $(or $(ARCH),amd64)

# Podman containers from the local image (docs/molecule.md); molecule calls ansible-config, so .venv/bin is on PATH.
test-molecule: collection molecule-setup
	export ANSIBLE_COLLECTIONS_PATH=$(BUILD):$(BUILD)/molecule-collections
	$(BIN)/molecule test -s default
	$(BIN)/molecule test -s netbird
	$(BIN)/molecule test -s mesh

test-unit:
	$(BIN)/python -m pytest -q tests/unit

# Real `samctl serve` processes (two RRs) on loopback TCP and unix sockets.
test-service:
	$(BIN)/python -m pytest -q tests/service

# The leaf agent against two real RRs with the issue's numbers: a 60 s ttl over four leases, both RRs down 90 s.
test-agent-long:
	BOMA_AGENT_TTL=60 BOMA_AGENT_OUTAGE=90 $(BIN)/python -m pytest -q -s tests/service/test_agent.py -k leases

# ansible-playbook against localhost and the example inventories (pytest drives it; not ansible-test targets).
test-playbooks: collection
	$(BIN)/python -m pytest -q tests/playbooks

# The collection as users get it (tests/package/run.sh, docs/packaging.md): build the tarball and check it for
# clutter, install it into a temporary collections path (the only one), then ansible-doc and a playbook of every
# module, role and filter by FQCN from there, and the ansible-builder context of execution-environment.yml.
.PHONY: test-package
test-package: venv
	BIN=$(BIN) tests/package/run.sh

# Real daemons in network namespaces (FRR, gobgpd); needs root, as CI has.
test-netns: collection
	$(BIN)/python -m pytest -q -s tests/netns

# Tunnel tests (ipip, fou, gre, wireguard) on Debian's kernel in one qemu TCG boot; see tools/kernel/.
test-kernel:
	tools/kernel/run-tests.sh

# The lab (inventories/lab/README.md), needs root: the runbook topology as network namespaces inside the qemu
# guest (Debian's kernel: ipip, fou, WireGuard), FRR, the RR services, configured by site.yml through the
# roles from here (tools/lab/guestlab.py). lab-host: the same on this machine's kernel without tunnels.
LAB_PREFIX ?= boma-lab
LAB_TOPO := $(BIN)/python tools/lab/topology.py --prefix $(LAB_PREFIX)
LAB_GUEST := $(BIN)/python tools/lab/guestlab.py --prefix $(LAB_PREFIX)

lab: venv kernel-setup
	# guest, topology up in it, lab-vars, site.yml --tags service --limit sam_rrs, services, --tags mesh, agents, status
	$(LAB_GUEST) bringup

lab-host: venv
	$(LAB_TOPO) bringup

lab-down:
	$(LAB_GUEST) down
	$(LAB_TOPO) down

lab-status:
	if $(BIN)/python tools/lab/vm.py --prefix $(LAB_PREFIX) ping; then $(LAB_GUEST) status; else $(LAB_TOPO) status; fi

# Slow lane (part of test-all): the Full Topology Gate in the guest, tests/lab.
test-lab: collection kernel-setup
	$(BIN)/python -m pytest -q -s tests/lab

# The same lab as a Molecule test (molecule/kernel, docs/molecule.md): create = guestlab prepare, converge and
# idempotence = site.yml --tags mesh twice (changed=0 on all five hosts), verify = tests/lab, destroy = down.
# CI runs test-lab (in test-all) instead: the same assertions without Molecule's create/destroy around them.
.PHONY: test-molecule-kernel
test-molecule-kernel: collection kernel-setup
	$(BIN)/molecule test -s kernel

bench:
	$(BIN)/python bench/validate_claims.py
	$(BIN)/python bench/render.py
	$(BIN)/python bench/enroll_load.py 32 5000
	$(BIN)/python bench/token_rotation.py 10000
	$(BIN)/python bench/agent_idle.py 150
	$(BIN)/python bench/renewal_cost.py 200 100
	$(BIN)/python bench/reconcile_cost.py
	tools/kernel/vm-run.sh -m 2G -t 1500 -- bash -c 'modprobe ipip && BOMA_KERNEL_GUEST=1 $(BIN)/python bench/tunnels.py \
	  && BOMA_KERNEL_GUEST=1 $(BIN)/python bench/dataplane_delta.py 1000' | grep -v '^\[' || true

# Scale run (docs/scale.md, needs root): SCALE_LEAVES leaves enroll with the RR pair and hold 2N BGP sessions.
SCALE_LEAVES ?= 200
.PHONY: bench-lab-scale
bench-lab-scale: venv
	$(BIN)/python bench/lab_scale.py --leaves $(SCALE_LEAVES)

# What bgpd pays for the RR's admission policy, per shape, at SCALE_LEAVES leaves (docs/scale.md, needs root).
.PHONY: bench-frr-policy
bench-frr-policy: venv
	$(BIN)/python bench/frr_policy_cost.py --leaves $(SCALE_LEAVES)

clean:
	rm -rf $(BUILD) .pytest_cache .hypothesis .ruff_cache
