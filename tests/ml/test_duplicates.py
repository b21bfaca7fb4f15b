from __future__ import annotations

import time

import cv2
import numpy as np

from ml.decode import decode_bytes
from ml.duplicates import (deduplicate, exact_duplicate_sets, near_duplicate_groups, pixel_sha256,
                           similar_pairs, thumbnail)
from ml.normalise import normalise
from tests.builders import make_head_slice, make_jpeg, make_png


def thumb_of(data: bytes) -> np.ndarray:
    return thumbnail(normalise(decode_bytes(data, "x").pixels, 128))


def planted_copies(base: np.ndarray) -> list[bytes]:
    """The same slice as it might reach us twice: re-encoded, resized, shifted, re-windowed."""
    shifted = np.pad(base, ((0, 60), (45, 0)))
    return [
        make_png(base),
        make_jpeg(base, quality=70),
        make_png(cv2.resize(base, (150, 150), interpolation=cv2.INTER_AREA)),
        make_png(shifted),
        make_jpeg(np.clip(base * 0.7 + 0.15, 0, 1), quality=85),
    ]


def test_reencoded_resized_shifted_and_rewindowed_copies_share_a_group_distinct_slices_do_not():
    copies = planted_copies(make_head_slice(192, seed=10, lesion=True))
    distinct = [make_png(make_head_slice(192, seed=s, lesion=s % 2 == 0)) for s in range(11, 23)]
    groups = near_duplicate_groups(np.stack([thumb_of(d) for d in copies + distinct]))
    copy_groups, distinct_groups = groups[:len(copies)], groups[len(copies):]
    assert len(set(copy_groups)) == 1
    assert len(set(distinct_groups)) == len(distinct)
    assert copy_groups[0] not in set(distinct_groups)


def test_similar_pairs_in_blocks_match_the_full_matrix():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    i, j, s = similar_pairs(vectors, 0.6, block=7)
    full = vectors @ vectors.T
    expected = {(a, b) for a in range(50) for b in range(a + 1, 50) if full[a, b] >= 0.6}
    assert set(zip(i.tolist(), j.tolist())) == expected and expected
    np.testing.assert_allclose(s, full[i, j], rtol=1e-5)


def test_grouping_is_transitive_through_chains():
    a = np.array([1.0, 0.0, 0.0])
    b = np.array([np.cos(0.3), np.sin(0.3), 0.0])
    c = np.array([np.cos(0.6), np.sin(0.6), 0.0])  # a~b and b~c, but a and c are further apart
    d = np.array([0.0, 0.0, 1.0])
    groups = near_duplicate_groups(np.stack([a, b, c, d]).astype(np.float32), threshold=0.95)
    assert groups[0] == groups[1] == groups[2] != groups[3]


def test_exact_sets_join_items_equal_in_any_key():
    byte_hashes = ["a", "b", "c", "a", "e"]
    pixel_hashes = ["p", "q", "q", "r", "s"]
    assert sorted(exact_duplicate_sets(byte_hashes, pixel_hashes)) == [[0, 3], [1, 2]]


def test_pixel_hash_matches_a_lossless_reencoding_but_not_a_lossy_one():
    base = make_head_slice(64, seed=1)
    gray = decode_bytes(make_png(base), "a.png").pixels
    rgb = decode_bytes(make_png(base, "RGB"), "b.png").pixels
    lossy = decode_bytes(make_jpeg(base, quality=60), "c.jpg").pixels
    assert pixel_sha256(gray) == pixel_sha256(rgb) != pixel_sha256(lossy)


def test_deduplicate_drops_exact_copies_and_excludes_labelling_conflicts():
    rng = np.random.default_rng(3)
    thumbs = rng.normal(size=(6, 16)).astype(np.float32)
    thumbs -= thumbs.mean(axis=1, keepdims=True)
    thumbs /= np.linalg.norm(thumbs, axis=1, keepdims=True)
    thumbs[5] = thumbs[4] * 0.999 + 0.001  # a near copy of item 4
    thumbs[5] /= np.linalg.norm(thumbs[5])
    byte_hashes = ["h0", "h0", "h2", "h2", "h4", "h5"]
    pixel_hashes = ["p0", "p1", "p2", "p3", "p4", "p5"]
    labels = ["tumor", "tumor", "tumor", "no_tumor", "tumor", "no_tumor"]
    result = deduplicate(byte_hashes, pixel_hashes, thumbs, labels)
    assert result.keep.tolist() == [True, False, False, False, False, False]
    assert result.exact_duplicates == [(1, 0)]
    assert result.cross_label_exact == [[2, 3]]
    assert [(a, b) for a, b, _ in result.cross_label_copies] == [(4, 5)]
    assert result.group.tolist() == [0, -1, -1, -1, -1, -1]


def test_grouping_5500_thumbnails_takes_seconds_not_minutes():
    rng = np.random.default_rng(0)
    thumbs = rng.normal(size=(5500, 1024)).astype(np.float32)
    thumbs /= np.linalg.norm(thumbs, axis=1, keepdims=True)
    thumbs[1::2] = thumbs[0::2] + 0.01 * rng.normal(size=(2750, 1024)).astype(np.float32)  # 2,750 pairs
    thumbs /= np.linalg.norm(thumbs, axis=1, keepdims=True)
    started = time.perf_counter()
    groups = near_duplicate_groups(thumbs)
    elapsed = time.perf_counter() - started
    assert len(set(groups.tolist())) == 2750
    assert elapsed < 20, f"grouping took {elapsed:.1f} s"


def test_a_reencoded_copy_under_the_other_label_is_a_conflict_but_a_different_slice_is_not():
    base = make_head_slice(192, seed=30, lesion=True)
    files = [make_png(base), make_jpeg(base, quality=75), make_png(make_head_slice(192, seed=31))]
    thumbs = np.stack([thumb_of(d) for d in files])
    result = deduplicate(["a", "b", "c"], ["p", "q", "r"], thumbs, ["tumor", "no_tumor", "no_tumor"])
    assert [(a, b) for a, b, _ in result.cross_label_copies] == [(0, 1)]
    assert result.keep.tolist() == [False, False, True]
