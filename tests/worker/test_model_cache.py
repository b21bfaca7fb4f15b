"""The screening worker's copy of the active model: loaded as the settings ask (threads, refined heatmaps)."""
from __future__ import annotations

import pytest

from tests.worker.conftest import install_model


def loaded_predictor(make_env, model_dir, monkeypatch, **settings):
    env = make_env(**settings)
    install_model(env, model_dir)
    from core.db import session_scope
    from worker import model_cache
    from worker.model_registry import active_version

    monkeypatch.setattr(model_cache, "_loaded", None)
    with session_scope(env.database_url) as session:
        return model_cache.predictor_for(session, active_version(session))


@pytest.mark.parametrize(("setting", "threads"), [(None, 2), ("1", 1), ("3", 3)])
def test_the_forward_pass_runs_on_the_configured_threads(make_env, handmade_model_dir, monkeypatch, setting,
                                                         threads) -> None:
    predictor = loaded_predictor(make_env, handmade_model_dir, monkeypatch,
                                 **({"TUMORSCREEN_INFERENCE_THREADS": setting} if setting else {}))
    assert predictor.session.get_session_options().intra_op_num_threads == threads


@pytest.mark.parametrize(("setting", "refine"), [(None, False), ("1", True)])
def test_heatmaps_are_refined_where_the_settings_ask(make_env, handmade_model_dir, monkeypatch, setting,
                                                     refine) -> None:
    predictor = loaded_predictor(make_env, handmade_model_dir, monkeypatch,
                                 **({"TUMORSCREEN_REFINE_HEATMAPS": setting} if setting else {}))
    assert predictor.refine_heatmaps is refine
