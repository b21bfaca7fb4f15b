"""Hostile and broken files through every way in: the Screen page's upload (in-process and through the
real web server), `python -m worker screen`, `python -m ml predict` and a training-dataset ZIP. Each
file gets its exact reason, the good files of the same batch are screened, nothing crashes, and the
processes' memory stays bounded when the corpus is screened again and again."""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from ml.errors import sanitise_name
from tests.conftest import PYTHON, ROOT
from tests.hardening.corpus import MAX_FILE_MB, Item, expected_outcomes, good_count, head_png, hostile_corpus
from tests.webapp.conftest import PASSWORDS, create_role_users
from tests.worker.conftest import install_model, wait_for_final

LIMITS = {"TUMORSCREEN_MAX_FILE_MB": str(MAX_FILE_MB)}
LONG_MEMBER = re.compile(r"^names\.zip/x+…x+\.png$")


def data_url(data: bytes) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(data).decode()


def assert_every_file_has_its_outcome(state: dict) -> None:
    """Every scan is one corpus file (or member): rejected with its exact reason, or screened once."""
    expected = expected_outcomes()
    seen = set()
    for scan in state["scans"]:
        name = scan["file"]
        assert len(name) <= 120 and "\n" not in name and "\x1b" not in name, name
        if LONG_MEMBER.match(name):
            reason = None
        else:
            assert name in expected, f"unexpected scan {name!r}"
            reason = expected[name]
            seen.add(name)
        if reason is None:
            assert (scan["status"], scan["predictions"], scan["error"]) == ("predicted", 1, None), scan
        else:
            assert (scan["status"], scan["error"], scan["predictions"]) == ("rejected", reason, 0), scan
    assert seen == set(expected)
    assert sum(s["status"] == "predicted" for s in state["scans"]) == good_count()
    assert state["status"] == "done_with_errors"


