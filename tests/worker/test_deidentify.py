"""A DICOM upload is de-identified before anything is stored: none of the identifying values a test
plants survives anywhere in the database (any table, any blob), and what screening needs is kept."""
from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from sqlalchemy import select

from tests.builders import make_dicom, make_head_slice

PLANTED = {
    "PatientName": "Quixote^Alonso",
    "PatientID": "PID-7731-XQ",
    "OtherPatientIDs": "ALT-99812",
    "PatientBirthDate": "19510817",
    "PatientAddress": "12 Calle Mayor, Toboso",
    "PatientTelephoneNumbers": "555-0142-88",
    "InstitutionName": "Hospital de la Mancha",
    "InstitutionAddress": "3 Windmill Lane",
    "ReferringPhysicianName": "Carrasco^Sanson",
    "PerformingPhysicianName": "Panza^Sancho",
    "OperatorsName": "Dulcinea^Aldonza",
    "AccessionNumber": "ACC55120937",
    "StudyID": "STUDY-31337",
    "StudyDescription": "Headache follow-up for Quixote",
    "ImageComments": "call wife at 555-0199-77",
    "PatientComments": "allergic to penicillin, room 4411",
    "StudyInstanceUID": "1.2.826.0.1.3680043.8.498.77441128",
    "SeriesInstanceUID": "1.2.826.0.1.3680043.8.498.88552239",
    "FrameOfReferenceUID": "1.2.826.0.1.3680043.8.498.99663340",
    "StationName": "CT-ROCINANTE",
}
PRIVATE_VALUE = "PRIVATE-VENDOR-ROCINANTE-7"
NESTED_VALUE = "Nested^Physician^Benengeli"


def _identified_dicom() -> bytes:
    stored = (make_head_slice(128, seed=5) * 120 + 1000).astype(np.int16)
    item = Dataset()
    item.PersonIdentificationCodeSequence = Sequence()
    item.ReferringPhysicianName = NESTED_VALUE
    extra = dict(PLANTED)
    extra["ReferencedStudySequence"] = Sequence([item])
    raw = make_dicom(stored, extra=extra)
    # A vendor's private element, which often carries names or IDs of its own.
    import io

    import pydicom

    ds = pydicom.dcmread(io.BytesIO(raw))
    block = ds.private_block(0x0029, "ACME Imaging", create=True)
    block.add_new(0x10, "LO", PRIVATE_VALUE)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _every_stored_value(database_url: str) -> list[bytes]:
    """Every value of every row of every table, as bytes (text encoded, blobs as they are)."""
    from core.db import get_engine
    from core.models import Base

    values: list[bytes] = []
    with get_engine(database_url).connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(select(table)):
                for value in row:
                    if isinstance(value, (bytes, bytearray, memoryview)):
                        values.append(bytes(value))
                    elif value is not None:
                        values.append(str(value).encode())
    return values


def test_no_planted_identifier_is_stored_anywhere_and_acquisition_fields_are_kept(db_env) -> None:
    from core.db import session_scope
    from core.models import Scan
    from worker.intake import IntakeFile, submit_batch

    data = _identified_dicom()
    planted = [value.encode() for value in (*PLANTED.values(), PRIVATE_VALUE, NESTED_VALUE)]
    assert all(value in data for value in planted)  # the file really carries them
    result = submit_batch([IntakeFile("slice.dcm", data)], user_id=None)
    assert result.accepted == 1

    stored = _every_stored_value(db_env.database_url)
    leaks = {value.decode() for value in planted for blob in stored if value in blob}
    # Name parts on their own ("Quixote", "Panza") must not survive either.
    parts = {part.encode() for value in PLANTED.values() for part in value.replace("^", " ").split() if len(part) > 4}
    leaks |= {part.decode() for part in parts for blob in stored if part in blob}
    assert leaks == set()

    with session_scope(db_env.database_url) as session:
        scan = session.scalar(select(Scan))
        assert scan.deidentified is True
        assert scan.sha256 is not None and len(scan.sha256) == 64
        fields = scan.dicom_fields
        kept = ("modality", "pixel_spacing", "rescale_slope", "rescale_intercept", "file_window_center",
                "file_window_width")
        assert tuple(fields[name] for name in kept) == ("CT", [0.5, 0.5], 1.0, -1024.0, 50.0, 350.0)
        assert fields["deidentification"]["removed_count"] > len(PLANTED)
        removed = set(fields["deidentification"]["removed"])
        assert {"PatientName", "PatientID", "InstitutionName", "private tags"} <= removed


def test_a_png_is_not_marked_deidentified(make_env) -> None:
    env = make_env()
    from core.db import session_scope
    from core.models import Scan
    from tests.builders import make_png
    from worker.intake import IntakeFile, submit_batch

    submit_batch([IntakeFile("a.png", make_png(make_head_slice(64, seed=1)))], user_id=None)
    with session_scope(env.database_url) as session:
        scan = session.scalar(select(Scan))
        assert (scan.deidentified, scan.dicom_fields, scan.format) == (False, None, "png")
