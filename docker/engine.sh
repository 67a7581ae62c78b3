#!/bin/sh
# engine.sh - sourced by docker/images.sh and tests/container/run.sh: picks
# the container engine and compose tool that are present (podman first, then
# a docker whose daemon answers) and sets ENGINE and COMPOSE.  As root on
# Debian with neither present, installs podman and podman-compose
# (docker/deps.sh container).  BOUNCERD_ENGINE=podman or docker picks one
# when both are present.  It also makes sure the Debian base images
# exist (docker/base-image.sh).  engine_pick returns 1 when no engine can
# run.  The caller sets SRC to the top of the source tree.

engine_pick() {
	ENGINE="" COMPOSE=""
	if [ "${BOUNCERD_ENGINE:-}" = docker ]; then
		engine_docker_ok || return 1
		engine_pick_docker
		return
	fi
	if ! command -v podman >/dev/null 2>&1 &&
	    { [ "${BOUNCERD_ENGINE:-}" = podman ] || ! engine_docker_ok; }; then
		sh "$SRC/docker/deps.sh" container >&2 || return 1
	fi
	if command -v podman >/dev/null 2>&1; then
		ENGINE=podman
		sh "$SRC/docker/base-image.sh" podman || return 1
		engine_podman_conf || return 1
		command -v podman-compose >/dev/null 2>&1 && COMPOSE=podman-compose
	elif engine_docker_ok; then
		engine_pick_docker
		return
	else
		return 1
	fi
	return 0
}

engine_pick_docker() {
	ENGINE=docker
	# the legacy builder: a docker CLI without buildx refuses BuildKit
	DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0}
	export DOCKER_BUILDKIT
	sh "$SRC/docker/base-image.sh" docker || return 1
	if docker compose version >/dev/null 2>&1; then
		COMPOSE="docker compose"
	elif command -v docker-compose >/dev/null 2>&1; then
		COMPOSE=docker-compose
	fi
	return 0
}

engine_docker_ok() {
	command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1
}

# Podman on machines without CAP_SYS_RESOURCE (a container may not raise
# its open-files limit) or with a hybrid cgroup v1/v2 layout (crun refuses
# it) runs nothing until containers.conf says otherwise.  Written only when
# a trial container fails and no containers.conf exists yet.
engine_podman_conf() {
	if podman run --rm --pull=never --net=none docker.io/library/debian:12 true >/dev/null 2>&1; then
		return 0
	fi
	if [ -e /etc/containers/containers.conf ] || [ "$(id -u)" != 0 ]; then
		echo "engine.sh: podman cannot start a container; see /etc/containers/containers.conf" >&2
		podman run --rm --pull=never --net=none docker.io/library/debian:12 true >&2 || true
		return 1
	fi
	echo "engine.sh: writing /etc/containers/containers.conf (fixed open-files limits, runc)" >&2
	mkdir -p /etc/containers
	cat >/etc/containers/containers.conf <<-CONF
	# Written by bouncerd's docker/engine.sh: containers may not raise their
	# open-files limit on this machine, and crun refuses its cgroup layout.
	[containers]
	default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
	[engine]
	runtime = "runc"
	CONF
	podman run --rm --pull=never --net=none docker.io/library/debian:12 true >&2
}
