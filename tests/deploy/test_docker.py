"""The images and the compose stack, checked without a Docker engine: the Dockerfile is parsed into
its stages, the compose file with PyYAML, and both are held to what the product needs."""
from __future__ import annotations

import glob
import re
import shlex
from dataclasses import dataclass, field

import yaml

from tests.conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker" / "docker-compose.yml"
TARGETS = {"web": "web", "worker": "worker", "trainer": "trainer"}  # Procfile type -> image target


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages with their instructions (continuation lines joined, comments dropped)."""
    logical, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1].rstrip() + " "
            continue
        logical.append(current + line)
        current = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name=name, base=words[0]))
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append((keyword, rest.strip()))
    return stages


def resolved(stages: list[Stage], name: str, keyword: str) -> list[str]:
    """Arguments of `keyword` in stage `name` and the stages it is built FROM, base first."""
    by_name = {s.name: s for s in stages}
    chain, stage = [], by_name[name]
    while True:
        chain.insert(0, stage)
        if stage.base not in by_name:
            break
        stage = by_name[stage.base]
    return [args for s in chain for kw, args in s.instructions if kw == keyword]


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {name: command.strip() for name, command in (line.split(":", 1) for line in lines if line.strip())}


def test_parser_reads_stages_and_joins_continuation_lines() -> None:
    stages = parse_dockerfile("FROM a:1 AS one\nENV X=1 \\\n    Y=2\n# note\nFROM one AS two\nUSER me\n")
    assert [(s.name, s.base) for s in stages] == [("one", "a:1"), ("two", "one")]
    assert stages[0].instructions == [("ENV", "X=1 Y=2")]
    assert resolved(stages, "two", "ENV") == ["X=1 Y=2"]


def test_external_base_image_is_a_pinned_python_slim_bookworm() -> None:
    stages = parse_dockerfile(DOCKERFILE.read_text())
    names = {s.name for s in stages}
    external = {s.base for s in stages if s.base not in names}
    assert len(external) == 1
    (base,) = external
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base


def test_every_process_type_has_a_target_that_runs_its_procfile_command_as_a_non_root_user() -> None:
    stages = parse_dockerfile(DOCKERFILE.read_text())
    commands = procfile()
    for process, target in TARGETS.items():
        users = resolved(stages, target, "USER")
        assert users and users[-1] not in {"root", "0"}, target
        cmd = resolved(stages, target, "CMD")
        assert cmd, f"{target} has no CMD"
        # Shell form, so $PORT is expanded at start-up as Heroku's `sh -c` would.
        assert cmd[-1] == commands[process], target


def test_web_and_worker_images_install_no_tensorflow_and_the_trainer_does() -> None:
    stages = parse_dockerfile(DOCKERFILE.read_text())

    def requirements(target: str) -> set[str]:
        return {word for run in resolved(stages, target, "RUN") for word in shlex.split(run)
                if word.startswith("requirements")}

    def tensorflow_in(files: set[str]) -> bool:
        return any(re.search(r"^tensorflow", (ROOT / f).read_text(), re.M) for f in files)

    assert requirements("web") == requirements("worker") == {"requirements-web.txt"}
    assert not tensorflow_in(requirements("web"))
    assert requirements("trainer") == {"requirements.txt"} and tensorflow_in({"requirements.txt"})


def test_every_copy_source_exists_and_is_not_docker_ignored() -> None:
    stages = parse_dockerfile(DOCKERFILE.read_text())
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    copies = [args for stage in stages for kw, args in stage.instructions if kw in {"COPY", "ADD"}]
    assert copies
    for args in copies:
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        for source in words[:-1]:
            assert glob.glob(str(ROOT / source)), f"COPY source {source} does not exist"
            assert source.rstrip("/") not in ignored, f"COPY source {source} is in .dockerignore"
    # What must never reach an image: the virtualenv, local data, the git history.
    assert {".venv", "var", ".git"} <= set(ignored)


def test_compose_runs_release_once_then_web_worker_and_trainer_on_postgres_and_redis() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert {"postgres", "redis", "release", "web", "worker", "trainer"} <= set(services)
    for name in ("postgres", "redis"):
        image = services[name]["image"]
        assert re.fullmatch(r"[a-z]+:\d+\.\d+(\.\d+)?-bookworm", image), image
        assert services[name]["healthcheck"]["test"]
    stages = {s.name for s in parse_dockerfile(DOCKERFILE.read_text())}
    for name in ("release", "web", "worker", "trainer", *[s for s in services if s == "first-model"]):
        service = services[name]
        build = service["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
        assert build["target"] in stages
        env = service["environment"]
        assert env["DATABASE_URL"].startswith("postgresql://") and "@postgres:" in env["DATABASE_URL"]
        assert env["REDIS_URL"].startswith("redis://redis:")
        assert "SECRET_KEY" in env
    assert "alembic upgrade head" in " ".join(services["release"]["command"])
    for name in ("web", "worker", "trainer"):
        assert services[name]["build"]["target"] == TARGETS[name]
        assert services[name]["depends_on"]["release"]["condition"] == "service_completed_successfully"
    assert services["release"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["web"]["environment"]["PORT"] in {p.split(":")[-1] for p in services["web"]["ports"]}
    # PostgreSQL keeps the data (scans, heatmaps and models are blobs in it), so it needs a volume.
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["postgres"]["volumes"])
