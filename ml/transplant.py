"""Lesion transplants: more tumor scans for training, made from the tumor masks a dataset already has.

A tumor scan's lesion (the pixels under its mask and a one-pixel rim) is moved onto a tumor-free scan at
the same place, which after normalisation (cropped to the head, squared) is about the same place in the
head. The lesion keeps its contrast against the tissue around it: what is moved is the lesion minus the
median of a ring around it in the donor, added to the median of the same ring in the recipient, and it
replaces the recipient's pixels rather than adding to them, so the noise inside stays one scan's noise.
Where the two rings disagree (the lesion would land on a ventricle's edge, the skull), no transplant is made.

The recipient stays in the training set as it was: the network sees the same head with and without a
lesion, the one difference between them being the tumor. The made scans come back as float32; training
rounds them to the 8-bit grid when the scans they were made from are 8-bit (`ml.train._fit`).
"""
from __future__ import annotations

import cv2
import numpy as np

# Recipient's ring median must be within RING_MATCH of the donor's (intensities in [0, 1]), and its spread
# (10th to 90th percentile) at most RING_SPREAD times the donor's plus RING_SPREAD_SLACK: a ring over tissue
# as the donor's was, not over a boundary. The spread is relative because noise alone spreads a ring: 2.5-6 HU
# of photon noise in the W80 brain window is 2.56 sigma = 0.08-0.19 (computed, not measured). On the 3,000-slice
# synthetic set, a fixed cap of 0.12 with a level match of 0.08 and 4 donors tried gave 154 of 525 recipients
# a lesion; these settings give 514 and 519 (seeds 0 and 7), and 1,036 of 1,050 at a share of 1.
RING_MATCH = 0.1
RING_SPREAD = 1.5
RING_SPREAD_SLACK = 0.03
DONOR_TRIES = 8


def transplant(donor: np.ndarray, mask: np.ndarray, recipient: np.ndarray) -> np.ndarray | None:
    """The recipient (S×S in [0, 1]) with the donor's lesion at the same place, or None where the
    surroundings do not match."""
    mask = (mask >= 0.5).astype(np.uint8)
    rim = cv2.dilate(mask, np.ones((3, 3), np.uint8))  # the lesion and one pixel around it: what is moved
    ring = (cv2.dilate(mask, np.ones((9, 9), np.uint8)) > 0) & (rim == 0)  # 2-4 px out: the tissue around it
    if not mask.any() or not ring.any():
        return None
    donor_ring, recipient_ring = donor[ring], recipient[ring]
    donor_level, recipient_level = float(np.median(donor_ring)), float(np.median(recipient_ring))
    spread = [float(np.percentile(r, 90) - np.percentile(r, 10)) for r in (donor_ring, recipient_ring)]
    if abs(donor_level - recipient_level) > RING_MATCH or spread[1] > RING_SPREAD * spread[0] + RING_SPREAD_SLACK:
        return None
    # A soft edge one pixel wide; beyond two pixels the recipient is left exactly as it was.
    rim = rim.astype(np.float32)
    alpha = cv2.GaussianBlur(rim, (5, 5), 0.7) * cv2.dilate(rim, np.ones((3, 3), np.uint8))
    alpha = np.maximum(alpha, mask.astype(np.float32))
    moved = donor - donor_level + recipient_level
    return np.clip(recipient * (1.0 - alpha) + moved * alpha, 0.0, 1.0).astype(np.float32)


def transplant_lesions(images: np.ndarray, labels: np.ndarray, masks: np.ndarray, fraction: float,
                       seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to round(fraction × tumor-free scans) new tumor scans, each a tumor-free scan of `images`
    (N×S×S×1) with the lesion of a random tumor scan (its mask in `masks`, N×S×S); returns (images,
    labels, masks) of the new scans alone. A recipient whose surroundings match no donor in a few tries
    is skipped, so fewer may come back."""
    rng = np.random.default_rng(seed)
    negatives = np.flatnonzero(labels == 0)
    donors = np.flatnonzero((labels == 1) & masks.any(axis=(1, 2)))
    wanted = int(round(fraction * negatives.size)) if donors.size else 0
    recipients = rng.choice(negatives, size=wanted, replace=False)
    made_images, made_masks = [], []
    for recipient in recipients:
        for donor in rng.choice(donors, size=min(DONOR_TRIES, donors.size), replace=False):
            made = transplant(images[donor, ..., 0], masks[donor], images[recipient, ..., 0])
            if made is not None:
                made_images.append(made[..., None])
                made_masks.append((masks[donor] >= 0.5).astype(np.float32))
                break
    count = len(made_images)
    return (np.asarray(made_images, np.float32).reshape(count, *images.shape[1:]),
            np.ones(count, labels.dtype), np.asarray(made_masks, np.float32).reshape(count, *masks.shape[1:]))
