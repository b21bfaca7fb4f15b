from __future__ import annotations

from pathlib import Path

import pytest

from core.config import ConfigError, load_settings


def test_defaults_need_no_server(tmp_path: Path) -> None:
    settings = load_settings({"TUMORSCREEN_DATA_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'tumorscreen.sqlite'}"
    assert settings.broker_url == "filesystem://"
    assert settings.result_backend == f"db+sqlite:///{tmp_path / 'celery-results.sqlite'}"
    assert settings.review_band == 0.1 and settings.image_size == 224


def test_development_secret_is_kept_between_starts(tmp_path: Path) -> None:
    first = load_settings({"TUMORSCREEN_DATA_DIR": str(tmp_path)}).secret_key
    second = load_settings({"TUMORSCREEN_DATA_DIR": str(tmp_path)}).secret_key
    assert first == second and len(first) == 64


def test_heroku_postgres_url_is_rewritten(tmp_path: Path) -> None:
    settings = load_settings({"TUMORSCREEN_DATA_DIR": str(tmp_path),
                              "DATABASE_URL": "postgres://u:p@host:5432/db"})
    assert settings.database_url == "postgresql://u:p@host:5432/db"


def test_redis_url_is_broker_and_backend(tmp_path: Path) -> None:
    settings = load_settings({"TUMORSCREEN_DATA_DIR": str(tmp_path), "REDIS_URL": "rediss://h:6380"})
    assert settings.broker_url == settings.result_backend == "rediss://h:6380"


def test_production_refuses_to_start_without_secret_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SECRET_KEY must be set when TUMORSCREEN_ENV=production"):
        load_settings({"TUMORSCREEN_DATA_DIR": str(tmp_path), "TUMORSCREEN_ENV": "production"})


def test_a_malformed_number_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TUMORSCREEN_MAX_FILE_MB must be a number, got 'lots'"):
        load_settings({"TUMORSCREEN_DATA_DIR": str(tmp_path), "TUMORSCREEN_MAX_FILE_MB": "lots"})


@pytest.mark.parametrize("raw", ["0", "-2"])
def test_inference_threads_below_one_are_refused(tmp_path: Path, raw: str) -> None:
    with pytest.raises(ConfigError, match=f"^TUMORSCREEN_INFERENCE_THREADS must be at least 1, got {raw}$"):
        load_settings({"TUMORSCREEN_DATA_DIR": str(tmp_path), "TUMORSCREEN_INFERENCE_THREADS": raw})


@pytest.mark.parametrize(("raw", "refine"), [(None, False), ("", False), ("1", True), ("Yes", True), ("on", True),
                                             ("0", False), ("false", False), ("OFF", False)])
def test_refined_heatmaps_are_off_unless_switched_on(tmp_path: Path, raw: str | None, refine: bool) -> None:
    env = {"TUMORSCREEN_DATA_DIR": str(tmp_path)} | ({} if raw is None else {"TUMORSCREEN_REFINE_HEATMAPS": raw})
    assert load_settings(env).refine_heatmaps is refine


def test_a_malformed_switch_names_the_setting_and_its_words(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^TUMORSCREEN_REFINE_HEATMAPS must be one of 1, true, yes, on, 0, false, "
                                          r"no, off, got 'sharp'$"):
        load_settings({"TUMORSCREEN_DATA_DIR": str(tmp_path), "TUMORSCREEN_REFINE_HEATMAPS": "sharp"})
