"""The screening worker's copy of the active model: loaded on the threads the settings give it."""
from __future__ import annotations

import pytest

from tests.worker.conftest import install_model


@pytest.mark.parametrize(("setting", "threads"), [(None, 2), ("1", 1), ("3", 3)])
def test_the_forward_pass_runs_on_the_configured_threads(make_env, handmade_model_dir, monkeypatch, setting,
                                                         threads) -> None:
    env = make_env(**({"TUMORSCREEN_INFERENCE_THREADS": setting} if setting else {}))
    install_model(env, handmade_model_dir)
    from core.db import session_scope
    from worker import model_cache
    from worker.model_registry import active_version

    monkeypatch.setattr(model_cache, "_loaded", None)
    with session_scope(env.database_url) as session:
        predictor = model_cache.predictor_for(session, active_version(session))

    assert predictor.session.get_session_options().intra_op_num_threads == threads
