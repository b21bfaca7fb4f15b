"""app.json (the Heroku Button), heroku.yml (the container stack), the Procfile and the requirement
files agree with each other and with what Heroku accepts."""
from __future__ import annotations

import json
import re

import yaml

from tests.conftest import ROOT

PROCESS_TYPES = {"release", "web", "worker", "trainer"}
DYNO_SIZES = {"eco", "basic", "standard-1x", "standard-2x", "performance-m", "performance-l"}
TRAINING_ONLY = {"tensorflow-cpu", "tf2onnx"}


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {name: command.strip() for name, command in (line.split(":", 1) for line in lines if line.strip())}


def app_json() -> dict:
    return json.loads((ROOT / "app.json").read_text())


def heroku_yml() -> dict:
    return yaml.safe_load((ROOT / "heroku.yml").read_text())


def requirement_names(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            package, _, version = line.partition("==")
            pins[re.sub(r"\[.*\]", "", package).lower()] = version
    return pins


def test_app_json_has_what_a_heroku_button_needs() -> None:
    app = app_json()
    for key in ("name", "description", "env", "addons", "formation", "scripts", "stack"):
        assert key in app, key
    plans = {addon["plan"].split(":")[0] if isinstance(addon, dict) else addon.split(":")[0] for addon in app["addons"]}
    assert {"heroku-postgresql", "heroku-redis"} <= plans
    assert app["env"]["SECRET_KEY"]["generator"] == "secret"
    assert app["env"]["TUMORSCREEN_ENV"]["value"] == "production"
    assert app["env"]["TUMORSCREEN_ADMIN_PASSWORD"]["required"] is True
    assert "ensure-admin" in app["scripts"]["postdeploy"]


def test_formation_covers_every_long_running_process_type_on_dynos_that_fit() -> None:
    formation = app_json()["formation"]
    assert set(formation) == set(procfile()) - {"release"}
    assert all(spec["size"] in DYNO_SIZES and spec["quantity"] >= 1 for spec in formation.values())
    # Measured in bench/bench_heroku.py: web and worker fit 512 MiB; training needs TensorFlow's memory.
    assert formation["web"]["size"] == formation["worker"]["size"] == "standard-1x"
    assert formation["trainer"]["size"] == "performance-m"


def test_procfile_has_the_release_phase_and_the_three_dynos() -> None:
    commands = procfile()
    assert set(commands) == PROCESS_TYPES
    assert commands["release"] == "alembic upgrade head"
    assert "--bind 0.0.0.0:$PORT" in commands["web"]
    assert "-Q screening" in commands["worker"] and "-Q training" in commands["trainer"]


def test_heroku_yml_builds_one_image_per_process_type_and_runs_the_procfile_commands() -> None:
    manifest = heroku_yml()
    commands = procfile()
    assert app_json()["stack"] == "container"
    builds = manifest["build"]["docker"]
    assert set(builds) == set(commands) - {"release"}
    for name, build in builds.items():
        assert build["dockerfile"] == "Dockerfile" and (ROOT / build["dockerfile"]).exists()
        assert re.search(rf"^FROM \S+ AS {build['target']}$", (ROOT / "Dockerfile").read_text(), re.M), name
    assert manifest["release"]["command"] == [commands["release"]]
    assert manifest["release"]["image"] == "web"
    for name, spec in manifest["run"].items():
        command = spec if isinstance(spec, str) else " ".join(spec["command"])
        assert command == commands[name], name
        if isinstance(spec, dict):
            assert spec["image"] == name
    assert set(manifest["run"]) == set(builds)
    addons = {addon["plan"].split(":")[0] for addon in manifest["setup"]["addons"]}
    assert addons == {a["plan"].split(":")[0] for a in app_json()["addons"]}


def test_web_requirements_are_the_runtime_requirements_without_tensorflow() -> None:
    full, web = requirement_names("requirements.txt"), requirement_names("requirements-web.txt")
    assert TRAINING_ONLY <= set(full)
    assert web == {name: pin for name, pin in full.items() if name not in TRAINING_ONLY}
    assert all(pin for pin in full.values()), "every runtime requirement is pinned"