def rss_mib(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def tree_rss_mib(pid: int) -> dict[int, float]:
    import psutil

    process = psutil.Process(pid)
    return {p.pid: p.memory_info().rss / 2**20 for p in [process, *process.children(recursive=True)]}


@pytest.mark.slow
def test_screen_page_upload_names_each_bad_file_and_screens_the_good_ones(
        make_env, start_worker, handmade_model_dir) -> None:
    from webapp.app import create_app
    from tests.webapp.conftest import login
    from tests.webapp.screening_support import fire
    from tests.webapp.dash_calls import text_of

    env = make_env(**LIMITS)
    create_role_users()
    install_model(env, handmade_model_dir)
    app = create_app()
    client = app.server.test_client()
    assert login(client, "screener", PASSWORDS["screener"]).status_code == 302
    corpus = hostile_corpus()
    response = fire(client, app, "screen-result.children",
                    inputs={"screen-upload.contents": [data_url(item.data) for item in corpus]},
                    state={"screen-upload.filename": [item.name for item in corpus]})
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    outputs = response.get_json()["response"]
    panel = text_of(outputs["screen-result"]["children"])
    batch_id = outputs["screen-batch"]["data"]
    rejected = {name: reason for name, reason in expected_outcomes().items() if reason is not None}
    for name, reason in rejected.items():
        assert f"{name} : {reason}" in panel, (name, reason)  # the name in bold, then ": reason"
    assert f"{good_count()} accepted, {len(rejected)} rejected, 0 duplicates" in panel
    start_worker(env)
    assert_every_file_has_its_outcome(wait_for_final(env, batch_id, timeout=120))


def _login(client: httpx.Client) -> None:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    answer = client.post("/login", data={"username": "screener", "password": PASSWORDS["screener"],
                                         "csrf_token": token, "next": "/"})
    assert answer.status_code == 302, answer.text


def upload_body(client: httpx.Client, items: tuple[Item, ...] | list[Item]) -> dict:
    """The request the browser's Screen page sends for a drop of `items`, from the served dependencies."""
    from tests.webapp.conftest import parse_outputs

    served = client.get("/_dash-dependencies").json()
    spec = next((spec for spec in served if "screen-result.children" in spec["output"]), None)
    if spec is None:
        raise AssertionError("the Screen page's upload callback is not served")
    values = {"screen-upload.contents": [data_url(i.data) for i in items],
              "screen-upload.filename": [i.name for i in items]}

    def fill(entries: list[dict]) -> list[dict]:
        return [{**e, "value": values.get(f"{e['id']}.{e['property']}")} for e in entries]

    return {"output": spec["output"], "outputs": parse_outputs(spec["output"]),
            "inputs": fill(spec["inputs"]), "state": fill(spec["state"]),
            "changedPropIds": ["screen-upload.contents"]}


@pytest.mark.slow
def test_real_uploads_through_the_web_server_three_times_keep_memory_bounded(
        make_env, start_web, start_worker, handmade_model_dir) -> None:
    env = make_env(database="postgres", broker="redis", **LIMITS)
    create_role_users()
    install_model(env, handmade_model_dir)
    web, base = start_web(env)
    worker = start_worker(env)
    corpus = hostile_corpus()
    web_rss, worker_rss = [], []
    with httpx.Client(base_url=base, timeout=120) as client:
        _login(client)
        for _round in range(3):
            # json.dumps escapes the lone surrogates of the non-UTF-8 name, as a hostile client may.
            response = client.post("/_dash-update-component", content=json.dumps(upload_body(client, corpus)),
                                   headers={"Content-Type": "application/json"})
            assert response.status_code == 200, response.text[:500]
            batch_id = response.json()["response"]["screen-batch"]["data"]
            state = wait_for_final(env, batch_id, timeout=120)
            assert_every_file_has_its_outcome(state)
            assert web.alive() and worker.alive()
            web_rss.append(sum(tree_rss_mib(web.pid).values()))
            worker_rss.append(sum(tree_rss_mib(worker.pid).values()))
    print(f"resident MiB after each round: web {web_rss}, worker {worker_rss}")
    # Everything a hostile file costs is freed with its request or chunk: the third round may not
    # need much more memory than the first (allocator noise and caches warming up aside).
    assert web_rss[2] - web_rss[0] < 60 and web_rss[2] - web_rss[1] < 25, web_rss
    assert worker_rss[2] - worker_rss[0] < 60 and worker_rss[2] - worker_rss[1] < 25, worker_rss
    assert max(rss_mib(pid) for pid in tree_rss_mib(web.pid)) < 400, web_rss
    assert "Traceback" not in web.log(), web.log()[-3000:]


def write_corpus(folder: Path) -> list[Path]:
    """The corpus as files on disk (a file system allows neither 5000-character names nor NUL)."""
    folder.mkdir()
    paths = []
    for item in hostile_corpus():
        name = item.name if len(item.name) < 200 else item.name[:150] + ".png"
        raw = os.fsencode(name)  # lone surrogates become the original non-UTF-8 bytes
        path = Path(os.fsdecode(os.path.join(os.fsencode(folder), raw)))
        path.write_bytes(item.data)
        paths.append(path)
    return paths


def disk_outcomes() -> dict[str, str | None]:
    outcomes = dict(expected_outcomes())
    long_name = sanitise_name("long-" + "n" * 5000 + ".png")
    outcomes[sanitise_name("long-" + "n" * 145 + ".png")] = outcomes.pop(long_name)
    return outcomes


@pytest.mark.slow
def test_worker_screen_command_reports_each_file(make_env, start_worker, handmade_model_dir, tmp_path) -> None:
    env = make_env(**LIMITS)
    install_model(env, handmade_model_dir)
    start_worker(env)
    paths = write_corpus(tmp_path / "corpus")
    done = subprocess.run([PYTHON, "-m", "worker", "screen", *map(os.fsencode, paths), "--wait", "--json",
                           "--timeout", "180"], env=env.vars(), cwd=ROOT, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    report = json.loads(done.stdout)
    expected = disk_outcomes()
    assert report["status"] == "done_with_errors"
    for entry in report["files"]:
        if LONG_MEMBER.match(entry["file"]):
            assert entry["status"] == "predicted"
            continue
        reason = expected.pop(entry["file"])
        if reason is None:
            assert (entry["status"], entry["error"]) == ("predicted", None), entry
            assert 0.0 <= entry["probability"] <= 1.0
        else:
            assert (entry["status"], entry["error"]) == ("rejected", reason), entry
    assert expected == {}


def test_ml_predict_gives_each_file_a_reason_or_a_prediction(handmade_model_dir, tmp_path) -> None:
    paths = write_corpus(tmp_path / "corpus")
    run = subprocess.run([PYTHON, "-m", "ml", "predict", "--model", str(handmade_model_dir), "--json",
                          *map(os.fsencode, paths)], cwd=ROOT, capture_output=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 1, run.stderr.decode(errors="replace")  # some files were not predicted
    lines = run.stdout.decode().splitlines()
    assert len(lines) == len(paths)
    archives = {"bomb.zip", "traversal.zip", "many.zip", "nested.zip", "locked.zip", "names.zip"}
    for item, path, line in zip(hostile_corpus(), paths, lines):
        entry = json.loads(line)
        assert entry["file"] == str(path), entry  # in the order given, under the name given
        if item.name in archives:
            # The CLI screens images, not archives: an archive is named for what it is.
            assert entry["error"] == "not an image (a ZIP archive)", entry
        elif item.name == "huge.png":
            assert 0 <= entry["probability"] <= 1  # no upload limit on the analyst's own disk
        elif item.reason is None:
            assert entry.get("error") is None and 0 <= entry["probability"] <= 1, entry
        else:
            assert entry["error"] == item.reason, entry
    plain = subprocess.run([PYTHON, "-m", "ml", "predict", "--model", str(handmade_model_dir),
                            *map(os.fsencode, paths)], cwd=ROOT, capture_output=True, timeout=300,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    # One line per file even for names holding newlines or terminal escapes.
    text = plain.stdout.decode(errors="replace")
    assert len(text.splitlines()) == len(paths), text
    assert "\x1b" not in text and "\r" not in text


@pytest.mark.slow
def test_dataset_zip_with_hostile_members_is_prepared_from_the_good_ones(make_env) -> None:
    from sqlalchemy import select

    from core.db import session_scope
    from core.models import Dataset
    from tests.hardening.corpus import _zip
    from tests.webapp.screening_support import fire
    from tests.webapp.conftest import login
    from webapp.app import create_app
    from worker.dataset_preparation import prepare

    env = make_env(**LIMITS)
    create_role_users()
    good = [(f"brain/{label}/{label}-{seed}.png", head_png(100 + seed + (50 if label == "tumor" else 0)))
            for label in ("tumor", "no_tumor") for seed in range(12)]
    hostile = [("brain/tumor/page.png", b"<html><body>not a scan</body></html>"),
               ("brain/tumor/empty.png", b""),
               ("../../escape.png", head_png(300)), ("/etc/absolute.png", head_png(301)),
               ("brain/tumor/inner.zip", _zip([("x.png", head_png(302))])),
               ("brain/no_tumor/bomb.png", bytes(int(1.5 * 2**20)))]
    archive = _zip(good + hostile)
    app = create_app()
    client = app.server.test_client()
    assert login(client, "admin", PASSWORDS["admin"]).status_code == 302
    response = fire(client, app, "ds-message.children", inputs={"ds-register.n_clicks": 1},
                    state={"ds-name.value": "hostile", "ds-kind.value": "zip",
                           "ds-zip.contents": data_url(archive)})
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert "registered" in json.dumps(response.get_json())
    with session_scope() as db:
        dataset_id = db.scalar(select(Dataset.id).where(Dataset.name == "hostile"))
    prepare(dataset_id)
    with session_scope() as db:
        dataset = db.get(Dataset, dataset_id)
        assert (dataset.status, dataset.item_count) == ("ready", 24)
        report = dataset.report
    rejected = {entry["source_path"].split("/")[-1]: entry["reason"] for entry in report["files"]["rejected_files"]}
    assert rejected == {"page.png": "not an image (an HTML document)", "empty.png": "empty file"}
    refused = dict(map(tuple, report["archive_refused"]))
    assert refused == {
        "../../escape.png": "unsafe path in ZIP (absolute or leading outside the archive)",
        "/etc/absolute.png": "unsafe path in ZIP (absolute or leading outside the archive)",
        "brain/tumor/inner.zip": "a ZIP archive inside the ZIP: nested archives are not accepted",
        "brain/no_tumor/bomb.png": refused.get("brain/no_tumor/bomb.png", "?"),
    }
    assert refused["brain/no_tumor/bomb.png"].startswith("compression ratio ")
    assert not (env.data_dir / "escape.png").exists() and not Path("/etc/absolute.png").exists()
