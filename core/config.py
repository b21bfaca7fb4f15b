"""Every setting of TumorScreen, read from the environment in this one place.

Defaults need no server: SQLite under `var/` and Kombu's filesystem broker, so one command on a fresh
machine runs the whole product. With `DATABASE_URL` / `REDIS_URL` set (as on Heroku) it uses
PostgreSQL and Redis. The README's settings table is the user-facing copy of `SETTINGS_DOC`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Mapping

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    """A setting is missing or invalid; the message says which and how to fix it."""


def normalise_database_url(url: str) -> str:
    """Heroku hands out `postgres://`, which SQLAlchemy refuses; it means `postgresql://`."""
    if url.startswith("postgres://"):
        return "postgresql://" + url[len("postgres://"):]
    return url


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}")
    return value


FLAG_WORDS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return FLAG_WORDS[raw.strip().lower()]
    except KeyError:
        raise ConfigError(f"{name} must be one of {', '.join(FLAG_WORDS)}, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    env: str
    data_dir: Path
    database_url: str
    redis_url: str | None
    secret_key: str
    max_file_mb: float
    max_batch_files: int
    max_zip_members: int
    max_zip_uncompressed_mb: float
    max_zip_ratio: float
    review_band: float
    recall_target: float
    chunk_size: int
    inference_threads: int
    refine_heatmaps: bool
    sweep_interval_s: float
    stale_after_s: float
    task_soft_time_limit_s: int
    task_time_limit_s: int
    worker_max_memory_mb: int
    window_center: float
    window_width: float
    image_size: int
    login_max_failures: int
    login_window_s: int
    admin_password: str | None = field(default=None, repr=False)
    # Reverse proxies in front of the web process whose X-Forwarded-For/-Proto are trusted.
    proxy_hops: int = 0

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def broker_url(self) -> str:
        return self.redis_url or "filesystem://"

    @property
    def result_backend(self) -> str:
        if self.redis_url:
            return self.redis_url
        return f"db+sqlite:///{self.data_dir / 'celery-results.sqlite'}"

    @property
    def broker_folder(self) -> Path:
        return self.data_dir / "broker"

    @property
    def model_cache_dir(self) -> Path:
        return self.data_dir / "model-cache"


# name -> (default shown to users, description). The README table is generated from the same words.
SETTINGS_DOC: dict[str, tuple[str, str]] = {
    "TUMORSCREEN_ENV": ("development", "`production` makes SECRET_KEY mandatory and cookies Secure"),
    "TUMORSCREEN_DATA_DIR": ("var/", "folder for the SQLite database, the local broker and caches"),
    "DATABASE_URL": ("SQLite file in the data folder", "SQLAlchemy URL; `postgres://` is accepted"),
    "REDIS_URL": ("none: filesystem broker + SQLite results", "Redis for Celery broker and results; `rediss://` works"),
    "SECRET_KEY": ("random, kept in the data folder (development only)",
                   "signs session cookies; required in production"),
    "TUMORSCREEN_MAX_FILE_MB": ("20", "largest single uploaded file"),
    "TUMORSCREEN_MAX_BATCH_FILES": ("2000", "most files (after unzipping) in one batch"),
    "TUMORSCREEN_MAX_ZIP_MEMBERS": ("5000", "most members a ZIP may have"),
    "TUMORSCREEN_MAX_ZIP_UNCOMPRESSED_MB": ("1024", "most bytes a ZIP may expand to"),
    "TUMORSCREEN_MAX_ZIP_RATIO": ("100", "highest compression ratio of a ZIP member (ZIP bombs)"),
    "TUMORSCREEN_REVIEW_BAND": ("0.1", "predictions within this distance of the threshold need review"),
    "TUMORSCREEN_RECALL_TARGET": ("0.99", "recall a model must reach to be promoted without override"),
    "TUMORSCREEN_CHUNK_SIZE": ("64", "scans per screening task"),
    "TUMORSCREEN_INFERENCE_THREADS": ("2", "threads of a worker's forward pass; 1 where each worker has a core"),
    "TUMORSCREEN_REFINE_HEATMAPS": ("0", "1: each heatmap from two forward passes half a cell apart, at twice the "
                                         "forward cost: sharper on small tumors with networks exported before "
                                         "2026-12-07, little more with newer ones, whose turned view is moved already "
                                         "(`ml.predictor.Predictor`)"),
    "TUMORSCREEN_SWEEP_INTERVAL_S": ("30", "how often the sweeper looks for stuck batches"),
    "TUMORSCREEN_STALE_AFTER_S": ("120", "a queued/running batch with no progress for this long is re-sent"),
    "TUMORSCREEN_TASK_SOFT_LIMIT_S": ("300", "soft time limit of a screening chunk"),
    "TUMORSCREEN_TASK_HARD_LIMIT_S": ("360", "hard time limit of a screening chunk"),
    "TUMORSCREEN_WORKER_MAX_MEMORY_MB": ("350", "a worker child is recycled above this resident memory"),
    "TUMORSCREEN_WINDOW_CENTER": ("40", "CT window level (HU) for DICOM"),
    "TUMORSCREEN_WINDOW_WIDTH": ("80", "CT window width (HU) for DICOM"),
    "TUMORSCREEN_IMAGE_SIZE": ("224", "side of the normalised image stored for each scan"),
    "TUMORSCREEN_LOGIN_MAX_FAILURES": ("5", "failed logins per account or address before lock-out"),
    "TUMORSCREEN_LOGIN_WINDOW_S": ("900", "window for counting failed logins"),
    "TUMORSCREEN_ADMIN_PASSWORD": ("random, printed once", "password of the `admin` user created on first run"),
    "TUMORSCREEN_PROXY_HOPS": ("1 on Heroku, else 0",
                               "reverse proxies whose X-Forwarded-For is trusted "
                               "(client address for login throttling)"),
}


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    mode = env.get("TUMORSCREEN_ENV", "development")
    data_dir = Path(env.get("TUMORSCREEN_DATA_DIR") or PROJECT_ROOT / "var").resolve()
    database_url = normalise_database_url(
        env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'tumorscreen.sqlite'}"
    )
    secret_key = env.get("SECRET_KEY", "")
    if not secret_key:
        if mode == "production":
            raise ConfigError("SECRET_KEY must be set when TUMORSCREEN_ENV=production")
        secret_key = _development_secret(data_dir)
    return Settings(
        env=mode,
        data_dir=data_dir,
        database_url=database_url,
        redis_url=env.get("REDIS_URL") or None,
        secret_key=secret_key,
        max_file_mb=_float(env, "TUMORSCREEN_MAX_FILE_MB", 20.0),
        max_batch_files=_int(env, "TUMORSCREEN_MAX_BATCH_FILES", 2000),
        max_zip_members=_int(env, "TUMORSCREEN_MAX_ZIP_MEMBERS", 5000),
        max_zip_uncompressed_mb=_float(env, "TUMORSCREEN_MAX_ZIP_UNCOMPRESSED_MB", 1024.0),
        max_zip_ratio=_float(env, "TUMORSCREEN_MAX_ZIP_RATIO", 100.0),
        review_band=_float(env, "TUMORSCREEN_REVIEW_BAND", 0.1),
        recall_target=_float(env, "TUMORSCREEN_RECALL_TARGET", 0.99),
        chunk_size=_int(env, "TUMORSCREEN_CHUNK_SIZE", 64),
        inference_threads=_positive_int(env, "TUMORSCREEN_INFERENCE_THREADS", 2),
        refine_heatmaps=_flag(env, "TUMORSCREEN_REFINE_HEATMAPS", False),
        sweep_interval_s=_float(env, "TUMORSCREEN_SWEEP_INTERVAL_S", 30.0),
        stale_after_s=_float(env, "TUMORSCREEN_STALE_AFTER_S", 120.0),
        task_soft_time_limit_s=_int(env, "TUMORSCREEN_TASK_SOFT_LIMIT_S", 300),
        task_time_limit_s=_int(env, "TUMORSCREEN_TASK_HARD_LIMIT_S", 360),
        worker_max_memory_mb=_int(env, "TUMORSCREEN_WORKER_MAX_MEMORY_MB", 350),
        window_center=_float(env, "TUMORSCREEN_WINDOW_CENTER", 40.0),
        window_width=_float(env, "TUMORSCREEN_WINDOW_WIDTH", 80.0),
        image_size=_int(env, "TUMORSCREEN_IMAGE_SIZE", 224),
        login_max_failures=_int(env, "TUMORSCREEN_LOGIN_MAX_FAILURES", 5),
        login_window_s=_int(env, "TUMORSCREEN_LOGIN_WINDOW_S", 900),
        admin_password=env.get("TUMORSCREEN_ADMIN_PASSWORD") or None,
        # Heroku's router is one proxy and appends the client's address; elsewhere nothing is
        # trusted unless configured, so that a client cannot pick its own address.
        proxy_hops=_int(env, "TUMORSCREEN_PROXY_HOPS", 1 if env.get("DYNO") else 0),
    )


def _development_secret(data_dir: Path) -> str:
    """A random key kept in the data folder, so web and worker agree and logins survive a restart."""
    import secrets

    path = data_dir / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_hex(32)
        path.write_text(key)
        path.chmod(0o600)
        return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
